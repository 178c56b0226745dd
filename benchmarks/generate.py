"""Generate the four equivalent forms of one migration history (and the autogenerate projects).

History: ``N`` migrations, migration ``i`` creates table ``bench_t{i:04d}``
(``id`` integer primary key, ``name`` varchar(100) not null, ``value`` integer
not null) and the index ``bench_t{i:04d}_name_idx`` on ``name``.

Layout written under ``root`` (a temporary directory, never the repository)::

    history-<N>/ops/       manage.py, benchsettings.py, benchops/migrations_ops/,
                           benchflushsettings.py (the same plus contenttypes and auth)
    history-<N>/alembic/   alembic.ini, env.py, script.py.mako, versions/
    history-<N>/django/    manage.py, benchsettings.py, benchdj/{models.py,migrations/}
    autogen-<M>/ops/       benchag/models.py (M unmanaged models), empty migrations_ops/
    autogen-<M>/alembic/   bench_models.py (M SQLAlchemy tables), empty versions/
    autogen-<M>/django/    benchag/models.py (M models), empty migrations/

The floor needs no files: ``floor.py`` builds the same DDL in memory.
Every generated tree is byte-compiled, so no tool pays for compiling it.
"""

from __future__ import annotations

import compileall
import textwrap
from dataclasses import dataclass
from pathlib import Path

OPS_APP = "benchops"
DJANGO_APP = "benchdj"
AUTOGEN_APP = "benchag"


def table(i: int) -> str:
    return f"bench_t{i:04d}"


def index(i: int) -> str:
    return f"{table(i)}_name_idx"


def revision(i: int) -> str:
    """Deterministic 12-hex-digit revision ids, shared by the ops and Alembic forms."""
    return f"{i:012x}"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


# -- Django settings shared by the ops and Django projects --------------------------

_SETTINGS = '''
"""Benchmark settings: the database comes from BENCH_* environment variables."""
import os

SECRET_KEY = "benchmarks-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = {apps!r}
BACKEND = os.environ.get("BENCH_DB_BACKEND", "sqlite")
if BACKEND == "postgresql":
    DATABASES = {{
        "default": {{
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["BENCH_DB_NAME"],
            "HOST": os.environ["BENCH_PG_HOST"],
            "PORT": os.environ["BENCH_PG_PORT"],
            "USER": os.environ["BENCH_PG_USER"],
            "PASSWORD": os.environ.get("BENCH_PG_PASSWORD", ""),
        }}
    }}
elif BACKEND == "mysql":
    DATABASES = {{
        "default": {{
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ["BENCH_DB_NAME"],
            "HOST": os.environ["BENCH_MYSQL_HOST"],
            "PORT": os.environ["BENCH_MYSQL_PORT"],
            "USER": os.environ["BENCH_MYSQL_USER"],
            "PASSWORD": os.environ.get("BENCH_MYSQL_PASSWORD", ""),
            # Full Unicode, as Django's docs advise for MySQL (and the harness's databases).
            "OPTIONS": {{"charset": "utf8mb4"}},
            "TEST": {{"CHARSET": "utf8mb4"}},
        }}
    }}
else:
    DATABASES = {{
        "default": {{
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["BENCH_DB_NAME"],
        }}
    }}
'''

_MANAGE = """
#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsettings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""


def _django_project(root: Path, apps: list[str]) -> None:
    _write(root / "manage.py", _MANAGE)
    _write(root / "benchsettings.py", _SETTINGS.format(apps=apps))


# The flush scenario's project: a test database also holds a handful of Django's
# tables (contenttypes, auth), which Django's flush empties and post_migrate refills.
_FLUSH_SETTINGS = '''
"""Benchmark settings for the flush scenario: benchsettings plus contenttypes and auth."""
from benchsettings import *  # noqa: F403

INSTALLED_APPS = {apps!r}
'''


# -- model / table source -------------------------------------------------------------


def _django_model(i: int, *, managed: bool) -> str:
    meta = "" if managed else "\n        managed = False"
    return f"""

class T{i:04d}(models.Model):
    name = models.CharField(max_length=100)
    value = models.IntegerField()

    class Meta:
        db_table = "{table(i)}"
        indexes = [models.Index(fields=["name"], name="{index(i)}")]{meta}
"""


def _django_models(count: int, *, managed: bool) -> str:
    body = "".join(_django_model(i, managed=managed) for i in range(1, count + 1))
    return "from django.db import models\n" + body


def _sa_tables(count: int) -> str:
    parts = ["import sqlalchemy as sa\n\nmetadata = sa.MetaData()\n"]
    for i in range(1, count + 1):
        parts.append(
            f"""
sa.Table(
    "{table(i)}",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("value", sa.Integer(), nullable=False),
    sa.Index("{index(i)}", "name"),
)
"""
        )
    return "".join(parts)


# -- Alembic revision scripts (ops and plain Alembic) ---------------------------------

_SCRIPT = '''
"""create {table}"""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down!r}
branch_labels = {branch_labels!r}
depends_on = None


def upgrade():
    op.create_table(
        "{table}",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    op.create_index("{index}", "{table}", ["name"])


def downgrade():
    op.drop_index("{index}", table_name="{table}")
    op.drop_table("{table}")
'''


def _script(i: int, *, branch_label: str | None) -> str:
    return _SCRIPT.format(
        table=table(i),
        index=index(i),
        revision=revision(i),
        down=revision(i - 1) if i > 1 else None,
        branch_labels=(branch_label,) if (branch_label and i == 1) else None,
    )


# -- plain Alembic project ---------------------------------------------------------

_ALEMBIC_INI = """
[alembic]
script_location = %(here)s

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""

# Alembic's "generic" template, trimmed: the URL comes from `-x url=...`, each
# migration gets its own transaction (as opsmigrate and Django do).
_ENV_PY = """
import os
import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = None
if {autogen!r}:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_models import metadata as target_metadata

url = context.get_x_argument(as_dictionary=True).get("url") or os.environ["BENCH_ALEMBIC_URL"]


def run_migrations_offline():
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={{"paramstyle": "named"}},
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""

_SCRIPT_MAKO = '''
"""${message}"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
'''


def _alembic_project(root: Path, *, autogen: bool) -> None:
    _write(root / "alembic.ini", _ALEMBIC_INI)
    _write(root / "env.py", _ENV_PY.format(autogen=autogen))
    _write(root / "script.py.mako", _SCRIPT_MAKO)
    (root / "versions").mkdir(parents=True, exist_ok=True)


# -- Django migrations ---------------------------------------------------------------

_DJANGO_MIGRATION = """
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = {initial}
    dependencies = {dependencies!r}
    operations = [
        migrations.CreateModel(
            name="T{i:04d}",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("value", models.IntegerField()),
            ],
            options={{
                "db_table": "{table}",
                "indexes": [models.Index(fields=["name"], name="{index}")],
            }},
        ),
    ]
"""


def django_migration_name(i: int) -> str:
    return f"{i:04d}_t{i:04d}"


# `sqlmigrate` renders one migration; this renders the whole plan the same way
# (MigrationLoader.collect_sql, which is what sqlmigrate calls) in one process.
_SQLALL_COMMAND = """
from django.core.management.base import BaseCommand
from django.db import connections
from django.db.migrations.loader import MigrationLoader


class Command(BaseCommand):
    help = "Print the SQL of every migration, from an empty database (sqlmigrate for a range)."

    def handle(self, *args, **options):
        connection = connections["default"]
        loader = MigrationLoader(connection, replace_migrations=False)
        plan, seen = [], set()
        for leaf in sorted(loader.graph.leaf_nodes()):
            for key in loader.graph.forwards_plan(leaf):
                if key not in seen:
                    seen.add(key)
                    plan.append((loader.graph.nodes[key], False))
        self.stdout.write("\\n".join(loader.collect_sql(plan)))
"""


# -- public entry points ---------------------------------------------------------------


def history(root: Path, n: int) -> Path:
    """Write the ops, Alembic and Django forms of an ``n``-migration history."""
    base = root / f"history-{n}"
    if (base / ".complete").exists():
        return base

    ops = base / "ops"
    _django_project(ops, ["django_alembic_ops", OPS_APP])
    flush_apps = ["django.contrib.contenttypes", "django.contrib.auth", "django_alembic_ops"]
    _write(ops / "benchflushsettings.py", _FLUSH_SETTINGS.format(apps=[*flush_apps, OPS_APP]))
    _write(ops / OPS_APP / "__init__.py", "")
    _write(ops / OPS_APP / "migrations_ops" / "__init__.py", "")
    for i in range(1, n + 1):
        name = f"{i:04d}_create_{table(i)}.py"
        _write(ops / OPS_APP / "migrations_ops" / name, _script(i, branch_label=OPS_APP))

    alembic = base / "alembic"
    _alembic_project(alembic, autogen=False)
    for i in range(1, n + 1):
        name = f"{i:04d}_create_{table(i)}.py"
        _write(alembic / "versions" / name, _script(i, branch_label=None))

    django = base / "django"
    _django_project(django, [DJANGO_APP])
    _write(django / DJANGO_APP / "__init__.py", "")
    _write(django / DJANGO_APP / "models.py", _django_models(n, managed=True))
    _write(django / DJANGO_APP / "migrations" / "__init__.py", "")
    for i in range(1, n + 1):
        deps = [(DJANGO_APP, django_migration_name(i - 1))] if i > 1 else []
        _write(
            django / DJANGO_APP / "migrations" / f"{django_migration_name(i)}.py",
            _DJANGO_MIGRATION.format(
                initial=i == 1, dependencies=deps, i=i, table=table(i), index=index(i)
            ),
        )
    commands = django / DJANGO_APP / "management" / "commands"
    _write(django / DJANGO_APP / "management" / "__init__.py", "")
    _write(commands / "__init__.py", "")
    _write(commands / "bench_sqlall.py", _SQLALL_COMMAND)

    compileall.compile_dir(str(base), quiet=2)
    (base / ".complete").touch()
    return base


def autogen(root: Path, m: int) -> Path:
    """Write the three autogenerate projects over ``m`` models (no migrations yet)."""
    base = root / f"autogen-{m}"
    if (base / ".complete").exists():
        return base

    ops = base / "ops"
    _django_project(ops, ["django_alembic_ops", AUTOGEN_APP])
    _write(ops / AUTOGEN_APP / "__init__.py", "")
    # Unmanaged: their tables belong to ops migrations (the autogenerate target).
    _write(ops / AUTOGEN_APP / "models.py", _django_models(m, managed=False))
    _write(ops / AUTOGEN_APP / "migrations_ops" / "__init__.py", "")

    alembic = base / "alembic"
    _alembic_project(alembic, autogen=True)
    _write(alembic / "bench_models.py", _sa_tables(m))

    django = base / "django"
    _django_project(django, [AUTOGEN_APP])
    _write(django / AUTOGEN_APP / "__init__.py", "")
    _write(django / AUTOGEN_APP / "models.py", _django_models(m, managed=True))
    _write(django / AUTOGEN_APP / "migrations" / "__init__.py", "")

    compileall.compile_dir(str(base), quiet=2)
    (base / ".complete").touch()
    return base


# -- the real-shaped history ------------------------------------------------------------
#
# What real projects run, ten migrations a cycle; cycle k (1-based) works on
# table real_t<k>, created with REAL_ROWS rows, and on the table before it:
#
#    1  create real_t<k> (parent_id: a foreign key to real_t<k-1>) and fill it
#       (one INSERT ... SELECT over a recursive CTE)
#    2  add a nullable column c_a
#    3  data UPDATE of every row: c_a = value * 3
#    4  batch: c_a NOT NULL (SQLite: the table is rebuilt, its rows copied)
#    5  an index on real_t<k-1>.value: an existing table with rows (cycle 1:
#       real_t001.name)
#    6  batch: column ref_id, a foreign key to real_t<k-1> and its index
#    7  batch: real_t<k-1>.name varchar(100) -> varchar(200) (SQLite: a table
#       that others reference is rebuilt)
#    8  add a nullable column c_b
#    9  data UPDATE of half the rows: ref_id, c_b
#   10  batch: drop c_b
#
# Every third cycle, 7 and 8 are two branches (both follow 6), 9 is their
# merge (no operations) and 10 follows it. The ops and Alembic forms are the
# same scripts, in batch form where SQLite needs it (what autogenerate writes
# there); the Django form does the same with Django's operations (the data
# changes as RunSQL, the same SQL).

REAL_APP_OPS = "realops"
REAL_APP_DJANGO = "realdj"
REAL_ROWS = 2000
REAL_CYCLE = 10
REAL_MERGE_EVERY = 3  # cycles


def real_table(k: int) -> str:
    return f"real_t{k:03d}"


def real_model(k: int) -> str:
    return f"R{k:03d}"


@dataclass(frozen=True)
class RealMigration:
    """One migration of the real-shaped history, in every form."""

    i: int  # 1-based position in the history
    slug: str
    down: tuple[int, ...]  # positions it follows (two for a merge)
    upgrade: tuple[str, ...]  # lines of upgrade() (ops/Alembic)
    django: tuple[str, ...]  # Django operations, as source


def _seed_sql(k: int, backend: str) -> str:
    parent = "x" if k > 1 else "NULL"
    if backend == "mysql":
        # MySQL's || is OR, and a recursive CTE stops at 1,000 rows by default
        # (MariaDB's max_recursive_iterations, MySQL's cte_max_recursion_depth):
        # CONCAT, and the rows from two sequences of 50 crossed.
        width = 50
        return (
            f"INSERT INTO {real_table(k)} (name, value, parent_id) "
            f"WITH RECURSIVE d(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM d "
            f"WHERE x < {width - 1}), seq(x) AS (SELECT a.x * {width} + b.x + 1 "
            f"FROM d a CROSS JOIN d b WHERE a.x < {REAL_ROWS // width}) "
            f"SELECT CONCAT('name ', x), x, {parent} FROM seq"
        )
    return (
        f"INSERT INTO {real_table(k)} (name, value, parent_id) "
        f"WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq "
        f"WHERE x < {REAL_ROWS}) SELECT 'name ' || x, x, {parent} FROM seq"
    )


def _batch(table_name: str, *lines: str) -> tuple[str, ...]:
    return (f'with op.batch_alter_table("{table_name}") as batch_op:', *(f"    {x}" for x in lines))


def _real_cycle(k: int, backend: str) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(slug, upgrade lines, Django operations) of the ten migrations of cycle ``k``."""
    t, prev = real_table(k), real_table(max(k - 1, 1))
    model, prev_model = real_model(k).lower(), real_model(max(k - 1, 1)).lower()
    merge_cycle = k % REAL_MERGE_EVERY == 0
    indexed = "value" if k > 1 else "name"  # real_t001 gets both, from cycles 1 and 2
    parent_column = (
        [f'sa.Column("parent_id", sa.Integer(), sa.ForeignKey("{prev}.id"), nullable=True),']
        if k > 1
        else ['sa.Column("parent_id", sa.Integer(), nullable=True),']
    )
    parent_field = (
        [
            f'("parent", models.ForeignKey(null=True, db_index=False, '
            f'on_delete=models.CASCADE, to="{REAL_APP_DJANGO}.{prev_model}")),'
        ]
        if k > 1
        else ['("parent_id", models.IntegerField(null=True)),']
    )
    seed = _seed_sql(k, backend)
    update_a = f"UPDATE {t} SET c_a = value * 3"
    update_b = f"UPDATE {t} SET ref_id = id, c_b = name WHERE value <= {REAL_ROWS // 2}"
    bump = f"UPDATE {t} SET value = value + 1"  # cycle 1 has no table before it to widen
    cycle = [
        (
            f"create_{t}",
            (
                "op.create_table(",
                f'    "{t}",',
                '    sa.Column("id", sa.Integer(), primary_key=True),',
                '    sa.Column("name", sa.String(100), nullable=False),',
                '    sa.Column("value", sa.Integer(), nullable=False),',
                *(f"    {line}" for line in parent_column),
                ")",
                f'op.execute("{seed}")',
            ),
            (
                "migrations.CreateModel(",
                f'    name="{real_model(k)}",',
                "    fields=[",
                '        ("id", models.AutoField(auto_created=True, primary_key=True, '
                'serialize=False, verbose_name="ID")),',
                '        ("name", models.CharField(max_length=100)),',
                '        ("value", models.IntegerField()),',
                *(f"        {line}" for line in parent_field),
                "    ],",
                f'    options={{"db_table": "{t}"}},',
                "),",
                f'migrations.RunSQL("{seed}", migrations.RunSQL.noop),',
            ),
        ),
        (
            f"add_{t}_c_a",
            (f'op.add_column("{t}", sa.Column("c_a", sa.Integer(), nullable=True))',),
            (f'migrations.AddField("{model}", "c_a", models.IntegerField(null=True)),',),
        ),
        (
            f"fill_{t}_c_a",
            (f'op.execute("{update_a}")',),
            (f'migrations.RunSQL("{update_a}", migrations.RunSQL.noop),',),
        ),
        (
            f"{t}_c_a_not_null",
            _batch(t, 'batch_op.alter_column("c_a", existing_type=sa.Integer(), nullable=False)'),
            (f'migrations.AlterField("{model}", "c_a", models.IntegerField()),',),
        ),
        (
            f"index_{prev}_{indexed}",
            (f'op.create_index("{prev}_{indexed}_idx", "{prev}", ["{indexed}"])',),
            (
                f'migrations.AddIndex("{prev_model}", '
                f'models.Index(fields=["{indexed}"], name="{prev}_{indexed}_idx")),',
            ),
        ),
        (
            f"{t}_ref",
            _batch(
                t,
                'batch_op.add_column(sa.Column("ref_id", sa.Integer(), nullable=True))',
                f'batch_op.create_foreign_key("{t}_ref_id_fk", "{prev}", ["ref_id"], ["id"])',
                f'batch_op.create_index("{t}_ref_id_idx", ["ref_id"])',
            ),
            (
                f'migrations.AddField("{model}", "ref", models.ForeignKey(null=True, '
                'on_delete=models.SET_NULL, related_name="+", '
                f'to="{REAL_APP_DJANGO}.{prev_model}")),',
            ),
        ),
        (
            f"widen_{prev}_name",
            _batch(
                prev,
                'batch_op.alter_column("name", existing_type=sa.String(100), '
                "type_=sa.String(200), existing_nullable=False)",
            )
            if k > 1
            else (f'op.execute("{bump}")',),
            (f'migrations.AlterField("{prev_model}", "name", models.CharField(max_length=200)),',)
            if k > 1
            else (f'migrations.RunSQL("{bump}", migrations.RunSQL.noop),',),
        ),
        (
            f"add_{t}_c_b",
            (f'op.add_column("{t}", sa.Column("c_b", sa.String(50), nullable=True))',),
            (
                f'migrations.AddField("{model}", "c_b", '
                "models.CharField(max_length=50, null=True)),",
            ),
        ),
        (
            f"merge_{k:03d}" if merge_cycle else f"fill_{t}_ref",
            () if merge_cycle else (f'op.execute("{update_b}")',),
            () if merge_cycle else (f'migrations.RunSQL("{update_b}", migrations.RunSQL.noop),',),
        ),
        (
            f"{t}_drop_c_b",
            _batch(t, 'batch_op.drop_column("c_b")'),
            (f'migrations.RemoveField("{model}", "c_b"),',),
        ),
    ]
    return cycle


def real_migrations(n: int, backend: str = "sqlite") -> list[RealMigration]:
    """The ``n`` migrations of the real-shaped history (``n``: a multiple of 10).

    The same operations on every database; only the seeding SQL differs on MySQL.
    """
    if n <= 0 or n % REAL_CYCLE:
        raise ValueError(f"the real-shaped history has whole cycles of {REAL_CYCLE}: got N={n}")
    out: list[RealMigration] = []
    for k in range(1, n // REAL_CYCLE + 1):
        base = (k - 1) * REAL_CYCLE
        merge_cycle = k % REAL_MERGE_EVERY == 0
        for j, (slug, upgrade, django) in enumerate(_real_cycle(k, backend), start=1):
            i = base + j
            if merge_cycle and j == 8:
                down: tuple[int, ...] = (base + 6,)  # a sibling of 7
            elif merge_cycle and j == 9:
                down = (base + 7, base + 8)  # their merge
            else:
                down = (i - 1,) if i > 1 else ()
            out.append(RealMigration(i, slug, down, upgrade, django))
    return out


def real_expected(n: int) -> dict[str, set[str]]:
    """Table -> its columns once the whole history of ``n`` migrations is applied."""
    tables = {}
    for k in range(1, n // REAL_CYCLE + 1):
        tables[real_table(k)] = {"id", "name", "value", "parent_id", "c_a", "ref_id"}
    return tables


_REAL_SCRIPT = '''
"""{slug}"""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down!r}
branch_labels = {branch_labels!r}
depends_on = None


def upgrade():
{body}


def downgrade():
    pass
'''

_REAL_DJANGO_MIGRATION = """
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = {initial}
    dependencies = {dependencies!r}
    operations = [
{operations}
    ]
"""


def _real_name(migration: RealMigration) -> str:
    return f"{migration.i:04d}_{migration.slug}"


def _real_script(migration: RealMigration, *, branch_label: str | None) -> str:
    down = tuple(revision(d) for d in migration.down)
    body = "\n".join(f"    {line}" for line in migration.upgrade) or "    pass"
    text = _REAL_SCRIPT.format(
        slug=migration.slug.replace("_", " "),
        revision=revision(migration.i),
        down=None if not down else down[0] if len(down) == 1 else down,
        branch_labels=(branch_label,) if (branch_label and migration.i == 1) else None,
        body="{body}",
    )
    return textwrap.dedent(text).lstrip("\n").replace("{body}", body)


def _real_django_migration(migration: RealMigration, names: dict[int, str]) -> str:
    operations = "\n".join(f"        {line}" for line in migration.django)
    text = _REAL_DJANGO_MIGRATION.format(
        initial=migration.i == 1,
        dependencies=[(REAL_APP_DJANGO, names[d]) for d in migration.down],
        operations="{operations}",
    )
    return textwrap.dedent(text).lstrip("\n").replace("{operations}", operations)


def real_history(root: Path, n: int, backend: str = "sqlite") -> Path:
    """Write the ops, Alembic and Django forms of the real-shaped history of ``n`` migrations.

    The floor has no files here: its statements are captured from a run of
    the Alembic form on each database (``real.py``). SQLite and PostgreSQL
    share one history; MySQL has its own (``real-<n>-mysql``), whose seeding
    SQL is written for it.
    """
    base = root / (f"real-{n}-mysql" if backend == "mysql" else f"real-{n}")
    if (base / ".complete").exists():
        return base
    migrations = real_migrations(n, backend)
    names = {m.i: _real_name(m) for m in migrations}

    ops = base / "ops"
    _django_project(ops, ["django_alembic_ops", REAL_APP_OPS])
    _write(ops / REAL_APP_OPS / "__init__.py", "")
    _write(ops / REAL_APP_OPS / "migrations_ops" / "__init__.py", "")
    alembic = base / "alembic"
    _alembic_project(alembic, autogen=False)
    for migration in migrations:
        name = f"{names[migration.i]}.py"
        ops_script = _real_script(migration, branch_label=REAL_APP_OPS)
        (ops / REAL_APP_OPS / "migrations_ops" / name).write_text(ops_script)
        (alembic / "versions" / name).write_text(_real_script(migration, branch_label=None))

    django = base / "django"
    _django_project(django, [REAL_APP_DJANGO])
    _write(django / REAL_APP_DJANGO / "__init__.py", "")
    _write(django / REAL_APP_DJANGO / "migrations" / "__init__.py", "")
    for migration in migrations:
        path = django / REAL_APP_DJANGO / "migrations" / f"{names[migration.i]}.py"
        path.write_text(_real_django_migration(migration, names))

    compileall.compile_dir(str(base), quiet=2)
    (base / ".complete").touch()
    return base


# -- the keepdb project -----------------------------------------------------------------

KEEPDB_APP = "benchkeepdb"

_KEEPDB_SETTINGS = '''
"""Benchmark settings for ``manage.py test --keepdb``: the flush project plus one test app.

The test database is kept in BENCH_TEST_DB_NAME (a file on SQLite: Django's
default in-memory test database cannot be kept).
"""
import os

from benchflushsettings import *  # noqa: F403

INSTALLED_APPS = {apps!r}
TEST_DATABASE = DATABASES["default"].setdefault("TEST", {{}})  # noqa: F405
TEST_DATABASE["NAME"] = os.environ["BENCH_TEST_DB_NAME"]
'''

_KEEPDB_TESTS = '''
"""One transactional test that writes a row to an ops table."""
from django.db import connection
from django.test import TransactionTestCase


class OpsTableTest(TransactionTestCase):
    def test_writes_a_row(self):
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO {table} (name, value) VALUES (%s, %s)", ["row", 1])
            cursor.execute("SELECT count(*) FROM {table}")
            self.assertGreaterEqual(cursor.fetchone()[0], 1)
'''

#: Settings module -> whether it has the app.
KEEPDB_SETTINGS = {"benchkeepdbsettings": True, "benchkeepdbbaresettings": False}


def keepdb_project(root: Path, n: int) -> Path:
    """The ``n``-migration history's ops project, with a test app and two settings modules.

    ``benchkeepdbsettings``: contenttypes, auth, ``django_alembic_ops``, the
    ops app and the test app; ``benchkeepdbbaresettings``: the same without
    ``django_alembic_ops`` (the ops app's tables are in the kept test
    database all the same).
    """
    project = history(root, n) / "ops"
    if (project / KEEPDB_APP / "tests.py").exists():
        return project
    base = ["django.contrib.contenttypes", "django.contrib.auth"]
    for module, with_app in KEEPDB_SETTINGS.items():
        apps = [*base, *(["django_alembic_ops"] if with_app else []), OPS_APP, KEEPDB_APP]
        _write(project / f"{module}.py", _KEEPDB_SETTINGS.format(apps=apps))
    _write(project / KEEPDB_APP / "__init__.py", "")
    _write(project / KEEPDB_APP / "tests.py", _KEEPDB_TESTS.format(table=table(1)))
    compileall.compile_dir(str(project), quiet=2)  # the new files only
    return project
