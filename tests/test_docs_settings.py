"""docs/settings.rst: the defaults are the real ones, and each system check shows its real output.

Before each ``manage.py check`` block, an rst comment ``.. check-test:
ALEMBIC_OPS = <value>`` gives the setting; the test runs ``check`` with it and
compares the output with the block. Every check id of the package is
documented, and no other.
"""

from __future__ import annotations

import ast
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test.utils import override_settings

from django_alembic_ops import checks, conf

from .test_docs_deploying import matches

PAGE = Path(__file__).resolve().parent.parent / "docs" / "settings.rst"


def check_blocks() -> list[tuple[object, list[str]]]:
    """(ALEMBIC_OPS value, expected output lines) for each check-test block."""
    lines = PAGE.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip().startswith(".. check-test: ALEMBIC_OPS = "):
            value = ast.literal_eval(line.split(" = ", 1)[1])
            start = next(
                j for j in range(i + 1, len(lines)) if "$ python manage.py check" in lines[j]
            )
            indent = lines[start].index("$")
            expected = []
            for text in lines[start + 1 :]:
                if text.strip() and not text.startswith(" " * indent):
                    break
                expected.append(text[indent:].rstrip())
            found.append((value, expected))
    return found


def run_check(value: object) -> str:
    out = StringIO()
    with override_settings(ALEMBIC_OPS=value):
        try:
            call_command("check", stdout=out, stderr=out)
        except SystemCheckError as exc:
            out.write(f"{exc}\n")
    return out.getvalue().expandtabs(8)


@pytest.mark.parametrize("value, expected", check_blocks(), ids=lambda x: str(x)[:40])
def test_check_output_is_the_documented_one(value: object, expected: list[str]) -> None:
    output = run_check(value)
    assert matches(expected, output), "\n".join(expected) + "\n--- actual\n" + output


def test_every_check_id_is_documented() -> None:
    in_code = set(
        re.findall(r'id="(django_alembic_ops\.[EW]\d+)"', Path(checks.__file__).read_text())
    )
    text = PAGE.read_text()
    documented = set(re.findall(r"^``(django_alembic_ops\.[EW]\d+)``", text, re.M))
    assert documented == in_code
    shown = {
        i
        for value, expected in check_blocks()
        for i in re.findall(r"\((\S+)\)", "\n".join(expected))
    }
    assert shown == in_code


def test_documented_defaults_are_the_real_ones() -> None:
    text = PAGE.read_text()
    block = text[text.index("ALEMBIC_OPS = {") : text.index("}", text.index("ALEMBIC_OPS = {")) + 1]
    documented = ast.literal_eval(block.split(" = ", 1)[1])
    assert documented == {key: default for key, (default, _) in conf.DEFAULTS.items()}
    for key, (default, _) in conf.DEFAULTS.items():
        assert (
            f"``{key}``\n{'-' * (len(key) + 4)}\n\nDefault: ``{default!r}``".replace("'", '"')
            in text
        )
