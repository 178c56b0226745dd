"""Adopted Alembic histories: hex revision ids, ``<rev>_<slug>.py`` names, merges.

Scripts copied unchanged from an Alembic project (no ``branch_labels`` on the
first one, no ``django_dependencies``) run, are listed in history order
whatever their names, can be targeted by id, and new files continue with
Django-style numbers.
"""

from __future__ import annotations

import hashlib
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from django.test.utils import override_settings

from django_alembic_ops import bridge

from .conftest import Project, inspect_db, query, run, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ALEMBIC_TEMPLATE = '''\
"""{message}

Revision ID: {revision}
Revises: {revises}
Create Date: 2021-03-04 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''


@dataclass(frozen=True)
class AlembicScript:
    revision: str
    down: str | tuple[str, ...] | None
    slug: str
    upgrade: str = "pass"
    downgrade: str = "pass"
    table: str | None = None  # the table it creates, if any

    @property
    def name(self) -> str:
        return f"{self.revision}_{self.slug}"

    @property
    def downs(self) -> tuple[str, ...]:
        if self.down is None:
            return ()
        return (self.down,) if isinstance(self.down, str) else self.down

    def source(self) -> str:
        revises = ", ".join(self.downs)
        return ALEMBIC_TEMPLATE.format(
            message=self.slug.replace("_", " "),
            revision=self.revision,
            revises=revises,
            down=self.down,
            upgrade=textwrap.indent(self.upgrade, "    "),
            downgrade=textwrap.indent(self.downgrade, "    "),
        )


def write(project: Project, label: str, scripts: list[AlembicScript]) -> None:
    folder = project.root / label / "migrations_ops"
    for script in scripts:
        (folder / f"{script.name}.py").write_text(script.source())


def listed(label: str, alias: str) -> list[tuple[str, bool]]:
    """``opsshowmigrations label`` as (name, applied), checking the format."""
    lines = run("opsshowmigrations", label, database=alias).splitlines()
    assert lines[0] == label
    assert all(line[:5] in (" [X] ", " [ ] ") for line in lines[1:]), lines
    return [(line[5:], line[:5] == " [X] ") for line in lines[1:]]


# -- history order -------------------------------------------------------------


def test_hex_names_are_listed_in_history_order(project: Project, alias: str) -> None:
    # Alphabetically: 0b9c.., 33cc.., 5e5e.., a0a0.., f1a2..; history: a root,
    # one child, a fork into two branches (siblings by name) and their merge.
    project.app("legacy")

    def create(table: str) -> dict[str, str]:
        return {
            "upgrade": f'op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))',
            "downgrade": f'op.drop_table("{table}")',
            "table": table,
        }

    write(
        project,
        "legacy",
        [
            AlembicScript("f1a2b3c4d5e6", None, "create_a", **create("legacy_a")),
            AlembicScript("0b9c8d7e6f5a", "f1a2b3c4d5e6", "create_b", **create("legacy_b")),
            AlembicScript("a0a0a0a0a0a0", "0b9c8d7e6f5a", "create_c", **create("legacy_c")),
            AlembicScript("5e5e5e5e5e5e", "0b9c8d7e6f5a", "create_d", **create("legacy_d")),
            AlembicScript("33cc33cc33cc", ("a0a0a0a0a0a0", "5e5e5e5e5e5e"), "merge"),
        ],
    )
    run("opsmigrate", "legacy", "0b9c", database=alias)
    assert listed("legacy", alias) == [
        ("f1a2b3c4d5e6_create_a", True),
        ("0b9c8d7e6f5a_create_b", True),
        ("5e5e5e5e5e5e_create_d", False),
        ("a0a0a0a0a0a0_create_c", False),
        ("33cc33cc33cc_merge", False),
    ]
    run("opsmigrate", database=alias)
    assert all(applied for _, applied in listed("legacy", alias))
    assert {"legacy_a", "legacy_b", "legacy_c", "legacy_d"} <= table_names(alias)
    # A new file continues with the number of scripts in the history plus one.
    out = run("opsmakemigration", "legacy", "--empty", "-m", "add e")
    assert out.splitlines()[-1].endswith("/legacy/migrations_ops/0006_add_e.py"), out
    assert [name for name, _ in listed("legacy", alias)][-2:] == [
        "33cc33cc33cc_merge",
        "0006_add_e",
    ]


# -- a long adopted history ----------------------------------------------------


def hex_id(label: str, number: int) -> str:
    """A deterministic 12-digit hex revision id, shaped like alembic.util.rev_id()."""
    return hashlib.sha1(f"{label}-{number}".encode()).hexdigest()[:12]


def generate(label: str, count: int) -> list[AlembicScript]:
    """``count`` scripts: mostly new tables, some added columns, a fork and merge every 40."""
    scripts: list[AlembicScript] = []
    tables: list[str] = []

    def add(down: str | tuple[str, ...] | None, kind: str) -> str:
        number = len(scripts) + 1
        revision = hex_id(label, number)
        if kind == "merge":
            scripts.append(AlembicScript(revision, down, f"merge_{number}"))
        elif kind == "column" and tables:
            table = tables[-1]
            scripts.append(
                AlembicScript(
                    revision,
                    down,
                    f"add_note_to_{table}",
                    upgrade=f'op.add_column("{table}", sa.Column("note", sa.String(20)))',
                    downgrade=f'with op.batch_alter_table("{table}") as batch:\n'
                    '    batch.drop_column("note")',
                )
            )
        else:
            table = f"{label}_t{number:03d}"
            tables.append(table)
            scripts.append(
                AlembicScript(
                    revision,
                    down,
                    f"create_{table}",
                    upgrade=f'op.create_table("{table}", '
                    'sa.Column("id", sa.Integer, primary_key=True), '
                    'sa.Column("name", sa.String(50), nullable=False))\n'
                    f'op.create_index("ix_{table}_name", "{table}", ["name"])',
                    downgrade=f'op.drop_index("ix_{table}_name", table_name="{table}")\n'
                    f'op.drop_table("{table}")',
                    table=table,
                )
            )
        return revision

    head: str | None = None
    while len(scripts) < count:
        number = len(scripts) + 1
        if number % 40 == 0:
            # Two branches off one revision (three and two scripts), then a merge.
            left = add(head, "table")
            left = add(left, "column")
            left = add(left, "table")
            right = add(head, "table")
            right = add(right, "table")
            head = add((left, right), "merge")
        else:
            head = add(head, "column" if number % 7 == 0 else "table")
    return scripts


def test_a_long_adopted_history(project: Project, alias: str) -> None:
    project.app("legacy")
    history = generate("legacy", 210)
    assert len(history) >= 200 and sum(1 for s in history if isinstance(s.down, tuple)) >= 5
    write(project, "legacy", history)
    by_name = {script.name: script for script in history}
    created = {script.table for script in history if script.table}

    started = time.perf_counter()
    out = run("opsmigrate", database=alias)
    assert out.count("... OK") == len(history)
    with inspect_db(alias) as inspector:
        names = set(inspector.get_table_names())
        assert created <= names
        noted = next(s for s in history if s.slug.startswith("add_note_to_"))
        table = noted.slug.removeprefix("add_note_to_")
        assert "note" in {column["name"] for column in inspector.get_columns(table)}

    # Listed in history order: every script after the scripts it revises.
    order = listed("legacy", alias)
    assert sorted(name for name, _ in order) == sorted(by_name)
    assert all(applied for _, applied in order)
    position = {name: index for index, (name, _) in enumerate(order)}
    revision_name = {script.revision: script.name for script in history}
    for script in history:
        for down in script.downs:
            assert position[revision_name[down]] < position[script.name], script.name
    assert [name for name, _ in order] != sorted(by_name)  # not alphabetical

    # Back to a revision in the middle, by its id; then forward again.
    middle = history[len(history) // 2]
    run("opsmigrate", "legacy", middle.revision, database=alias)
    kept = {name for name, applied in listed("legacy", alias) if applied}
    assert middle.name in kept and history[-1].name not in kept
    later = {s.table for s in history if s.table and s.name not in kept}
    assert later and not later & table_names(alias)
    assert {s.table for s in history if s.table and s.name in kept} <= table_names(alias)
    run("opsmigrate", "legacy", database=alias)
    assert created <= table_names(alias)
    elapsed = time.perf_counter() - started
    assert elapsed < 60, f"{elapsed:.1f}s"

    # New files continue with Django-style numbers; a hex id is never a number.
    out = run("opsmakemigration", "legacy", "--empty", "-m", "add u")
    path = Path(out.splitlines()[-1].strip())
    assert path.name == f"{len(history) + 1:04d}_add_u.py"
    out = run("opsmakemigration", "legacy", "--empty", "-m", "add v")
    assert Path(out.splitlines()[-1].strip()).name == f"{len(history) + 2:04d}_add_v.py"
    assert [name for name, _ in listed("legacy", alias)][-2:] == [
        f"{len(history) + 1:04d}_add_u",
        f"{len(history) + 2:04d}_add_v",
    ]


def test_two_apps_without_branch_labels(project: Project, alias: str) -> None:
    # Alembic scripts copied unchanged: no app's first script has branch_labels.
    for label in ("legacy", "billing"):
        project.app(label)
        write(project, label, generate(label, 6))
    run("opsmigrate", database=alias)
    assert {"legacy_t001", "billing_t006"} <= table_names(alias)
    run("opsmigrate", "billing", "zero", database=alias)
    assert not any(name.startswith("billing_") for name in table_names(alias))
    assert "legacy_t006" in table_names(alias)
    assert [applied for _, applied in listed("billing", alias)] == [False] * 6


# -- taking over a database plain Alembic migrated ------------------------------

PLAIN_ENV = """
from alembic import context

# Alembic's cookbook recipe for a connection passed in: here the test database's.
connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
"""


def test_takes_over_a_database_plain_alembic_migrated(project: Project, alias: str) -> None:
    history = generate("legacy", 8)
    folder = project.root / "plain_alembic"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(PLAIN_ENV)
    for script in history:
        (folder / "versions" / f"{script.name}.py").write_text(script.source())
    config = Config()
    config.set_main_option("script_location", str(folder))
    with bridge.sqlalchemy_connection(alias) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, history[5].revision)
    assert query(alias, "SELECT version_num FROM alembic_version") == [(history[5].revision,)]

    # The same files, unchanged, in an app; ops reads Alembic's version table.
    project.app("legacy")
    write(project, "legacy", history)
    with override_settings(ALEMBIC_OPS={"VERSION_TABLE": "alembic_version"}):
        assert listed("legacy", alias) == [(s.name, i <= 5) for i, s in enumerate(history)]
        out = run("opsmigrate", database=alias)
        assert [line for line in out.splitlines() if line.startswith("  Applying")] == [
            f"  Applying legacy.{script.name}... OK" for script in history[6:]
        ]
    assert query(alias, "SELECT version_num FROM alembic_version") == [(history[-1].revision,)]
    assert "alembic_ops_version" not in table_names(alias)
    assert {s.table for s in history if s.table} <= table_names(alias)
