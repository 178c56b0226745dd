"""Fixtures: throw-away Django apps with ops scripts, per-backend aliases, helpers.

Each test builds the apps it needs under ``tmp_path`` (``project.app(...)``,
``project.script(...)``), installs them with ``override_settings`` and drives
the real management commands. Afterwards every app is unapplied and any table
or view the test left behind is dropped, so tests are independent.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

import django
import pytest
import sqlalchemy as sa
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test.utils import override_settings

from django_alembic_ops import bridge, conf

BASE_APPS = list(settings.INSTALLED_APPS)

# For tests whose models use db_default, GeneratedField, nulls_distinct (5.0)
# or CheckConstraint(condition=) (5.1); the rest of the suite runs on 4.2 too.
needs_django_51 = pytest.mark.skipif(
    django.VERSION < (5, 1), reason="the models use Django 5.1 features (db_default, condition=)"
)
BACKENDS = {"sqlite": "default", "postgresql": "postgres", "mysql": "mysql"}

# Why an alias may be missing, and the variable that makes its absence an error (CI).
_SERVERS = {
    "postgres": ("PostgreSQL", "OPS_TEST_PG_PORT", "OPS_REQUIRE_POSTGRES"),
    "mysql": ("MariaDB", "OPS_TEST_MYSQL_PORT", "OPS_REQUIRE_MYSQL"),
}


def _require_alias(alias: str) -> None:
    if alias in settings.DATABASES:
        return
    server, port_variable, require_variable = _SERVERS[alias]
    reason = (
        f"{server} not configured (set {port_variable}, or run 'bash scripts/test.sh', "
        "which starts a private server)"
    )
    if os.environ.get(require_variable):
        pytest.fail(f"{reason}; {require_variable} is set, so this is an error.")
    pytest.skip(reason)


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def alias(request: pytest.FixtureRequest) -> str:
    """A database alias, once per backend (SQLite, PostgreSQL, MariaDB)."""
    name = BACKENDS[request.param]
    _require_alias(name)
    return name


@pytest.fixture(params=["postgresql", "mysql"])
def server_alias(request: pytest.FixtureRequest) -> str:
    """A database alias on a real server, once per server backend (PostgreSQL, MariaDB)."""
    name = BACKENDS[request.param]
    _require_alias(name)
    return name


@pytest.fixture
def pg_alias() -> str:
    """The PostgreSQL alias (for PostgreSQL-only behaviour)."""
    _require_alias("postgres")
    return "postgres"


@pytest.fixture
def mysql_alias() -> str:
    """The MariaDB alias (for MySQL-only behaviour)."""
    _require_alias("mysql")
    return "mysql"


def script_source(
    *,
    revision: str,
    down: str | tuple[str, ...] | None = None,
    upgrade: str = "pass",
    downgrade: str = "pass",
    branch_labels: tuple[str, ...] | None = None,
    depends_on: str | tuple[str, ...] | None = None,
    django_dependencies: list[tuple[str, str]] | None = None,
    header: str = "",
) -> str:
    body = lambda code: textwrap.indent(textwrap.dedent(code).strip() or "pass", "    ")  # noqa: E731
    return (
        f'"""{revision}"""\n'
        "from alembic import op\n"
        "import sqlalchemy as sa\n"
        f"{textwrap.dedent(header)}\n"
        f"revision = {revision!r}\n"
        f"down_revision = {down!r}\n"
        f"branch_labels = {branch_labels!r}\n"
        f"depends_on = {depends_on!r}\n"
        f"django_dependencies = {django_dependencies or []!r}\n\n\n"
        f"def upgrade():\n{body(upgrade)}\n\n\n"
        f"def downgrade():\n{body(downgrade)}\n"
    )


def one_table(name: str) -> dict[str, str]:
    """``upgrade``/``downgrade`` bodies that create and drop table ``name``."""
    return {
        "upgrade": f'op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))',
        "downgrade": f'op.drop_table("{name}")',
    }


class Project:
    """Django apps written on disk for one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.labels: list[str] = []
        self._override: Any = None
        sys.path.insert(0, str(root))

    def app(self, label: str, *, models: str = "", ops: bool = True) -> Path:
        """Create and install app ``label`` (with an empty migrations_ops/ if ``ops``)."""
        package = self.root / label
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "models.py").write_text(textwrap.dedent(models))
        if ops:
            (package / "migrations_ops").mkdir()
            (package / "migrations_ops" / "__init__.py").write_text("")
        self.labels.append(label)
        self._install()
        return package

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def script(self, label: str, name: str, **kwargs: Any) -> Path:
        """Write ``<label>/migrations_ops/<name>.py``; kwargs as :func:`script_source`."""
        if kwargs.get("down") is None and "branch_labels" not in kwargs:
            kwargs["branch_labels"] = (label,)
        return self.write(f"{label}/migrations_ops/{name}.py", script_source(**kwargs))

    def _install(self) -> None:
        if self._override is not None:
            self._override.disable()
        self._override = override_settings(INSTALLED_APPS=BASE_APPS + self.labels)
        self._override.enable()

    def uninstall(self) -> None:
        if self._override is not None:
            self._override.disable()
            self._override = None
        for name in list(sys.modules):
            if name.split(".")[0] in self.labels:
                del sys.modules[name]
        for label in self.labels:
            # Models of a throw-away app must not leak into the next test.
            apps.all_models.pop(label, None)
        apps.clear_cache()
        sys.path.remove(str(self.root))


def _objects(alias: str) -> tuple[set[str], set[str]]:
    connection = connections[alias]
    with connection.cursor() as cursor:
        infos = connection.introspection.get_table_list(cursor)
    return {i.name for i in infos if i.type == "t"}, {i.name for i in infos if i.type == "v"}


def _drop_leftovers(alias: str, tables_before: set[str], views_before: set[str]) -> None:
    connection = connections[alias]
    tables, views = _objects(alias)
    quote = connection.ops.quote_name
    cascade = " CASCADE" if connection.vendor == "postgresql" else ""
    # Tables left behind may reference each other: drop them in any order.
    checks_off, checks_on = {
        "sqlite": ("PRAGMA foreign_keys = OFF", "PRAGMA foreign_keys = ON"),
        "mysql": ("SET FOREIGN_KEY_CHECKS = 0", "SET FOREIGN_KEY_CHECKS = 1"),
    }.get(connection.vendor, ("", ""))
    with connection.cursor() as cursor:
        if checks_off:
            cursor.execute(checks_off)
        try:
            for view in views - views_before:
                cursor.execute(f"DROP VIEW IF EXISTS {quote(view)}{cascade}")
            for table in tables - tables_before:
                cursor.execute(f"DROP TABLE IF EXISTS {quote(table)}{cascade}")
        finally:
            if checks_on:
                cursor.execute(checks_on)


@pytest.fixture
def project(tmp_path: Path, transactional_db: None, django_db_blocker: Any) -> Iterator[Project]:
    """Throw-away apps on disk, installed for this test; databases cleaned after."""
    aliases = [a for a in [*BACKENDS.values(), "other"] if a in settings.DATABASES]
    before = {a: _objects(a) for a in aliases}
    proj = Project(tmp_path)
    try:
        yield proj
    finally:
        for a in aliases:
            connection = connections[a]
            if connection.vendor == "sqlite" and connection.in_atomic_block:
                continue
            _drop_leftovers(a, *before[a])
            if proj.labels:
                # Django's migration records of the throw-away apps.
                placeholders = ", ".join(["%s"] * len(proj.labels))
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"DELETE FROM django_migrations WHERE app IN ({placeholders})",
                        proj.labels,
                    )
        proj.uninstall()
        conf.get.cache_clear()


def run(*args: str, **options: Any) -> str:
    """``manage.py <args>``; returns what it printed."""
    out = StringIO()
    options.setdefault("no_color", True)
    call_command(*args, stdout=out, stderr=out, **options)
    return out.getvalue()


@contextmanager
def extra_database(
    alias: str, settings_dict: dict[str, Any], django_db_blocker: Any
) -> Iterator[None]:
    """``DATABASES[alias]`` for the block, really connected (or failing to) when used.

    Both pytest-django and Django 5's test cases guard connections to aliases
    the test did not ask for; the blocker's ``unblock()`` lifts both.
    """
    try:
        with (
            override_settings(DATABASES={**settings.DATABASES, alias: settings_dict}),
            django_db_blocker.unblock(),
        ):
            connections.settings = connections.configure_settings(None)
            try:
                yield
            finally:
                connections[alias].close()
                del connections[alias]
    finally:
        connections.settings = connections.configure_settings(None)


def pg_connect(*, dbname: str = "postgres", **overrides: Any) -> Any:
    """A DBAPI connection to the test PostgreSQL server, outside Django.

    Through the driver Django chose (psycopg 3, else psycopg2: CI runs both);
    ``overrides`` replace connection parameters such as ``user``.
    """
    from django.db.backends.postgresql.base import Database

    server = settings.DATABASES["postgres"]
    params = {
        "host": server["HOST"],
        "port": server["PORT"],
        "user": server["USER"],
        "password": server["PASSWORD"],
        "dbname": dbname,
        **overrides,
    }
    return Database.connect(**params)


def pg_execute(
    sql: str, params: Sequence[Any] = (), *, dbname: str = "postgres"
) -> list[tuple[Any, ...]]:
    """One autocommitted statement on the test PostgreSQL server, outside Django."""
    connection = pg_connect(dbname=dbname)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql, list(params) or None)
            return list(cursor.fetchall()) if cursor.description else []
    finally:
        connection.close()


def mysql_connect(*, database: str | None = None, **overrides: Any) -> Any:
    """A DBAPI connection (mysqlclient) to the test MariaDB server, outside Django.

    ``overrides`` replace connection parameters such as ``user``.
    """
    import MySQLdb

    server = settings.DATABASES["mysql"]
    params: dict[str, Any] = {
        "host": server["HOST"],
        "port": int(server["PORT"]),
        "user": server["USER"],
        "password": server["PASSWORD"],
        "charset": "utf8mb4",
        **({"database": database} if database else {}),
        **overrides,
    }
    return MySQLdb.connect(**params)


def mysql_execute(
    sql: str, params: Sequence[Any] = (), *, database: str | None = None
) -> list[tuple[Any, ...]]:
    """One autocommitted statement on the test MariaDB server, outside Django."""
    connection = mysql_connect(database=database)
    try:
        connection.autocommit(True)
        with connection.cursor() as cursor:
            cursor.execute(sql, list(params) or None)
            return list(cursor.fetchall()) if cursor.description else []
    finally:
        connection.close()


def server_database(alias: str, name: str, **extra: Any) -> dict[str, Any]:
    """``DATABASES`` settings for database ``name`` on the server of ``alias``.

    For a subprocess project (PostgreSQL or MariaDB); drop it afterwards with
    :func:`drop_server_databases`.
    """
    server = settings.DATABASES[alias]
    keys = ("ENGINE", "HOST", "PORT", "USER", "PASSWORD", "OPTIONS")
    # Not TEST's NAME: pytest-xdist's workers set it to their own test database,
    # which the subprocess's test runner would then create and drop.
    test = {k: v for k, v in server.get("TEST", {}).items() if k in ("CHARSET", "COLLATION")}
    return {
        **{key: server[key] for key in keys if key in server},
        "NAME": name,
        **({"TEST": test} if test else {}),
        **extra,
    }


def server_execute(alias: str, sql: str) -> None:
    """One autocommitted statement on the server of ``alias``, outside Django."""
    if connections[alias].vendor == "mysql":
        mysql_execute(sql)
    else:
        pg_execute(sql)


def drop_server_databases(alias: str, *names: str) -> None:
    """Drop databases of a subprocess project on the server of ``alias``, if they exist."""
    for name in names:
        if connections[alias].vendor == "mysql":
            mysql_execute(f"DROP DATABASE IF EXISTS `{name}`")
        else:
            pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_error(*args: str, **options: Any) -> str:
    """``manage.py <args>`` that must fail with a CommandError; returns its message."""
    with pytest.raises(CommandError) as info:
        run(*args, **options)
    return str(info.value)


@contextmanager
def inspect_db(alias: str) -> Iterator[Any]:
    """A SQLAlchemy inspector on the test database of ``alias``."""
    with bridge.sqlalchemy_connection(alias) as connection:
        yield sa.inspect(connection)


def table_names(alias: str) -> set[str]:
    return set(_objects(alias)[0])


def query(alias: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


def shop_schema(alias: str) -> dict[str, Any]:
    """Everything the inspector sees of the test's ``shop_*`` tables and views."""
    tables: dict[str, Any] = {}
    with inspect_db(alias) as insp:
        pg = insp.dialect.name == "postgresql"
        for table in sorted(n for n in insp.get_table_names() if n.startswith("shop_")):
            pk = insp.get_pk_constraint(table)
            tables[table] = {
                "columns": [
                    (
                        c["name"],
                        c["type"].compile(dialect=insp.dialect),
                        c["nullable"],
                        c["default"],
                        c.get("comment"),
                    )
                    for c in insp.get_columns(table)
                ],
                "pk": (pk["name"], pk["constrained_columns"]),
                "fks": sorted(
                    (
                        fk["name"] or "",
                        fk["constrained_columns"],
                        fk["referred_table"],
                        fk["referred_columns"],
                        sorted(fk["options"].items()),
                    )
                    for fk in insp.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    (
                        i["name"] or "",
                        i["column_names"],
                        bool(i["unique"]),
                        sorted((k, str(v)) for k, v in i.get("dialect_options", {}).items()),
                    )
                    for i in insp.get_indexes(table)
                ),
                "uniques": sorted(
                    (u["name"] or "", u["column_names"]) for u in insp.get_unique_constraints(table)
                ),
                "checks": sorted(
                    (c["name"] or "", c["sqltext"]) for c in insp.get_check_constraints(table)
                ),
                "comment": (
                    insp.get_table_comment(table)["text"]
                    if insp.dialect.supports_comments
                    else None
                ),
            }
        views = sorted(v for v in insp.get_view_names() if v.startswith("shop_"))
    if pg:
        # Exclusion constraints are not reflected by SQLAlchemy; the catalog shows them.
        for table, info in tables.items():
            info["pg_constraints"] = query(
                alias,
                "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass ORDER BY conname",
                [table],
            )
    return {"tables": tables, "views": views}


#: ``manage.py`` of the throw-away projects that subprocess tests write.
MANAGE_PY = (
    "import os, sys\n"
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')\n"
    "from django.core.management import execute_from_command_line\n"
    "execute_from_command_line(sys.argv)\n"
)


def write_project(root: Path, files: dict[str, str]) -> Path:
    """A project on disk for subprocess tests: ``manage.py`` and ``files`` (path: dedented text)."""
    for name, text in {"manage.py": MANAGE_PY, **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root
