"""New migration files: numbering, names, rendering; never overwriting."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic.util import rev_id

from .discovery import OpsApp
from .errors import WriteError

_NUMBER = re.compile(r"^(\d+)_")
_MAX_SLUG = 60

TEMPLATE = '''\
"""{docstring}

Revision ID: {revision}
Revises:{revises}
Create Date: {create_date}
"""

{imports}

revision = {revision_literal}
down_revision = {down_revision}
branch_labels = {branch_labels}
depends_on = {depends_on}
{django_dependencies}

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


def next_number(folder: Path) -> int:
    numbers = [
        int(match.group(1))
        for path in (folder.iterdir() if folder.is_dir() else [])
        if (match := _NUMBER.match(path.name))
    ]
    return max(numbers, default=0) + 1


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
    message: str | None,
    down_revision: str | tuple[str, ...] | None,
    depends_on: Sequence[str] = (),
    upgrade: str = "pass",
    downgrade: str = "pass",
    imports: str = DEFAULT_IMPORTS,
    name: str | None = None,
    django_dependencies: Sequence[tuple[str, str]] = (),
) -> NewMigration:
    """Render the next numbered script of ``app`` (nothing is written)."""
    number = next_number(app.path)
    slug = slugify(message or "") or slugify(name or "") or default_name(number)
    filename = f"{number:04d}_{slug}.py"
    revision = rev_id()
    is_first = down_revision is None
    deps: str | tuple[str, ...] | None = None
    if depends_on:
        deps = depends_on[0] if len(depends_on) == 1 else tuple(depends_on)
    revises = ", ".join(down_revision) if isinstance(down_revision, tuple) else down_revision
    docstring = (message or slug.replace("_", " ")).replace('"""', "'''").replace("\\", "\\\\")
    source = TEMPLATE.format(
        docstring=docstring,
        revision=revision,
        revision_literal=_literal(revision),
        revises=f" {revises}" if revises else "",
        create_date=datetime.datetime.now().isoformat(sep=" ", timespec="seconds"),
        imports=imports.strip(),
        down_revision=_literal(down_revision),
        branch_labels=_literal((app.label,) if is_first else None),
        depends_on=_literal(deps),
        django_dependencies=(
            '# Django migrations that must be applied first, e.g. [("shop", "0004_order_status")]\n'
            f"django_dependencies: list[tuple[str, str]] = {_pairs(django_dependencies)}\n"
        ),
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


def format_source(source: str, path: Path) -> str:
    """``source`` formatted by ``ruff format`` or ``black``, whichever is installed.

    Unchanged when neither is installed or formatting fails: a generated
    script must never be lost to a formatter.
    """
    for tool, arguments in FORMATTERS:
        executable = shutil.which(tool)
        if executable is None:
            continue
        command = [executable, *(arg.format(path=path) for arg in arguments)]
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
            return source
        return done.stdout if done.returncode == 0 and done.stdout.strip() else source
    return source


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
