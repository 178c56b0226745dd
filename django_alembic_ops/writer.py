"""New migration files: numbering, names, rendering; never overwriting."""

from __future__ import annotations

import datetime
import importlib.util
import json
import re
import subprocess
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic.util import rev_id

from . import codestyle, tools
from .discovery import OpsApp
from .errors import WriteError

#: Django's numbering: exactly four digits, then "_". A longer run of digits
#: is an Alembic revision id (``757731924605_create_t``), never a number.
_NUMBER = re.compile(r"^(\d{4})_")
_MAX_SLUG = 60

TEMPLATE = '''\
"""{docstring}

Revision ID: {revision}
Revises:{revises}
Create Date: {create_date}
"""

{imports}

{header}


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''

# In the order ruff's and isort's defaults want them.
DEFAULT_IMPORTS = "import sqlalchemy as sa\nfrom alembic import op"


def _literal(value: str | tuple[str, ...] | None) -> str:
    """A Python literal in the quotes formatters prefer (``"x"``, not ``'x'``)."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return json.dumps(value)
    inner = ", ".join(json.dumps(item) for item in value)
    return f"({inner},)" if len(value) == 1 else f"({inner})"


def _pairs(pairs: Sequence[tuple[str, str]]) -> str:
    """``[("shop", "0001_initial")]``, in the quotes formatters prefer."""
    return "[" + ", ".join(f"({json.dumps(a)}, {json.dumps(b)})" for a, b in pairs) + "]"


@dataclass(frozen=True)
class NewMigration:
    """A rendered migration script and where it goes."""

    app_label: str
    path: Path
    source: str
    revision: str


def slugify(message: str) -> str:
    """Turn ``-m`` text into a Python identifier for the file name.

    Only letters, digits and underscores survive, so ``/``, ``..`` and other
    path parts can never leave the ``migrations_ops`` folder.
    """
    ascii_text = unicodedata.normalize("NFKD", message).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", ascii_text).strip("_").lower()
    return slug[:_MAX_SLUG].rstrip("_")


def next_number(names: Sequence[str]) -> int:
    """The number of the script that follows ``names`` (an app's scripts, without ``.py``).

    One more than the highest ``NNNN_`` prefix; when none has one (a history
    adopted from plain Alembic, ``<revision>_<slug>``), one more than the
    number of scripts.
    """
    numbers = [int(match.group(1)) for name in names if (match := _NUMBER.match(name))]
    return max(numbers) + 1 if numbers else len(names) + 1


def default_name(number: int) -> str:
    if number == 1:
        return "initial"
    return "auto_" + datetime.datetime.now().strftime("%Y%m%d_%H%M")


def _indent(body: str) -> str:
    body = body.strip("\n") or "pass"
    return "\n".join(("    " + line) if line.strip() else "" for line in body.splitlines())


def render(
    app: OpsApp,
    *,
    existing: Sequence[str],
    message: str | None,
    down_revision: str | tuple[str, ...] | None,
    depends_on: Sequence[str] = (),
    upgrade: str = "pass",
    downgrade: str = "pass",
    imports: str = DEFAULT_IMPORTS,
    name: str | None = None,
    django_dependencies: Sequence[tuple[str, str]] = (),
    lay_out: bool = True,
) -> NewMigration:
    """Render the next numbered script of ``app`` (nothing is written).

    :param existing: the names of the app's scripts (without ``.py``), which
        the new number follows (:func:`next_number`).
    :param upgrade: the body of ``upgrade()``, unindented; ``downgrade`` likewise.
    :param lay_out: lay the bodies out as ``ruff format`` would
        (:mod:`.codestyle`); not when a formatter will format the file anyway.
    """
    if lay_out:
        # Inside def upgrade(), 4 columns in.
        room = codestyle.LINE_LENGTH - 4
        upgrade = codestyle.format_code(upgrade, line_length=room)
        downgrade = codestyle.format_code(downgrade, line_length=room)
    number = next_number(existing)
    slug = slugify(message or "") or slugify(name or "") or default_name(number)
    filename = f"{number:04d}_{slug}.py"
    revision = rev_id()
    is_first = down_revision is None
    deps: str | tuple[str, ...] | None = None
    if depends_on:
        deps = depends_on[0] if len(depends_on) == 1 else tuple(depends_on)
    revises = ", ".join(down_revision) if isinstance(down_revision, tuple) else down_revision
    # On one line, as a formatter would leave it.
    docstring = " ".join((message or slug.replace("_", " ")).split())
    docstring = docstring.replace("\\", "\\\\").replace('"""', "'''")
    if docstring.startswith('"'):
        docstring = " " + docstring  # not four quotes in a row
    header = codestyle.format_code(
        f"revision = {_literal(revision)}\n"
        f"down_revision = {_literal(down_revision)}\n"
        f"branch_labels = {_literal((app.label,) if is_first else None)}\n"
        f"depends_on = {_literal(deps)}\n"
        '# Django migrations that must be applied first, e.g. [("shop", "0004_order_status")]\n'
        f"django_dependencies: list[tuple[str, str]] = {_pairs(django_dependencies)}\n"
    )
    source = TEMPLATE.format(
        docstring=docstring,
        revision=revision,
        revises=f" {revises}" if revises else "",
        create_date=datetime.datetime.now().isoformat(sep=" ", timespec="seconds"),
        imports=imports.strip(),
        header=header,
        upgrade=_indent(upgrade),
        downgrade=_indent(downgrade),
    )
    return NewMigration(app.label, app.path / filename, source, revision)


#: Formatters tried in order, like Alembic's ``post_write_hooks``; the
#: source comes on stdin, so the target's config (line length) applies.
FORMATTERS = (
    ("ruff", ["format", "--quiet", "--stdin-filename", "{path}", "-"]),
    ("black", ["--quiet", "--stdin-filename", "{path}", "-"]),
)


def formatter_command(tool: str) -> list[str] | None:
    """How to run ``tool`` (``"ruff"``, ``"black"``); ``None`` when it is not installed.

    First the one installed with the running interpreter, next to it: a
    virtualenv's ``bin/`` is often not on ``PATH`` (``.venv/bin/python
    manage.py ...``, CI in a bare environment). Then ``PATH``; then
    ``python -m <tool>`` when only its package is importable.
    """
    found = tools.executable(tool)
    if found is not None:
        return [found]
    if sys.executable and importlib.util.find_spec(tool) is not None:
        return [sys.executable, "-m", tool]
    return None


def installed_formatter() -> tuple[list[str], list[str]] | None:
    """The first of :data:`FORMATTERS` installed: how to run it, and its arguments.

    ``None`` when neither is installed.
    """
    for tool, arguments in FORMATTERS:
        executable = formatter_command(tool)
        if executable is not None:
            return executable, arguments
    return None


def format_source(source: str, path: Path) -> str | None:
    """``source`` formatted by ``ruff format`` or ``black``, whichever is installed.

    ``None`` when neither is installed or formatting fails: a generated
    script must never be lost to a formatter.
    """
    formatter = installed_formatter()
    if formatter is not None:
        executable, arguments = formatter
        command = [*executable, *(arg.format(path=path) for arg in arguments)]
        # Run from the script's folder: config is found from there, as it is
        # when the user formats the project.
        folder = next((p for p in path.parents if p.is_dir()), None)
        try:
            done = subprocess.run(
                command,
                input=source,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                cwd=folder,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 and done.stdout.strip() else None
    return None


def write(migration: NewMigration) -> Path:
    """Write ``migration``, creating the package on first use; never overwrite."""
    folder = migration.path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        init = folder / "__init__.py"
        if not init.exists():
            init.touch()
        with open(migration.path, "x", encoding="utf-8") as handle:
            handle.write(migration.source)
    except FileExistsError:
        raise WriteError(
            f"{migration.path} already exists; it was not overwritten. Use another -m name."
        ) from None
    except OSError as exc:
        raise WriteError(f"Cannot write {migration.path}: {exc.strerror}.") from None
    return migration.path
