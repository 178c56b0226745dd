"""Every ``python manage.py`` command on docs/deploying.rst runs, with the output shown there.

The page tells one story — a project deployed release after release — in
``console`` blocks. This test replays it on SQLite and on PostgreSQL: before a
block, an rst comment such as ``.. deploy-test: setup=release-2`` names the
step of the story that the test must set up (new scripts, another deploy
holding the lock, a hand-made fix); then each ``$ python manage.py ...`` line
of the block is run with ``call_command`` and its output compared with the
lines that follow it. ``$ echo $?`` shows the exit status of the command before.

In expected output, a line ``…`` stands for any number of lines and ``…``
inside a line for any text. ``only=postgresql`` runs a block on PostgreSQL
only (the step is set up without it on SQLite); ``output=postgresql`` compares
the output on PostgreSQL only (SQL text differs per database), the exit status
everywhere. Finally every ``python manage.py`` command that appears anywhere on
the page must have been run.
"""

from __future__ import annotations

import os
import re
import shlex
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test.utils import override_settings

from django_alembic_ops import api, conf

from .conftest import Project

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

PAGE = Path(__file__).resolve().parent.parent / "docs" / "deploying.rst"
#: DOCS_RECORD=1 prints each command's actual output (to write the page).
RECORD = bool(os.environ.get("DOCS_RECORD"))


# -- the page ------------------------------------------------------------------------------


@dataclass
class Command:
    line: str  # what follows "$ "
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    options: dict[str, str]
    commands: list[Command]
    lineno: int


def blocks(page: Path = PAGE, marker: str = "deploy-test") -> list[Block]:
    """The console blocks of ``page``, with the ``.. <marker>:`` comment before each."""
    lines = page.read_text().splitlines()
    result: list[Block] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(f".. {marker}:"):
            options = dict(item.split("=", 1) for item in line.split(":", 1)[1].split())
        elif line.strip() == ".. code-block:: console":
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
                body.append(lines[i][3:])
                i += 1
            commands: list[Command] = []
            for text in body:
                if text.startswith("$ "):
                    commands.append(Command(text[2:]))
                elif commands:
                    commands[-1].expected.append(text.rstrip())
            result.append(Block(options, commands, start + 1))
            options = {}
            continue
        i += 1
    return result


def commands_on_page(page: Path = PAGE) -> set[str]:
    """Every ``python manage.py ...`` command anywhere on the page (blocks and prose)."""
    found = re.findall(r"python manage\.py ([^`;&|\n]+)", page.read_text())
    return {" ".join(command.split()) for command in found}


def matches(expected: list[str], actual: str) -> bool:
    while expected and not expected[-1]:
        expected = expected[:-1]
    pattern = ""
    for line in expected:
        if line.strip() == "…":
            pattern += r"(?:.*\n)*?"
        else:
            pattern += ".*?".join(re.escape(part) for part in line.split("…")) + r"\n"
    lines = [line.rstrip() for line in actual.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    text = "".join(line + "\n" for line in lines)
    return re.fullmatch(pattern, text) is not None


# -- the story's steps ---------------------------------------------------------------------

MODELS = """
from django.db import models


class Order(models.Model):
    status = models.CharField(max_length=16, default="new")
    quantity = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
"""

DJANGO_0001 = """
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("status", models.CharField(default="new", max_length=16)),
                ("quantity", models.PositiveIntegerField(default=1)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
"""

OPS = {
    "0001_open_orders_view": """
        from alembic import op

        revision = "d1a0b7e4c001"
        down_revision = None
        branch_labels = ("shop",)
        django_dependencies = [("shop", "0001_initial")]


        def upgrade():
            op.execute(
                "CREATE VIEW shop_open_order AS SELECT id, quantity, created_at "
                "FROM shop_order WHERE status IN ('new', 'paid')"
            )


        def downgrade():
            op.execute("DROP VIEW shop_open_order")
        """,
    "0002_open_orders_index": """
        import sqlalchemy as sa
        from alembic import op

        revision = "d1a0b7e4c002"
        down_revision = "d1a0b7e4c001"

        OPEN = sa.text("status IN ('new', 'paid')")


        def upgrade():
            op.create_index(
                "shop_order_open_idx", "shop_order", ["created_at"],
                sqlite_where=OPEN, postgresql_where=OPEN,
            )


        def downgrade():
            op.drop_index("shop_order_open_idx", table_name="shop_order")
        """,
    "0003_order_quantity_index": """
        from alembic import op

        revision = "d1a0b7e4c003"
        down_revision = "d1a0b7e4c002"


        def upgrade():
            with op.get_context().autocommit_block():
                op.create_index(
                    "shop_order_quantity_idx", "shop_order", ["quantity"],
                    postgresql_concurrently=True,
                )


        def downgrade():
            with op.get_context().autocommit_block():
                op.drop_index(
                    "shop_order_quantity_idx", table_name="shop_order",
                    postgresql_concurrently=True,
                )
        """,
    "0004_order_notes": """
        import sqlalchemy as sa
        from alembic import op

        revision = "d1a0b7e4c004"
        down_revision = "d1a0b7e4c003"


        def upgrade():
            op.add_column("shop_order", sa.Column("note", sa.Text(), nullable=True))
            op.create_index("shop_order_note_idx", "shop_order", ["notes"])


        def downgrade():
            op.drop_index("shop_order_note_idx", table_name="shop_order")
            op.drop_column("shop_order", "note")
        """,
    "0005_order_status_index": """
        from alembic import op

        revision = "d1a0b7e4c005"
        down_revision = "d1a0b7e4c004"


        def upgrade():
            op.create_index("shop_order_status_idx", "shop_order", ["status"])


        def downgrade():
            op.drop_index("shop_order_status_idx", table_name="shop_order")
        """,
}


class Story:
    """The project on disk and the database, as the page's steps change them."""

    def __init__(self, project: Project, alias: str) -> None:
        self.project = project
        self.alias = alias
        self.postgresql = connections[alias].vendor == "postgresql"
        #: Output rewrites for a step that cannot run as the page shows it (a
        #: 300-second lock timeout): actual -> as on the page.
        self.replacements: dict[str, str] = {}

    def script(self, name: str, source: str | None = None) -> None:
        self.project.write(f"shop/migrations_ops/{name}.py", source or OPS[name])

    # Each step may return a cleanup, run after its block.

    def step_release_1(self) -> None:
        """The first release: a Django model, its migration, two ops migrations."""
        self.project.app("shop", models=MODELS)
        self.project.write("shop/migrations/__init__.py", "")
        self.project.write("shop/migrations/0001_initial.py", DJANGO_0001)
        self.script("0001_open_orders_view")
        self.script("0002_open_orders_index")
        self.project._install()  # the app's Django migrations are there now

    def step_release_2(self) -> None:
        self.script("0003_order_quantity_index")

    def step_another_deploy(self) -> Callable[[], None]:
        """Another process is applying the pending migrations, slowly, holding the lock."""
        if not self.postgresql:
            # SQLite's in-memory test database takes no lock: just apply.
            api.migrate(database=self.alias)
            return lambda: None
        started = threading.Event()

        def other() -> None:
            try:
                api.migrate(
                    database=self.alias, on_plan=lambda steps: (started.set(), time.sleep(3))
                )
            finally:
                connections.close_all()

        thread = threading.Thread(target=other)
        thread.start()
        assert started.wait(30)
        return lambda: thread.join(60)

    def step_release_3(self) -> None:
        self.script("0004_order_notes")  # with a mistake: the index names "notes"

    def step_lock_held(self) -> Callable[[], None] | None:
        """Another run holds the lock and does not finish; LOCK_TIMEOUT is short."""
        if not self.postgresql:
            return None
        release = threading.Event()
        holding = threading.Event()

        def other() -> None:
            try:
                # Target the current state: nothing to run, the lock held until released.
                api.migrate(
                    "shop",
                    "0003",
                    database=self.alias,
                    on_plan=lambda steps: (holding.set(), release.wait(60)),
                )
            finally:
                connections.close_all()

        thread = threading.Thread(target=other)
        thread.start()
        assert holding.wait(30)
        # The page shows the default, 300 seconds; the test waits half a second.
        override = override_settings(ALEMBIC_OPS={"LOCK_TIMEOUT": 0.5})
        override.enable()
        self.replacements["more than 0.5 seconds"] = "more than 300 seconds"

        def cleanup() -> None:
            self.replacements.clear()
            override.disable()
            conf.get.cache_clear()
            release.set()
            thread.join(60)

        return cleanup

    def step_fix_0004(self) -> None:
        fixed = OPS["0004_order_notes"].replace('["notes"]', '["note"]')
        self.script("0004_order_notes", fixed)

    def step_hand_made_index(self) -> None:
        """A DBA created an index by hand; release 4 brings the migration for it."""
        self.script("0005_order_status_index")
        with connections[self.alias].cursor() as cursor:
            cursor.execute("CREATE INDEX shop_order_status_idx ON shop_order (status)")

    # Checks of what the page says about the database after a block (after=...).

    def check_rolled_back(self) -> None:
        """The failed migration's first statement (ADD COLUMN note) was rolled back too."""
        with connections[self.alias].cursor() as cursor:
            description = connections[self.alias].introspection.get_table_description(
                cursor, "shop_order"
            )
        assert "note" not in [column.name for column in description]

    def check_kept_hand_made_index(self) -> None:
        with connections[self.alias].cursor() as cursor:
            constraints = connections[self.alias].introspection.get_constraints(
                cursor, "shop_order"
            )
        assert "shop_order_status_idx" in constraints

    def setup(self, names: str) -> list[Callable[[], None]]:
        cleanups = []
        for name in names.split(","):
            cleanup = getattr(self, f"step_{name.replace('-', '_')}")()
            if cleanup is not None:
                cleanups.append(cleanup)
        return cleanups

    def run(self, line: str) -> tuple[str, int]:
        """``python manage.py <args>`` through call_command: (output, exit status)."""
        argv = shlex.split(line)
        assert argv[:2] == ["python", "manage.py"], line
        out = StringIO()
        status = 0
        try:
            call_command(*argv[2:], database=self.alias, stdout=out, stderr=out, no_color=True)
        except CommandError as exc:
            out.write(f"CommandError: {exc}\n")
            status = 1
        except SystemExit as exc:
            status = int(exc.code or 0)
        text = out.getvalue()
        if self.alias != "default":
            text = text.replace(f"database '{self.alias}'", "database 'default'")
        for actual, shown in self.replacements.items():
            text = text.replace(actual, shown)
        return text, status


# -- the test ------------------------------------------------------------------------------


@pytest.fixture
def story(project: Project, alias: str) -> Iterator[Story]:
    if connections[alias].vendor == "mysql":
        pytest.skip(
            "the page's story needs transactional DDL (a failed migration rolled back whole, "
            "fixed and run again); MySQL commits DDL at once: its recovery is in "
            "docs/database.rst, tested in test_wiring.py"
        )
    story = Story(project, alias)
    yield story
    # Leave the database as the project fixture expects: no ops migration applied.
    api.migrate("shop", "zero", database=alias)
    with connections[alias].cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS shop_order_status_idx")


def test_deploying_page(story: Story) -> None:
    run_commands: set[str] = set()
    last_status = 0
    for block in blocks():
        cleanups = story.setup(block.options["setup"]) if "setup" in block.options else []
        try:
            if block.options.get("only") == "postgresql" and not story.postgresql:
                run_commands |= {" ".join(c.line.split()[2:]) for c in block.commands}
                continue
            compare = block.options.get("output") != "postgresql" or story.postgresql
            for command in block.commands:
                if command.line == "echo $?":
                    if RECORD:
                        print(f"$ echo $?\n{last_status}")
                    shown = [line for line in command.expected if line]
                    assert RECORD or shown == [str(last_status)], f"line {block.lineno}"
                    continue
                output, last_status = story.run(command.line)
                run_commands.add(" ".join(command.line.split()[2:]))
                if RECORD:
                    print(f"\n$ {command.line}   [exit {last_status}]\n{output}")
                elif compare:
                    assert matches(command.expected, output), (
                        f"docs/deploying.rst, block at line {block.lineno}: "
                        f"$ {command.line}\n--- expected\n"
                        + "\n".join(command.expected)
                        + f"\n--- actual\n{output}"
                    )
        finally:
            for cleanup in cleanups:
                cleanup()
        if "after" in block.options:
            getattr(story, f"check_{block.options['after'].replace('-', '_')}")()
    assert not RECORD, "DOCS_RECORD is set: outputs printed, nothing compared"
    assert commands_on_page() <= run_commands, commands_on_page() - run_commands


def test_page_shapes() -> None:
    """The story's annotations name real steps, and the page has commands to run."""
    steps = {name[5:].replace("_", "-") for name in dir(Story) if name.startswith("step_")}
    checks = {name[6:].replace("_", "-") for name in dir(Story) if name.startswith("check_")}
    named = set()
    for block in blocks():
        named |= set(block.options.get("setup", "").split(",")) - {""}
        assert set(block.options) <= {"setup", "only", "output", "after"}, block.lineno
        assert block.options.get("after", "rolled-back") in checks, block.lineno
    assert named == steps
    assert len(commands_on_page()) >= 10


def test_matches() -> None:
    assert matches(["a", "…", "d"], "a\nb\nc\nd\n")
    assert matches(["a…c"], "abc\n")
    assert not matches(["a", "d"], "a\nb\nd\n")
    assert matches(["x", ""], "x\n\n")


def test_scripts_are_valid_python() -> None:
    for source in OPS.values():
        compile(textwrap.dedent(source), "<script>", "exec")
