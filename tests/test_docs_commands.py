"""docs/commands.rst lists exactly the options of each command's argument parser.

For each command, the parser comes from ``Command().create_parser()``. Its own
options must be the terms of the "Options:" list in the command's section (and
nothing else may be listed there), each must appear in the section's synopsis
with its metavar, and every positional argument must appear in the synopsis.
Django's common options must be listed in the page's introduction.
"""

from __future__ import annotations

import argparse
import re
from importlib import import_module
from pathlib import Path

import pytest
from django.core.management.base import BaseCommand

PAGE = Path(__file__).resolve().parent.parent / "docs" / "commands.rst"
COMMANDS = ["opsmigrate", "opsmakemigration", "opsshowmigrations", "opssqlmigrate", "opslint"]


def parser_for(name: str) -> argparse.ArgumentParser:
    module = import_module(f"django_alembic_ops.management.commands.{name}")
    return module.Command().create_parser("manage.py", name)


def common_option_strings() -> set[str]:
    """What Django's BaseCommand gives every command."""

    class Bare(BaseCommand):
        pass

    parser = Bare().create_parser("manage.py", "bare")
    return {s for action in parser._actions for s in action.option_strings}


def sections() -> dict[str, str]:
    """Command name -> the text of its section (up to the next section)."""
    text = PAGE.read_text()
    heading = re.compile(r"^(\S[^\n]*)\n(-+)\n", re.M)
    found = list(heading.finditer(text))
    result = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        result[match.group(1)] = text[match.end() : end]
    return result


def introduction() -> str:
    text = PAGE.read_text()
    return text[: text.index("\nopsmigrate\n----------\n")]


def synopsis(section: str) -> str:
    """The ``.. code-block:: text`` at the top of a command's section."""
    match = re.search(r"\.\. code-block:: text\n\n((?:   .*\n|\n)+)", section)
    assert match, "no synopsis"
    return match.group(1)


def documented_options(section: str) -> dict[str, str]:
    """Option string -> its term (the definition-list terms under "Options:")."""
    lines = section.splitlines()
    options: dict[str, str] = {}
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        if line.startswith("``-") and following.startswith("    "):
            for part in re.findall(r"``([^`]+)``", line):
                options[part.split()[0]] = part
    return options


def own_actions(name: str) -> list[argparse.Action]:
    common = common_option_strings()
    return [
        action for action in parser_for(name)._actions if not set(action.option_strings) & common
    ]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_documented_and_nothing_else(name: str) -> None:
    section = sections()[name]
    documented = documented_options(section)
    actual = {s for action in own_actions(name) for s in action.option_strings}
    assert set(documented) == actual, f"{name}: options in docs/commands.rst differ from parser"


@pytest.mark.parametrize("name", COMMANDS)
def test_terms_and_synopsis_show_the_metavar(name: str) -> None:
    section = sections()[name]
    documented = documented_options(section)
    usage = " ".join(synopsis(section).split())
    assert usage.startswith(f"manage.py {name}")
    for action in own_actions(name):
        if not action.option_strings:
            assert action.dest in usage, f"{name}: positional {action.dest} not in the synopsis"
            continue
        takes_value = action.nargs != 0
        metavar = action.metavar or action.dest.upper()
        for option in action.option_strings:
            expected = f"{option} {metavar}" if takes_value else option
            assert documented[option] == expected, f"{name}: term for {option}"
        long = max(action.option_strings, key=len)
        shown = f"{long} {metavar}" if takes_value else long
        short_shown = f"{action.option_strings[0]} {metavar}" if takes_value else ""
        assert shown in usage or (short_shown and short_shown in usage), (
            f"{name}: {shown} not in the synopsis"
        )
    # And nothing in the synopsis that the parser does not know.
    known = {s for action in own_actions(name) for s in action.option_strings}
    for option in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage):
        assert option in known, f"{name}: synopsis shows {option}, which the parser lacks"


def test_common_options_are_listed_in_the_introduction() -> None:
    intro = introduction()
    for option in sorted(common_option_strings()):
        assert re.search(rf"``[^`]*(?<![\w-]){re.escape(option)}(?![\w-])[^`]*``", intro), option


def test_every_command_has_a_section() -> None:
    commands_dir = PAGE.parent.parent / "django_alembic_ops" / "management" / "commands"
    on_disk = sorted(p.stem for p in commands_dir.glob("ops*.py"))
    assert on_disk == sorted(COMMANDS)
    assert set(COMMANDS) <= set(sections())
