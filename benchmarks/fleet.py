"""Fleets: ``opsmigrate --tenants`` against django-tenants' ``migrate_schemas``.

``python -m benchmarks --scenarios fleet [--tenants 200 1000] [--fleet-migrations 20]``
builds, on the PostgreSQL server the harness is given, one django-tenants
project (tenant model ``customers.Client``) with T tenant schemas and two
tenant apps holding the same M migrations: ``fleetops`` as ops scripts,
``fleetdj`` as Django migrations. Migration ``i`` is, in turn, a new table
(``CreateModel`` / ``op.create_table``), a new nullable column, an index on
it, and a data update of that column (``RunPython`` through the ORM /
``op.execute("UPDATE ...")``), so M = 20 is five tables with all four.
Their tables have different names (``dj_fleet_001`` / ``ops_fleet_001``), so
both apps live in the same schemas. django-tenants is imported only by the
generated project's processes, never by this module.

Timed, each a whole process, side by side in one run:

- **apply**: every tenant from empty to head, on a fresh copy of the
  database (T empty schemas): ``opsmigrate --tenants --jobs 1``,
  ``--jobs 2``, ``--executor celery`` (two Celery workers, when a Redis URL
  is given) and ``migrate_schemas --executor=multiprocessing`` (django-tenants'
  pool of 2 forked processes). Checked afterwards: every schema holds every
  table and records the head (ops) or the M migrations (Django).
- **no-op**: the same database with both apps at head in every schema:
  ``opsmigrate --tenants`` and ``migrate_schemas`` with django-tenants'
  standard and multiprocessing executors.

Memory: the kernel's peak RSS (``VmHWM``) of the timed process and of every
process it starts, sampled every 0.1 s, so only growth in a process's last
0.1 s can be missed. ``parent``: the command's process; ``workers``: the
pool's processes (the largest, and how many there were; multiprocessing's
resource tracker is left out); for Celery, the two worker processes. CPU:
the process and the children it waited for (its pool's workers; not the
Celery workers, which are not its children). The 1-minute load average is
recorded before and after each timed process: the machine may be shared.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.run import PgServer

OPS_APP = "fleetops"
DJANGO_APP = "fleetdj"
JOBS = 2  # the machine the goals are set for has 2 cores
KINDS = ("create table", "add column", "index", "data update")
SAMPLE_SECONDS = 0.1

#: What each timed tool runs (``manage.py`` arguments), by the name used in the results.
APPLY_TOOLS = {
    "ops --jobs 1": ["opsmigrate", "--tenants", "--jobs", "1"],
    "ops --jobs 2": ["opsmigrate", "--tenants", "--jobs", str(JOBS)],
    "ops --executor celery": ["opsmigrate", "--tenants", "--executor", "celery"],
    "django-tenants multiprocessing": ["migrate_schemas", "--executor=multiprocessing"],
}
NOOP_TOOLS = {
    "ops": ["opsmigrate", "--tenants"],
    "django-tenants standard": ["migrate_schemas"],
    "django-tenants multiprocessing": ["migrate_schemas", "--executor=multiprocessing"],
}
_SUMMARY = re.compile(
    r"^Fleet: (\d+) targets?: (\d+) at head, (\d+) migrated, (\d+) failed, (\d+) not started",
    re.MULTILINE,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The fleet scenario's options (``run.py`` adds them to its parser)."""
    group = parser.add_argument_group("fleet scenario (--scenarios fleet, PostgreSQL)")
    group.add_argument(
        "--tenants",
        type=int,
        nargs="+",
        default=[1000],
        metavar="T",
        help="Tenant schemas (default: 1000; give two sizes, e.g. 200 1000, to see memory "
        "against T).",
    )
    group.add_argument(
        "--fleet-migrations",
        type=int,
        default=20,
        metavar="M",
        help="Migrations per tenant app (default: 20).",
    )
    group.add_argument(
        "--fleet-peer-apply-max",
        type=int,
        metavar="T",
        help="Time django-tenants' full apply only at sizes up to T (it is the slow one); "
        "default: at every size.",
    )
    group.add_argument(
        "--redis-url",
        default=os.environ.get("OPS_TEST_REDIS_URL"),
        help="A Redis server for the Celery executor's row (default: $OPS_TEST_REDIS_URL; "
        "without one the row is n/a).",
    )


# -- the generated project -------------------------------------------------------------


def kind(i: int) -> str:
    """What migration ``i`` (from 1) does."""
    return KINDS[(i - 1) % len(KINDS)]


def table_number(i: int) -> int:
    """The table migration ``i`` works on (migration 1, 5, 9, ... create one each)."""
    return (i - 1) // len(KINDS) + 1


def ops_table(k: int) -> str:
    return f"ops_fleet_{k:03d}"


def dj_table(k: int) -> str:
    return f"dj_fleet_{k:03d}"


def tables_created(m: int) -> int:
    return table_number(m)


def indexes_created(m: int) -> int:
    return sum(1 for i in range(1, m + 1) if kind(i) == "index")


def revision(i: int) -> str:
    return f"f1ee7{i:07x}"


def migration_name(i: int) -> str:
    k = table_number(i)
    slug = {
        "create table": f"create_fleet_{k:03d}",
        "add column": f"fleet_{k:03d}_status",
        "index": f"fleet_{k:03d}_status_idx",
        "data update": f"fleet_{k:03d}_activate",
    }[kind(i)]
    return f"{i:04d}_{slug}"


def schema_name(i: int) -> str:
    return f"tenant_{i:04d}"


_SETTINGS = '''
"""Benchmark settings: a django-tenants project; the database from BENCH_* variables."""
import os

SECRET_KEY = "benchmarks-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
SHARED_APPS = ["django_tenants", "customers", "django.contrib.contenttypes", "django_alembic_ops"]
TENANT_APPS = ["{dj}", "{ops}"]
INSTALLED_APPS = SHARED_APPS + TENANT_APPS
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
TENANT_MULTIPROCESSING_MAX_PROCESSES = {jobs}
DATABASES = {{
    "default": {{
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": os.environ["BENCH_DB_NAME"],
        "HOST": os.environ["BENCH_PG_HOST"],
        "PORT": os.environ["BENCH_PG_PORT"],
        "USER": os.environ["BENCH_PG_USER"],
        "PASSWORD": os.environ.get("BENCH_PG_PASSWORD", ""),
    }}
}}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
ALEMBIC_OPS = {{
    "TENANTS": "django_alembic_ops.tenants.django_tenants_schemas",
    "TENANT_APPS": ["{ops}"],
    # The docs' django-tenants recipe: migrate_schemas runs Django's migrations,
    # opsmigrate --tenants the ops ones.
    "RUN_WITH_MIGRATE": False,
}}
if os.environ.get("BENCH_REDIS_URL"):
    ALEMBIC_OPS["CELERY_APP"] = "celeryapp.app"
'''

_MANAGE = """
#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetsettings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

_CUSTOMERS = """
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)


class Domain(DomainMixin):
    pass
"""

_CELERY_APP = """
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetsettings")

app = Celery("fleet")
app.conf.update(
    broker_url=os.environ["BENCH_REDIS_URL"],
    result_backend=os.environ["BENCH_REDIS_URL"],
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    worker_disable_prefetch=True,
)
app.autodiscover_tasks()
"""

_OPS_SCRIPT = '''
"""{title}"""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down!r}
branch_labels = {branch_labels!r}
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''


def _ops_bodies(i: int) -> tuple[str, str]:
    table = ops_table(table_number(i))
    index = f"{table}_status_idx"
    return {
        "create table": (
            f"op.create_table(\n"
            f'    "{table}",\n'
            f'    sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),\n'
            f'    sa.Column("name", sa.String(100), nullable=False),\n'
            f'    sa.Column("value", sa.Integer(), nullable=False),\n'
            f")",
            f'op.drop_table("{table}")',
        ),
        "add column": (
            f'op.add_column("{table}", sa.Column("status", sa.String(20), nullable=True))',
            f'op.drop_column("{table}", "status")',
        ),
        "index": (
            f'op.create_index("{index}", "{table}", ["status"])',
            f'op.drop_index("{index}", table_name="{table}")',
        ),
        "data update": (
            f"op.execute(\"UPDATE {table} SET status = 'active' WHERE status IS NULL\")",
            f"op.execute(\"UPDATE {table} SET status = NULL WHERE status = 'active'\")",
        ),
    }[kind(i)]


def _ops_script(i: int) -> str:
    upgrade, downgrade = _ops_bodies(i)
    return _OPS_SCRIPT.format(
        title=migration_name(i)[5:].replace("_", " "),
        revision=revision(i),
        down=revision(i - 1) if i > 1 else None,
        branch_labels=(OPS_APP,) if i == 1 else None,
        upgrade=textwrap.indent(upgrade, "    "),
        downgrade=textwrap.indent(downgrade, "    "),
    )


_DJANGO_MIGRATION = """
from django.db import migrations, models
{functions}

class Migration(migrations.Migration):
    initial = {initial}
    dependencies = {dependencies!r}
    operations = [
{operation}
    ]
"""

_ACTIVATE = '''

def activate(apps, schema_editor):
    """What a Django data migration does: the ORM, through the historical model."""
    model = apps.get_model("{app}", "{model}")
    model.objects.using(schema_editor.connection.alias).filter(status__isnull=True).update(
        status="active"
    )


def deactivate(apps, schema_editor):
    model = apps.get_model("{app}", "{model}")
    model.objects.using(schema_editor.connection.alias).filter(status="active").update(
        status=None
    )
'''


def _model(k: int) -> str:
    return f"Fleet{k:03d}"


def _django_migration(i: int) -> str:
    k = table_number(i)
    model = _model(k)
    functions = ""
    operation = {
        "create table": (
            f"migrations.CreateModel(\n"
            f'    name="{model}",\n'
            f"    fields=[\n"
            f'        ("id", models.AutoField(auto_created=True, primary_key=True, '
            f'serialize=False, verbose_name="ID")),\n'
            f'        ("name", models.CharField(max_length=100)),\n'
            f'        ("value", models.IntegerField()),\n'
            f"    ],\n"
            f'    options={{"db_table": "{dj_table(k)}"}},\n'
            f"),"
        ),
        "add column": (
            f'migrations.AddField(model_name="{model.lower()}", name="status", '
            f"field=models.CharField(max_length=20, null=True)),"
        ),
        "index": (
            f'migrations.AddIndex(model_name="{model.lower()}", index=models.Index('
            f'fields=["status"], name="{dj_table(k)}_status_idx")),'
        ),
        "data update": "migrations.RunPython(activate, deactivate),",
    }[kind(i)]
    if kind(i) == "data update":
        functions = _ACTIVATE.format(app=DJANGO_APP, model=model)
    dependencies = [(DJANGO_APP, migration_name(i - 1))] if i > 1 else []
    return _DJANGO_MIGRATION.format(
        functions=functions,
        initial=i == 1,
        dependencies=dependencies,
        operation=textwrap.indent(operation, " " * 8),
    )


def _django_models(m: int) -> str:
    """The models as they are after all ``m`` migrations (so no "changes" warning)."""
    parts = ["from django.db import models\n"]
    for k in range(1, tables_created(m) + 1):
        first = (k - 1) * len(KINDS) + 1
        lines = [
            f"class {_model(k)}(models.Model):",
            "    name = models.CharField(max_length=100)",
            "    value = models.IntegerField()",
        ]
        if first + 1 <= m:  # its "add column" migration is in the history
            lines.append("    status = models.CharField(max_length=20, null=True)")
        lines += ["", "    class Meta:", f'        db_table = "{dj_table(k)}"']
        if first + 2 <= m:  # and its "index" migration
            index = f'models.Index(fields=["status"], name="{dj_table(k)}_status_idx")'
            lines.append(f"        indexes = [{index}]")
        parts.append("\n\n" + "\n".join(lines) + "\n")
    return "".join(parts)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


def generate(root: Path, m: int) -> Path:
    """Write the django-tenants project with ``m`` ops and ``m`` Django migrations.

    ``customers``' own migration is made by ``makemigrations`` (see
    :meth:`FleetDatabase.template`), as a project's would be.
    """
    base = root / f"fleet-{m}"
    if (base / ".complete").exists():
        return base
    _write(base / "manage.py", _MANAGE)
    _write(base / "fleetsettings.py", _SETTINGS.format(dj=DJANGO_APP, ops=OPS_APP, jobs=JOBS))
    _write(base / "celeryapp.py", _CELERY_APP)
    _write(base / "customers" / "__init__.py", "")
    _write(base / "customers" / "models.py", _CUSTOMERS)
    _write(base / "customers" / "migrations" / "__init__.py", "")
    _write(base / OPS_APP / "__init__.py", "")
    _write(base / OPS_APP / "models.py", "")
    _write(base / OPS_APP / "migrations_ops" / "__init__.py", "")
    _write(base / DJANGO_APP / "__init__.py", "")
    _write(base / DJANGO_APP / "models.py", _django_models(m))
    _write(base / DJANGO_APP / "migrations" / "__init__.py", "")
    for i in range(1, m + 1):
        name = migration_name(i)
        _write(base / OPS_APP / "migrations_ops" / f"{name}.py", _ops_script(i))
        _write(base / DJANGO_APP / "migrations" / f"{name}.py", _django_migration(i))
    (base / ".complete").touch()
    return base


# -- processes and their memory ----------------------------------------------------------


@dataclass
class Outcome:
    """One timed process: times, exit, output, and the peak RSS of each process it ran."""

    wall_s: float
    cpu_s: float
    returncode: int
    stdout: str
    stderr: str
    parent_kb: int
    worker_kb: list[int]
    load_before: float
    load_after: float
    server_cpu_s: float | None = None


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return ""


def _hwm_kb(pid: int) -> int:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:  # a pool's management thread starts processes too
        found += [int(child) for child in _read(f"/proc/{pid}/task/{task}/children").split()]
    return found


class TreeSampler:
    """The peak RSS of a process and of every process under it, sampled in a thread.

    ``VmHWM`` is the kernel's high-water mark of a process's resident set, so
    a sample taken any time before the process exits holds its peak so far.
    """

    def __init__(self, roots: dict[int, str]) -> None:
        self.roots = roots  # pid -> "parent" | "worker"
        self.peaks: dict[int, int] = {}
        self.roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def sample(self) -> None:
        todo = list(self.roots)
        while todo:
            pid = todo.pop()
            if pid not in self.roles:
                self.roles[pid] = self.roots.get(pid) or self._role(pid)
            hwm = _hwm_kb(pid)
            if hwm:
                self.peaks[pid] = max(self.peaks.get(pid, 0), hwm)
            todo += _children(pid)

    @staticmethod
    def _role(pid: int) -> str:
        cmdline = _read(f"/proc/{pid}/cmdline")
        if "resource_tracker" in cmdline or "forkserver" in cmdline:
            return "helper"
        return "worker"

    def peak(self, role: str) -> list[int]:
        return [kb for pid, kb in self.peaks.items() if self.roles.get(pid) == role]


def server_cpu_s(postmaster: int) -> float:
    """CPU seconds of a local PostgreSQL's processes so far.

    The postmaster's own, its live children's (backends, background
    workers), and those of its children that ended (the kernel adds a reaped
    child's time to its parent's ``cutime``/``cstime``): the difference over a
    command is the server's work for it, wherever its backends started or ended.
    """
    ticks = os.sysconf("SC_CLK_TCK")

    def times(pid: int, *, reaped: bool) -> int:
        # Fields after the command name: 14/15 utime/stime, 16/17 cutime/cstime.
        fields = _read(f"/proc/{pid}/stat").rpartition(")")[2].split()
        if len(fields) < 15:
            return 0  # ended meanwhile
        own = int(fields[11]) + int(fields[12])
        return own + (int(fields[13]) + int(fields[14]) if reaped else 0)

    total = times(postmaster, reaped=True)
    total += sum(times(child, reaped=False) for child in _children(postmaster))
    return total / ticks


def measure(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    workers: dict[int, str] | None = None,
    postmaster: int | None = None,
) -> Outcome:
    """Run ``argv`` to its end; ``workers``: other processes whose memory counts as workers'.

    ``postmaster``: a local PostgreSQL's main process, whose CPU over the
    command is reported as the server's.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        load_before = os.getloadavg()[0]
        server_before = server_cpu_s(postmaster) if postmaster else None
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        timer = threading.Timer(timeout, os.kill, (process.pid, signal.SIGKILL))
        timer.start()
        try:
            with TreeSampler({process.pid: "parent", **(workers or {})}) as sampler:
                _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        server = None
        if postmaster and server_before is not None:
            time.sleep(0.2)  # the command's backends end when it has gone
            server = server_cpu_s(postmaster) - server_before
        out.seek(0)
        err.seek(0)
        parent = sampler.peak("parent")
        return Outcome(
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            returncode=process.returncode,
            stdout=out.read(),
            stderr=err.read(),
            # The exit's own figure for the command's process and the children
            # it reaped, when the sampler saw nothing larger.
            parent_kb=max(parent) if parent else usage.ru_maxrss,
            worker_kb=sampler.peak("worker"),
            load_before=load_before,
            load_after=os.getloadavg()[0],
            server_cpu_s=server,
        )


# -- the database ----------------------------------------------------------------------


class FleetDatabase:
    """The benchmark's database and the template every fresh copy is made from.

    The template holds the migrated public schema (django-tenants' shared
    apps), T tenants in ``customers_client`` and T empty schemas; a fresh copy
    (``CREATE DATABASE ... TEMPLATE``) is what a new deploy of the tenant apps
    sees. :meth:`drop` drops the template and every copy, after the last timed run.
    """

    def __init__(self, pg: PgServer) -> None:
        self.pg = pg
        self.name = f"ops_bench_fleet_{os.getpid()}"
        self.template_name = f"{self.name}_tpl"
        self.spent = 0  # copies set aside by fresh(), dropped by drop()

    def env(self, name: str | None = None) -> dict[str, str]:
        return {
            "BENCH_DB_NAME": name or self.name,
            "BENCH_PG_HOST": self.pg.host,
            "BENCH_PG_PORT": str(self.pg.port),
            "BENCH_PG_USER": self.pg.user,
            "BENCH_PG_PASSWORD": self.pg.password,
        }

    def template(self, tenants: int, manage: Callable[..., None]) -> None:
        """(Re)build the template with ``tenants`` tenants; ``manage`` runs a command on it.

        The previous size's copies stay until :meth:`drop` (see :meth:`fresh`);
        its template, a few hundred files, is dropped now.
        """
        self._set_aside()
        with self.pg.connect() as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {self.template_name} WITH (FORCE)")
            connection.execute(f"CREATE DATABASE {self.template_name}")
        manage("makemigrations", "customers")
        manage("migrate_schemas", "--shared")
        with self.pg.connect(self.template_name) as connection:
            connection.execute(
                "INSERT INTO customers_client (schema_name, name) VALUES ('public', 'Public')"
            )
            connection.execute(
                "INSERT INTO customers_client (schema_name, name) "
                "SELECT format('tenant_%%s', lpad(i::text, 4, '0')), format('Tenant %%s', i) "
                "FROM generate_series(1, %s) AS i",
                [tenants],
            )
            connection.execute(
                "DO $$ DECLARE s text; BEGIN "
                "FOR s IN SELECT schema_name FROM customers_client "
                "WHERE schema_name <> 'public' LOOP "
                "EXECUTE format('CREATE SCHEMA %I', s); END LOOP; END $$"
            )

    def fresh(self) -> None:
        """The benchmark database as a new copy of the template.

        The previous copy is renamed aside, not dropped: :meth:`drop` removes
        them all after the last timed run. Dropping a copy deletes its files
        (about 27,000 at 1,000 tenants), and for minutes after that ext4
        creates files several times more slowly (the kernel's
        ``recently_deleted`` check walks the freed inodes for each new one;
        measured with ``perf``: CREATE TABLE 0.7 -> 2.0 ms, almost all system
        time). A drop just before each timed run charged that to whichever
        tool ran next: ``opsmigrate --tenants --jobs 2`` at 1,000 tenants took
        28.2 and 30.0 s right after a drop, 23.8 and 23.9 s without one.
        """
        self._set_aside()
        with self.pg.connect() as connection:
            connection.execute(f"CREATE DATABASE {self.name} TEMPLATE {self.template_name}")

    def _set_aside(self) -> None:
        """Rename the current copy (if any) out of the way, for :meth:`drop` to remove."""
        with self.pg.connect() as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [self.name]
            ).fetchone()
            if exists:
                # What DROP ... WITH (FORCE) did: a run's stray session must not block it.
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    [self.name],
                )
                self.spent += 1
                connection.execute(f"ALTER DATABASE {self.name} RENAME TO {self.name}_{self.spent}")

    def drop(self) -> None:
        """Drop the template, the current copy and every copy :meth:`fresh` set aside."""
        spent = [f"{self.name}_{k}" for k in range(1, self.spent + 1)]
        with self.pg.connect() as connection:
            for name in [self.name, self.template_name, *spent]:
                connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.spent = 0

    def _tenants_where(self, query: str, expected: str) -> int:
        """How many tenant schemas give ``expected`` for ``query`` (``%I``: the schema)."""
        with self.pg.connect(self.name) as connection:
            row = connection.execute(
                "SELECT count(*) FROM customers_client c WHERE c.schema_name <> 'public' AND "
                "(xpath('/row/v/text()', query_to_xml(format(%s, c.schema_name), "
                "false, true, '')))[1]::text = %s",
                [query, expected],
            ).fetchone()
        return int(row[0])

    def count(self, sql: str, *params: Any) -> int:
        with self.pg.connect(self.name) as connection:
            return int(connection.execute(sql, list(params)).fetchone()[0])

    def check_ops(self, tenants: int, m: int) -> str:
        """Why the ops apps are not at head in every tenant ('' when they are)."""
        at_head = self._tenants_where(
            "SELECT string_agg(version_num, ',') AS v FROM %I.alembic_ops_version", revision(m)
        )
        tables = self._tables("ops\\_fleet\\_%")
        indexes = self._indexes("ops\\_fleet\\_%\\_status\\_idx")
        return _problems(tenants, m, at_head, tables, indexes, "records the ops head")

    def check_django(self, tenants: int, m: int) -> str:
        """Why Django's migrations are not all applied in every tenant ('' when they are)."""
        applied = self._tenants_where(
            f"SELECT count(*) AS v FROM %I.django_migrations WHERE app = '{DJANGO_APP}'",
            str(m),
        )
        tables = self._tables("dj\\_fleet\\_%")
        indexes = self._indexes("dj\\_fleet\\_%\\_status\\_idx")
        return _problems(tenants, m, applied, tables, indexes, f"records {m} Django migrations")

    def _tables(self, pattern: str) -> int:
        return self.count(
            "SELECT count(*) FROM pg_tables WHERE schemaname LIKE 'tenant\\_%%' "
            "AND tablename LIKE %s",
            pattern,
        )

    def _indexes(self, pattern: str) -> int:
        return self.count(
            "SELECT count(*) FROM pg_indexes WHERE schemaname LIKE 'tenant\\_%%' "
            "AND indexname LIKE %s",
            pattern,
        )

    def postmaster(self) -> int | None:
        """The server's main process when it runs on this machine (its CPU is readable)."""
        with self.pg.connect() as connection:
            backend = int(connection.execute("SELECT pg_backend_pid()").fetchone()[0])
            fields = _read(f"/proc/{backend}/stat").rpartition(")")[2].split()
            if not fields or "postgres" not in _read(f"/proc/{backend}/cmdline"):
                return None  # another machine (or a pid of this one by chance)
            return int(fields[1])  # the backend's parent

    def server_version(self) -> str:
        with self.pg.connect() as connection:
            return str(connection.execute("SHOW server_version").fetchone()[0])


def _problems(tenants: int, m: int, done: int, tables: int, indexes: int, what: str) -> str:
    expected = (tenants, tenants * tables_created(m), tenants * indexes_created(m))
    if (done, tables, indexes) == expected:
        return ""
    return (
        f"{done} of {tenants} schemas {what}; {tables} tables, {indexes} indexes "
        f"(expected {expected[1]}, {expected[2]})"
    )


# -- Celery workers ----------------------------------------------------------------------


@contextmanager
def celery_workers(project: Path, env: dict[str, str], count: int) -> Iterator[dict[int, str]]:
    """``count`` Celery workers of the project (solo pool: one task at a time each)."""

    processes: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(count)]
        try:
            yield _start_workers(project, env, processes, logs)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _start_workers(
    project: Path, env: dict[str, str], processes: list[subprocess.Popen[bytes]], logs: list[Any]
) -> dict[int, str]:
    """Start one worker per log file; wait until all answer a ping (at most 60 s)."""
    from celery import Celery

    for i, log in enumerate(logs):
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "celeryapp", "worker"]
                + ["--pool", "solo", "--concurrency", "1", "-n", f"bench{i}@%h"]
                + ["--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
                cwd=project,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    app = Celery(broker=env["BENCH_REDIS_URL"])
    try:
        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5)) < len(processes):
            if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                logs[0].seek(0)
                raise RuntimeError(f"Celery workers did not start: {logs[0].read()[-500:]}")
    finally:
        app.close()
    return {process.pid: "worker" for process in processes}


# -- the scenario ----------------------------------------------------------------------


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def _last_line(outcome: Outcome) -> str:
    text = outcome.stderr.strip() or outcome.stdout.strip()
    return (text.splitlines() or ["(no output)"])[-1][:300]


@dataclass
class FleetBench:
    """Runs the fleet scenario at each size and collects its rows."""

    args: argparse.Namespace
    pg: PgServer
    workdir: Path
    base_env: dict[str, str]
    log: Callable[[str], None]
    rows: list[dict[str, Any]] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.db = FleetDatabase(self.pg)
        self.m = self.args.fleet_migrations
        self.project = generate(self.workdir, self.m)
        self.postmaster = self.db.postmaster()
        self.env = {**self.base_env, **self.db.env(), "DJANGO_SETTINGS_MODULE": "fleetsettings"}
        self.celery_reason = self._celery_unavailable()
        if not self.celery_reason:
            self.env["BENCH_REDIS_URL"] = self.args.redis_url

    def _celery_unavailable(self) -> str:
        if not self.args.redis_url:
            return "no Redis server given (--redis-url or $OPS_TEST_REDIS_URL)"
        for module in ("celery", "redis"):
            if util.find_spec(module) is None:
                return f"{module} is not installed (pip install -e '.[test]')"
        return ""

    def manage(self, *args: str, database: str | None = None) -> None:
        """An untimed ``manage.py`` command; fails the scenario if it fails."""
        env = {**self.env, **self.db.env(database)} if database else self.env
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=self.args.timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)}: {(done.stderr or done.stdout)[-800:]}")

    def ops_imported_from(self) -> str:
        """Where the timed processes import the package from (``--ops-rev``: an archive)."""
        done = subprocess.run(
            [sys.executable, "-c", "import django_alembic_ops; print(django_alembic_ops.__file__)"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return str(Path(done.stdout.strip()).parent)

    def run(self) -> None:
        try:
            for tenants in self.args.tenants:
                self.size(tenants)
        finally:
            self.db.drop()

    def size(self, tenants: int) -> None:
        args = self.args
        self.log(f"  fleet T={tenants}: building the template database")

        def on_template(*command: str) -> None:
            self.manage(*command, database=self.db.template_name)

        self.db.template(tenants, on_template)
        compileall.compile_dir(str(self.project), quiet=2)
        apply = self._row("apply", tenants)
        noop = self._row("noop", tenants)
        tools = list(APPLY_TOOLS)
        if self.celery_reason:
            apply["tools"]["ops --executor celery"] = {
                "status": "n/a",
                "reason": self.celery_reason,
            }
            tools.remove("ops --executor celery")
        limit = args.fleet_peer_apply_max
        if limit is not None and tenants > limit:
            reason = f"not measured at T > {limit} (--fleet-peer-apply-max)"
            apply["tools"]["django-tenants multiprocessing"] = {"status": "n/a", "reason": reason}
            tools.remove("django-tenants multiprocessing")
        for run in range(args.runs):
            shift = run % len(tools)
            for tool in tools[shift:] + tools[:shift]:
                self.log(f"  fleet T={tenants}: apply, run {run + 1}/{args.runs}: {tool}")
                self.db.fresh()
                self._record(apply, tool, self._apply(tool, tenants))
            # Both apps at head everywhere, for the no-op.
            self.log(f"  fleet T={tenants}: bringing every schema to head (untimed)")
            self.db.fresh()
            self.manage("migrate_schemas", "--executor=multiprocessing")
            self.manage(*APPLY_TOOLS["ops --jobs 2"])
            problem = self.db.check_ops(tenants, self.m) or self.db.check_django(tenants, self.m)
            if problem:
                raise RuntimeError(f"the no-op's database is not at head: {problem}")
            noop_tools = list(NOOP_TOOLS)
            shift = run % len(noop_tools)
            for tool in noop_tools[shift:] + noop_tools[:shift]:
                self.log(f"  fleet T={tenants}: no-op, run {run + 1}/{args.runs}: {tool}")
                self._record(noop, tool, self._noop(tool, tenants))

    def _row(self, scenario: str, tenants: int) -> dict[str, Any]:
        row: dict[str, Any] = {"scenario": f"fleet_{scenario}", "tenants": tenants, "m": self.m}
        row["tools"] = {}
        self.rows.append(row)
        return row

    def _timed(self, tool: str, command: list[str], workers: dict[int, str] | None) -> Outcome:
        outcome = measure(
            [sys.executable, "manage.py", *command],
            cwd=self.project,
            env=self.env,
            timeout=self.args.timeout,
            workers=workers,
            postmaster=self.postmaster,
        )
        self.loads += [outcome.load_before, outcome.load_after]
        return outcome

    def _apply(self, tool: str, tenants: int) -> dict[str, Any]:
        command = APPLY_TOOLS[tool]
        if tool == "ops --executor celery":
            with celery_workers(self.project, self.env, JOBS) as workers:
                outcome = self._timed(tool, command, workers)
        else:
            outcome = self._timed(tool, command, None)
        if outcome.returncode != 0:
            return {
                "status": "error",
                "reason": f"exit {outcome.returncode}: {_last_line(outcome)}",
            }
        if tool.startswith("ops"):
            problem = _summary_problem(outcome, tenants, migrated=tenants)
            problem = problem or self.db.check_ops(tenants, self.m)
        else:
            problem = self.db.check_django(tenants, self.m)
        if problem:
            return {"status": "error", "reason": problem}
        return _sample(outcome)

    def _noop(self, tool: str, tenants: int) -> dict[str, Any]:
        outcome = self._timed(tool, NOOP_TOOLS[tool], None)
        if outcome.returncode != 0:
            return {
                "status": "error",
                "reason": f"exit {outcome.returncode}: {_last_line(outcome)}",
            }
        if tool == "ops":
            problem = _summary_problem(outcome, tenants, migrated=0)
        else:
            # One "No migrations to apply." per schema, the public one included.
            found = outcome.stdout.count("No migrations to apply.")
            problem = "" if found == tenants + 1 else f"{found} schemas had nothing to apply"
        if problem:
            return {"status": "error", "reason": problem}
        return _sample(outcome)

    def _record(self, row: dict[str, Any], tool: str, result: dict[str, Any]) -> None:
        tools = row["tools"]
        if "status" in result:
            tools[tool] = result
            self.log(f"    {tool:<32} {result['status']}: {result['reason']}")
            return
        current = tools.setdefault(tool, {"samples": []})
        if "samples" in current:
            current["samples"].append(result)
        workers = result["worker_rss_mb"]
        shown = f", workers {max(workers):.0f} MB ({len(workers)})" if workers else ""
        server = result["server_cpu_s"]
        server_shown = "" if server is None else f", server {server:.2f}s"
        self.log(
            f"    {tool:<32} {result['wall_s']:8.2f}s (cpu {result['cpu_s']:7.2f}s"
            f"{server_shown}) parent {result['parent_rss_mb']:.0f} MB{shown}; "
            f"load {result['load'][0]:.1f}"
        )

    def finish(self) -> None:
        for row in self.rows:
            for tool, value in list(row["tools"].items()):
                if "samples" in value:
                    row["tools"][tool] = _summarize(value["samples"])
            row["ratios"] = _ratios(row)


def _summary_problem(outcome: Outcome, tenants: int, *, migrated: int) -> str:
    """Why ``opsmigrate --tenants``' summary is not the expected one ('' when it is)."""
    found = _SUMMARY.search(outcome.stdout)
    if found is None:
        return f"no fleet summary line: {_last_line(outcome)}"
    total, _, done, failed, not_started = (int(x) for x in found.groups())
    # The database's shared target (nothing to do: no shared app has ops scripts) + tenants.
    if (total, done, failed, not_started) != (tenants + 1, migrated, 0, 0):
        return found.group(0)
    return ""


def _sample(outcome: Outcome) -> dict[str, Any]:
    return {
        "wall_s": round(outcome.wall_s, 3),
        "cpu_s": round(outcome.cpu_s, 3),
        "server_cpu_s": None if outcome.server_cpu_s is None else round(outcome.server_cpu_s, 2),
        "parent_rss_mb": _mb(outcome.parent_kb),
        "worker_rss_mb": sorted(_mb(kb) for kb in outcome.worker_kb),
        "load": [round(outcome.load_before, 2), round(outcome.load_after, 2)],
    }


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def _summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    workers = [max(s["worker_rss_mb"]) for s in samples if s["worker_rss_mb"]]
    return {
        "status": "ok",
        "wall_s": round(statistics.median(s["wall_s"] for s in samples), 3),
        "wall_s_min": min(s["wall_s"] for s in samples),
        "wall_s_max": max(s["wall_s"] for s in samples),
        "cpu_s": round(statistics.median(s["cpu_s"] for s in samples), 3),
        "server_cpu_s": _median_or_none([s.get("server_cpu_s") for s in samples]),
        "parent_rss_mb": max(s["parent_rss_mb"] for s in samples),
        "worker_rss_mb": max(workers) if workers else None,
        "workers": max(len(s["worker_rss_mb"]) for s in samples),
        "runs": samples,
    }


#: The wall-time ratios each row reports: (name, numerator tool, denominator tool).
RATIOS = {
    "fleet_noop": [
        ("ops / django-tenants standard", "ops", "django-tenants standard"),
        ("ops / django-tenants multiprocessing", "ops", "django-tenants multiprocessing"),
    ],
    "fleet_apply": [
        ("--jobs 2 / --jobs 1", "ops --jobs 2", "ops --jobs 1"),
        (
            "--jobs 2 / django-tenants multiprocessing",
            "ops --jobs 2",
            "django-tenants multiprocessing",
        ),
        ("celery / --jobs 2", "ops --executor celery", "ops --jobs 2"),
    ],
}


def _ratios(row: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, a, b in RATIOS[row["scenario"]]:
        ta, tb = row["tools"].get(a, {}), row["tools"].get(b, {})
        if ta.get("status") == "ok" and tb.get("status") == "ok":
            out[name] = round(ta["wall_s"] / tb["wall_s"], 4)
    return out


# -- goals -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetGoal:
    """An upper limit on one value of the fleet rows (``unit``: "s" or "x", a ratio)."""

    name: str
    unit: str
    limit: float
    value: Callable[[list[dict[str, Any]], int], float | None]
    sizes: str = "each"  # "each": checked at every T; "span": once, largest T against smallest
    #: A tool left out on purpose (n/a: no Redis, --fleet-peer-apply-max) drops the goal
    #: at that size; the table's "Not measured" lines say why.
    optional: tuple[str, str] | None = None


def _left_out(rows: list[dict[str, Any]], goal: FleetGoal, tenants: int) -> bool:
    if goal.optional is None:
        return False
    scenario, tool = goal.optional
    return any(
        row["scenario"] == scenario
        and row["tenants"] == tenants
        and row["tools"].get(tool, {}).get("status") == "n/a"
        for row in rows
    )


def _tool(rows: list[dict[str, Any]], scenario: str, tenants: int, tool: str) -> dict[str, Any]:
    for row in rows:
        if row["scenario"] == scenario and row["tenants"] == tenants:
            value = row["tools"].get(tool, {})
            return value if value.get("status") == "ok" else {}
    return {}


def _ratio(scenario: str, name: str) -> Callable[[list[dict[str, Any]], int], float | None]:
    def value(rows: list[dict[str, Any]], tenants: int) -> float | None:
        for row in rows:
            if row["scenario"] == scenario and row["tenants"] == tenants:
                ratio = row.get("ratios", {}).get(name)
                return float(ratio) if ratio is not None else None
        return None

    return value


def _noop_seconds(rows: list[dict[str, Any]], tenants: int) -> float | None:
    return _tool(rows, "fleet_noop", tenants, "ops").get("wall_s")


def _noop_vs_django_tenants(rows: list[dict[str, Any]], tenants: int) -> float | None:
    # Against the faster of django-tenants' two executors: the stricter comparison.
    ops = _tool(rows, "fleet_noop", tenants, "ops").get("wall_s")
    peers = [
        _tool(rows, "fleet_noop", tenants, tool).get("wall_s")
        for tool in ("django-tenants standard", "django-tenants multiprocessing")
    ]
    measured = [peer for peer in peers if peer]
    return round(ops / min(measured), 4) if ops and measured else None


def _growth(
    scenario: str, tool: str, key: str
) -> Callable[[list[dict[str, Any]], int], float | None]:
    """Peak memory at the largest T over the peak at the smallest (``tenants``)."""

    def value(rows: list[dict[str, Any]], smallest: int) -> float | None:
        largest = max(row["tenants"] for row in rows)
        small = _tool(rows, scenario, smallest, tool).get(key)
        large = _tool(rows, scenario, largest, tool).get(key)
        return round(large / small, 3) if small and large else None

    return value


#: The goals of issue 15's benchmark (docs/performance.rst, "Fleets").
FLEET_GOALS = (
    FleetGoal("fleet no-op, whole process", "s", 2.0, _noop_seconds),
    FleetGoal(
        "fleet no-op vs django-tenants (faster executor)", "x", 0.05, _noop_vs_django_tenants
    ),
    FleetGoal("apply --jobs 2 vs --jobs 1", "x", 0.6, _ratio("fleet_apply", "--jobs 2 / --jobs 1")),
    FleetGoal(
        "apply --jobs 2 vs django-tenants multiprocessing",
        "x",
        0.5,
        _ratio("fleet_apply", "--jobs 2 / django-tenants multiprocessing"),
        optional=("fleet_apply", "django-tenants multiprocessing"),
    ),
    FleetGoal(
        "apply celery vs --jobs 2",
        "x",
        1.3,
        _ratio("fleet_apply", "celery / --jobs 2"),
        optional=("fleet_apply", "ops --executor celery"),
    ),
    # "Flat in T": at most 10 % more at the largest T than at the smallest.
    FleetGoal(
        "parent peak RSS growth, no-op",
        "x",
        1.1,
        _growth("fleet_noop", "ops", "parent_rss_mb"),
        "span",
    ),
    FleetGoal(
        "parent peak RSS growth, apply --jobs 1",
        "x",
        1.1,
        _growth("fleet_apply", "ops --jobs 1", "parent_rss_mb"),
        "span",
    ),
    FleetGoal(
        "parent peak RSS growth, apply --jobs 2",
        "x",
        1.1,
        _growth("fleet_apply", "ops --jobs 2", "parent_rss_mb"),
        "span",
    ),
    FleetGoal(
        "worker peak RSS growth, apply --jobs 2",
        "x",
        1.1,
        _growth("fleet_apply", "ops --jobs 2", "worker_rss_mb"),
        "span",
    ),
)


def check_goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every fleet goal at every size (growth goals: once, when two sizes were measured)."""
    sizes = sorted({row["tenants"] for row in rows})
    checked = []
    for goal in FLEET_GOALS:
        if goal.sizes == "span":
            if len(sizes) < 2:
                continue
            at, shown = [sizes[0]], f"{sizes[0]}->{sizes[-1]}"
        else:
            at, shown = sizes, ""
        for tenants in at:
            if _left_out(rows, goal, tenants):
                continue
            value = goal.value(rows, tenants)
            checked.append(
                {
                    "goal": goal.name,
                    "scenario": "fleet",
                    "backend": "postgresql",
                    "n": shown or tenants,
                    "unit": goal.unit,
                    "limit": goal.limit,
                    "value": value,
                    "met": value is not None and value <= goal.limit,
                }
            )
    return checked


# -- the table -------------------------------------------------------------------------

_LABELS = {
    "ops --jobs 1": "opsmigrate --tenants --jobs 1",
    "ops --jobs 2": "opsmigrate --tenants --jobs 2",
    "ops --executor celery": "opsmigrate --tenants --executor celery (2 workers)",
    "django-tenants multiprocessing": "migrate_schemas --executor=multiprocessing",
    "ops": "opsmigrate --tenants",
    "django-tenants standard": "migrate_schemas",
}


def _seconds(value: float) -> str:
    return f"{value:.3f}s" if value < 10 else f"{value:.1f}s"


def render(result: dict[str, Any]) -> str:
    """The fleet table, its ratios, the load, and the goals."""
    meta = result["meta"]
    lines = [
        "",
        f"Fleets: PostgreSQL {meta['postgresql']}, {meta['migrations']} migrations per tenant "
        f"app, {meta['runs']} runs (medians; memory: the largest peak over the runs), "
        f"django-tenants {meta['django_tenants']}",
    ]
    header = ["scenario", "T", "command", "wall", "cpu", "server cpu", "parent", "workers"]
    table = [header]
    for row in result["rows"]:
        scenario = "no-op (at head)" if row["scenario"] == "fleet_noop" else "full apply"
        for tool, value in row["tools"].items():
            cells = [scenario, str(row["tenants"]), _LABELS[tool]]
            if value.get("status") != "ok":
                cells += ["n/a" if value.get("status") == "n/a" else "ERROR", "", "", "", ""]
            else:
                workers = "-"
                if value["worker_rss_mb"]:
                    workers = f"{value['worker_rss_mb']:.0f}MB ({value['workers']})"
                server = value.get("server_cpu_s")
                cells += [
                    _seconds(value["wall_s"]),
                    _seconds(value["cpu_s"]),
                    "-" if server is None else _seconds(server),
                    f"{value['parent_rss_mb']:.0f}MB",
                    workers,
                ]
            table.append(cells)
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in table]
    text.insert(1, "  ".join("-" * w for w in widths))
    lines += [line.rstrip() for line in text]
    lines.append("Ratios (wall time):")
    for row in result["rows"]:
        for name, ratio in row.get("ratios", {}).items():
            lines.append(f"  T={row['tenants']:<5} {name}: {ratio:.3f}")
    notes = [
        f"  {row['scenario']} T={row['tenants']} {tool}: {value['reason']}"
        for row in result["rows"]
        for tool, value in row["tools"].items()
        if value.get("status") in ("error", "n/a")
    ]
    if notes:
        lines += ["Not measured:", *notes]
    load = meta["load"]
    if load["during_min"] is not None:
        lines.append(
            f"Load average (1 min) around the timed processes: {load['during_min']:.2f}-"
            f"{load['during_max']:.2f} (median {load['during_median']:.2f}); at the start "
            f"{load['start'][0]:.2f}/{load['start'][1]:.2f}/{load['start'][2]:.2f}, at the end "
            f"{load['end'][0]:.2f}/{load['end'][1]:.2f}/{load['end'][2]:.2f} (1/5/15 min)"
        )
    lines.append(
        "Cells: wall / CPU time of the whole process tree (not the Celery workers), "
        "CPU time of the PostgreSQL server over the command (when it runs on this machine), "
        "peak RSS of the command's process and of its largest worker (workers seen)."
    )
    goals = result["goals"]
    if goals:
        lines.append("Goals (fleet; met when at most the limit):")
        width = max(len(goal["goal"]) for goal in goals)
        for goal in goals:
            value = goal["value"]
            shown = "not measured" if value is None else f"{value:.3f} {goal['unit']}"
            verdict = "met" if goal["met"] else "NOT MET"
            lines.append(
                f"  {goal['goal']:<{width}}  T={goal['n']!s:<10} {shown:>12}  "
                f"<= {goal['limit']:g} {goal['unit']}  {verdict}"
            )
    return "\n".join(lines) + "\n"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _busy_processes() -> list[str]:
    """The processes using the most CPU right now (what else runs on the machine)."""
    try:
        done = subprocess.run(
            ["ps", "-eo", "pcpu,etime,args", "--sort=-pcpu"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line[:160] for line in done.stdout.splitlines()[1:9]]


def run_scenario(
    args: argparse.Namespace,
    pg: PgServer | None,
    workdir: Path,
    base_env: dict[str, str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run the fleet scenario; its results, goals and table (``table``)."""
    meta: dict[str, Any] = {
        "tenants": args.tenants,
        "migrations": args.fleet_migrations,
        "runs": args.runs,
        "jobs": JOBS,
        "django_tenants": _version("django-tenants"),
        "celery": _version("celery"),
        "postgresql": None,
    }
    load_start = [round(x, 2) for x in os.getloadavg()]
    busy_start = _busy_processes()
    skipped = ""
    if pg is None:
        skipped = "no PostgreSQL server given (--pg-host/--pg-port or OPS_TEST_PG_*)"
    elif util.find_spec("django_tenants") is None:
        skipped = "django-tenants is not installed (pip install -e '.[test]')"
    bench = None
    if not skipped:
        assert pg is not None
        bench = FleetBench(args, pg, workdir, base_env, log)
        meta["postgresql"] = bench.db.server_version()
        meta["ops_imported_from"] = bench.ops_imported_from()
        meta["celery_measured"] = not bench.celery_reason
        bench.run()
        bench.finish()
    loads = bench.loads if bench else []
    meta["load"] = {
        "start": load_start,
        "end": [round(x, 2) for x in os.getloadavg()],
        "during_min": round(min(loads), 2) if loads else None,
        "during_max": round(max(loads), 2) if loads else None,
        "during_median": round(statistics.median(loads), 2) if loads else None,
    }
    meta["busy_processes"] = {"start": busy_start, "end": _busy_processes()}
    meta["skipped"] = skipped
    rows = bench.rows if bench else []
    result: dict[str, Any] = {"meta": meta, "rows": rows, "goals": check_goals(rows)}
    if skipped:
        log(f"benchmarks: skipping the fleet scenario: {skipped}")
        result["table"] = f"\nFleets: not measured: {skipped}\n"
    else:
        result["table"] = render(result)
    return result
