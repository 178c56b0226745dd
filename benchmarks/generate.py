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
if os.environ.get("BENCH_DB_BACKEND", "sqlite") == "postgresql":
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
