"""Test your ops migrations themselves: step through them, check they undo cleanly.

- :class:`OpsMigrator` moves one app to an exact migration and back; the pytest
  fixture ``ops_migrator`` (:mod:`django_alembic_ops.pytest_plugin`) and
  :class:`OpsMigratorTestCase` (for ``manage.py test``) hand one out and take
  the database back to the heads after the test.
- :func:`stairway` upgrades, downgrades and upgrades again each migration, one
  step at a time, and fails on the first one whose downgrade does not give back
  the schema it started from.
- :func:`check_single_head`, :func:`check_upgrade`, :func:`check_models_match_ddl`
  and :func:`stairway` are the four checks that ``pytest --ops-checks`` adds per
  app, and that :class:`OpsChecksMixin` runs under ``manage.py test``.

Example::

    from django_alembic_ops.testing import stairway

    @pytest.mark.django_db(transaction=True)
    def test_ops_migrations_undo_cleanly():
        stairway(["shop"])

Migrations change the schema, so run these outside a test transaction
(``transactional_db``, ``TransactionTestCase``). On PostgreSQL they also run
inside one (``db``, ``TestCase``) and are rolled back with it; on SQLite they
cannot, and :class:`~django_alembic_ops.errors.TransactionError` says so.
"""

from __future__ import annotations

import functools
import unittest
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from django.db import DEFAULT_DB_ALIAS, connections, router
from django.test import TransactionTestCase

from . import api, bridge, conf, discovery, executor, history
from .errors import MultipleHeads, OpsError, TransactionError
from .scripts import OpsMigration

if TYPE_CHECKING:
    _TestCaseBase = TransactionTestCase
else:
    _TestCaseBase = object

__all__ = [
    "OpsMigrator",
    "stairway",
    "check_single_head",
    "check_stairway",
    "check_upgrade",
    "check_models_match_ddl",
    "ops_app_labels",
    "OpsMigrationsTestMixin",
    "OpsMigratorTestCase",
    "OpsChecksMixin",
]

#: What to do instead, when migrations are asked to run inside a test transaction
#: where they cannot (SQLite, MySQL).
PYTEST_HINT = "Use the transactional_db fixture or @pytest.mark.django_db(transaction=True)."
UNITTEST_HINT = (
    "Use a TransactionTestCase (e.g. django_alembic_ops.testing.OpsMigratorTestCase) "
    "instead of TestCase."
)
_GENERIC_HINT = (
    "Under pytest use the transactional_db fixture or @pytest.mark.django_db(transaction=True); "
    "under manage.py test, a TransactionTestCase."
)

_T = TypeVar("_T")


#: Why a backend cannot run migrations inside the test's transaction.
_NO_TEST_TRANSACTION = {
    "sqlite": ("SQLite", "SQLite cannot switch foreign-key enforcement off inside a transaction"),
    "mysql": ("MySQL", "MySQL commits DDL at once, and the test's transaction with it"),
}


def _refuse_test_transaction(database: str, hint: str) -> None:
    """Fail early, and say what to use instead, rather than half-way through a run."""
    connection = connections[database]
    refusal = _NO_TEST_TRANSACTION.get(connection.vendor)
    if refusal is not None and connection.in_atomic_block:
        name, reason = refusal
        raise TransactionError(
            f"Ops migrations cannot run on {name} database '{database}' inside the test's "
            f"transaction (pytest-django's db fixture, or django.test.TestCase): {reason}. {hint}"
        )


class OpsMigrator:
    """Move apps to exact ops migrations in a test; :meth:`restore` goes back to the heads.

    :param hint: what the error says to use instead when a migration is asked
        to run on SQLite or MySQL inside the test's transaction.
    """

    def __init__(self, *, hint: str = _GENERIC_HINT) -> None:
        self.hint = hint
        self._touched: list[str] = []

    def migrate(
        self, app_label: str, target: str | None = None, database: str = DEFAULT_DB_ALIAS
    ) -> list[str]:
        """Take ``app_label`` (and the apps that depend on it) to exactly ``target``.

        Like ``manage.py opsmigrate app_label target``: up or down, ``target``
        being a name prefix (``"0002"``), a full name, a revision id or
        ``"zero"``; ``None`` for the app's head.

        :returns: the migrations that ran, in order, as ``"app_label.0002_name"``.
        """
        _refuse_test_transaction(database, self.hint)
        if database not in self._touched:
            self._touched.append(database)
        steps = api.migrate(app_label, target, database=database)
        return [step.migration.full_name for step in steps]

    def applied(self, app_label: str, database: str = DEFAULT_DB_ALIAS) -> list[str]:
        """The applied ops migrations of ``app_label``, in order (``[]`` at zero).

        Each is named ``"app_label.0002_name"``.
        """
        api.validate(app_label)
        listed = api.showmigrations([app_label], database=database)[app_label]
        return [f"{app_label}.{name}" for name, applied in listed if applied]

    def restore(self) -> None:
        """Apply every pending ops migration on each database :meth:`migrate` changed."""
        touched, self._touched = self._touched, []
        for database in touched:
            api.migrate(database=database)


# -- reflected schema -----------------------------------------------------------

#: ``{"table shop_order": {"column qty": "INTEGER NOT NULL", ...}, "view ...": {...}}``
Schema = dict[str, dict[str, str]]

_PG_SYSTEM_SCHEMAS = ("information_schema", "pg_catalog", "pg_toast")


def _words(text: Any) -> str:
    return " ".join(str(text).split())


def _columns(names: Sequence[Any]) -> str:
    return "(" + ", ".join(str(name) for name in names) + ")"


def _options(options: dict[str, Any] | None) -> str:
    shown = [
        f"{key}={_words(value)}"
        for key, value in sorted((options or {}).items())
        if value is not None and value != [] and value != {} and value != ""
    ]
    return "".join(f" {option}" for option in shown)


def _type(type_: Any, dialect: sa.engine.Dialect) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:
        return repr(type_)


def _schemas(inspector: sa.engine.Inspector) -> list[str | None]:
    """The default schema (``None``), plus any other user schema on PostgreSQL."""
    if inspector.dialect.name != "postgresql":
        return [None]
    default = inspector.default_schema_name
    others = [
        name
        for name in inspector.get_schema_names()
        if name != default and name not in _PG_SYSTEM_SCHEMAS and not name.startswith("pg_")
    ]
    return [None, *sorted(others)]


def _reflect_schema(inspector: sa.engine.Inspector, schema: str | None, found: Schema) -> None:
    dialect = inspector.dialect
    prefix = f"{schema}." if schema else ""
    version_table = conf.get().VERSION_TABLE
    ours = {version_table, history.TABLE}
    tables = [name for name in inspector.get_table_names(schema) if name not in ours]
    if tables:
        columns = inspector.get_multi_columns(schema, filter_names=tables)
        primary_keys = inspector.get_multi_pk_constraint(schema, filter_names=tables)
        foreign_keys = inspector.get_multi_foreign_keys(schema, filter_names=tables)
        # SQLite reports a column's inline UNIQUE only as its automatic index.
        index_kw: dict[str, Any] = (
            {"include_auto_indexes": True} if dialect.name == "sqlite" else {}
        )
        indexes = inspector.get_multi_indexes(schema, filter_names=tables, **index_kw)
        uniques = inspector.get_multi_unique_constraints(schema, filter_names=tables)
        checks = inspector.get_multi_check_constraints(schema, filter_names=tables)
    for table in tables:
        key = (schema, table)
        parts: dict[str, str] = {}
        for column in columns.get(key, []):
            text = _type(column["type"], dialect)
            text += "" if column["nullable"] else " NOT NULL"
            if column.get("default") is not None:
                text += f" DEFAULT {_words(column['default'])}"
            for extra in ("identity", "computed", "comment"):
                if column.get(extra):
                    text += f" {extra.upper()} {_words(column.get(extra))}"
            parts[f"column {column['name']}"] = text
        pk = primary_keys.get(key)
        if pk and pk.get("constrained_columns"):
            parts["primary key"] = f"{pk.get('name') or ''}{_columns(pk['constrained_columns'])}"
        for fk in foreign_keys.get(key, []):
            referred_schema = fk.get("referred_schema")
            target = f"{referred_schema}." if referred_schema else ""
            text = (
                f"{_columns(fk['constrained_columns'])} REFERENCES {target}{fk['referred_table']}"
                f"{_columns(fk['referred_columns'])}{_options(fk.get('options'))}"
            )
            parts[f"foreign key {fk.get('name') or text}"] = text
        for index in indexes.get(key, []):
            expressions = index.get("expressions") or index["column_names"]
            text = f"{'UNIQUE ' if index.get('unique') else ''}INDEX {_columns(expressions)}"
            text += _options(index.get("dialect_options"))
            name = index.get("name") or text
            # SQLite numbers its automatic indexes: name them by what they cover.
            if str(name).startswith("sqlite_autoindex_"):
                name = text
            parts[f"index {name}"] = text
        for unique in uniques.get(key, []):
            text = f"UNIQUE {_columns(unique['column_names'])}"
            parts[f"unique constraint {unique.get('name') or text}"] = text
        for check in checks.get(key, []):
            text = f"CHECK ({_words(check['sqltext'])})"
            parts[f"check constraint {check.get('name') or text}"] = text
        found[f"table {prefix}{table}"] = parts
    for view in inspector.get_view_names(schema):
        definition = inspector.get_view_definition(view, schema)
        found[f"view {prefix}{view}"] = {"definition": _words(definition)}
    if dialect.name == "postgresql":
        for view in inspector.get_materialized_view_names(schema):
            definition = inspector.get_view_definition(view, schema)
            found[f"materialized view {prefix}{view}"] = {"definition": _words(definition)}
        for sequence in inspector.get_sequence_names(schema):
            if sequence != history.ID_SEQUENCE:  # the history table's, ours like it
                found[f"sequence {prefix}{sequence}"] = {}


def reflect(database: str = DEFAULT_DB_ALIAS) -> Schema:
    """The schema of ``database`` as SQLAlchemy's inspector sees it.

    Tables (columns with type, nullability and default; primary, unique,
    check and foreign-key constraints; indexes), views and, on PostgreSQL,
    materialized views and sequences, of every user schema. The version table
    is left out: its rows change on every step.
    """
    found: Schema = {}
    with bridge.sqlalchemy_connection(database) as connection:
        inspector = sa.inspect(connection)
        for schema in _schemas(inspector):
            _reflect_schema(inspector, schema, found)
    return found


def schema_differences(before: Schema, after: Schema) -> list[str]:
    """One line per difference between two :func:`reflect` results."""
    lines: list[str] = []
    for name in sorted(before.keys() - after.keys()):
        lines.append(f"{name} is missing")
    for name in sorted(after.keys() - before.keys()):
        lines.append(f"{name} was left behind")
    for name in sorted(before.keys() & after.keys()):
        old, new = before[name], after[name]
        for part in sorted(old.keys() - new.keys()):
            lines.append(f"{name}: {part} is missing")
        for part in sorted(new.keys() - old.keys()):
            lines.append(f"{name}: {part} was left behind ({new[part]})")
        for part in sorted(old.keys() & new.keys()):
            if old[part] != new[part]:
                lines.append(f"{name}: {part} was {old[part]}, is now {new[part]}")
    return lines


# -- stairway -----------------------------------------------------------------------


def ops_app_labels(
    app_labels: Sequence[str] | None = None, database: str = DEFAULT_DB_ALIAS
) -> list[str]:
    """``app_labels`` checked (each must have ops migrations), or every app with ops
    migrations that the database routers allow on ``database``."""
    if app_labels is not None:
        for label in app_labels:
            discovery.require_ops_app(label)
        return list(app_labels)
    return executor.allowed_apps(database, executor.load_scripts())


def _unapply_one(migration: OpsMigration, database: str) -> None:
    """Unapply exactly ``migration``, which must be a head of the database."""
    api.unapply(migration.app_label, migration.revision, database=database)


def _attempt(description: str, action: Callable[[], _T]) -> _T:
    try:
        return action()
    except OpsError as exc:
        raise AssertionError(f"{description}: {exc}") from exc


def _not_restored(migration: OpsMigration, database: str) -> str:
    """What the stairway says when ``migration``'s downgrade left the schema changed."""
    return f"{migration.full_name}: downgrade did not restore the schema on database '{database}'"


@contextmanager
def _back_to_heads(database: str) -> Iterator[None]:
    """End at the heads; after a failure, get back there if possible, without hiding it.

    A failed check can leave a migration unapplied whose objects are still in
    the database (its downgrade did not drop them). Applying it again fails,
    and so would the flush after every later test, which applies pending ops
    migrations (``post_migrate``): one broken downgrade would fail every test
    that follows. So when the database started at the heads and its schema is
    again what it was then, the migrations still pending are recorded as
    applied instead (what ``opsmigrate --fake`` does).
    """
    start: Schema | None = None
    with suppress(OpsError):  # the check itself reports such a database
        if not api.unapplied(database=database):
            start = reflect(database)
    try:
        yield
    except Exception:
        with suppress(Exception):
            _recover_heads(database, start)
        raise
    api.migrate(database=database)


def _recover_heads(database: str, start: Schema | None) -> None:
    """Apply what is pending; failing that, record it when the schema is ``start`` again."""
    try:
        api.migrate(database=database)
    except OpsError:
        if start is None or reflect(database) != start:
            raise
        api.migrate(database=database, fake=True)


def stairway(
    app_labels: Sequence[str] | None = None, database: str = DEFAULT_DB_ALIAS
) -> list[str]:
    """Upgrade, downgrade and upgrade again each ops migration, one step at a time.

    Starts by unapplying every migration of ``app_labels`` (default: every app
    with ops migrations; the apps that depend on them are unapplied first),
    then walks forward in the order ``opsmigrate`` applies them. Before each
    migration of those apps the schema is reflected (:func:`reflect`) and
    compared with the schema after its downgrade, then it is upgraded again.
    A migration that fails to upgrade after its downgrade ran (in this walk,
    or when the stairway unapplied it to start) is reported as a downgrade
    that did not restore the schema: its upgrade worked before. Ends at the
    heads.

    :param app_labels: the apps whose migrations are checked.
    :param database: the Django database alias.
    :returns: the migrations checked, as ``"app_label.0002_name"``.
    :raises AssertionError: naming the first migration that fails to upgrade
        or downgrade, or whose downgrade does not restore the schema (with
        what differs, or the error of upgrading it again).

    Example::

        @pytest.mark.django_db(transaction=True)
        def test_ops_migrations_undo_cleanly():
            stairway(["shop"])
    """
    _refuse_test_transaction(database, _GENERIC_HINT)
    labels = ops_app_labels(app_labels, database)
    checked: list[str] = []
    # A migration unapplied to start the stairway was applied before, so its
    # upgrade worked then: when it fails now, its downgrade left something behind.
    downgraded: set[str] = set()
    with _back_to_heads(database):
        for label in labels:
            steps = _attempt(
                f"Cannot unapply the ops migrations of '{label}' to start the stairway",
                functools.partial(api.migrate, label, "zero", database=database),
            )
            downgraded.update(step.migration.revision for step in steps)
        for step in api.plan(database=database):
            migration = step.migration
            upgrade = functools.partial(
                api.migrate, migration.app_label, migration.revision, database=database
            )
            upgrading_again_failed = (
                f"{_not_restored(migration, database)}: upgrading it again failed"
            )
            first_upgrade_failed = (
                upgrading_again_failed
                if migration.revision in downgraded
                else f"{migration.full_name}: upgrade failed"
            )
            if migration.app_label not in labels:
                # An app the checked ones need: applied in order, not checked.
                _attempt(first_upgrade_failed, upgrade)
                continue
            before = reflect(database)
            _attempt(first_upgrade_failed, upgrade)
            _attempt(
                f"{migration.full_name}: downgrade failed",
                functools.partial(_unapply_one, migration, database),
            )
            differences = schema_differences(before, reflect(database))
            if differences:
                shown = differences[:20]
                if len(differences) > len(shown):
                    shown.append(f"... and {len(differences) - len(shown)} more")
                raise AssertionError(
                    f"{_not_restored(migration, database)}:\n"
                    + "\n".join(f"  - {line}" for line in shown)
                )
            # The comparison does not see everything (types, functions, triggers).
            _attempt(upgrading_again_failed, upgrade)
            checked.append(migration.full_name)
    return checked


# -- the other checks -------------------------------------------------------------------


#: PostgreSQL's SQLSTATE for "cannot drop ... because other objects depend on it".
_DEPENDENT_OBJECTS_STILL_EXIST = "2BP01"


def _sqlstates(error: BaseException) -> Iterator[str]:
    """The SQLSTATE of every database error behind ``error`` (psycopg 3 and psycopg2)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for candidate in (current, getattr(current, "orig", None)):
            code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
            if isinstance(code, str):
                yield code
        current = current.__cause__ or current.__context__


#: MySQL's ER_ROW_IS_REFERENCED_2: a table that a foreign key references cannot be dropped.
_MYSQL_ROW_IS_REFERENCED = 1451


def _codes(error: BaseException) -> set[object]:
    """The driver's error code (``args[0]``) of every database error behind ``error``.

    mysqlclient puts MySQL's error number first; Django's wrappers keep the
    driver's arguments, SQLAlchemy's keep the driver's error as ``orig``.
    """
    codes: set[object] = set()
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for candidate in (current, getattr(current, "orig", None)):
            args = getattr(candidate, "args", ())
            if args and isinstance(args[0], int):
                codes.add(args[0])
        current = current.__cause__ or current.__context__
    return codes


def _django_tables_referencing(database: str, error: BaseException) -> list[tuple[str, str]]:
    """``(django_table, ops_table)`` foreign keys that made an unapply fail with ``error``.

    Only for PostgreSQL's "other objects depend on it" (MySQL's "Cannot
    delete or update a parent row"): a Django table (of a managed model)
    references a table that the failing downgrade drops, and that table is
    named in the error.
    """
    if _DEPENDENT_OBJECTS_STILL_EXIST not in set(_sqlstates(error)) and not (
        connections[database].vendor == "mysql" and _MYSQL_ROW_IS_REFERENCED in _codes(error)
    ):
        return []
    connection = connections[database]
    introspection = connection.introspection
    django_tables = set(introspection.django_table_names(only_existing=True, include_views=False))
    found: list[tuple[str, str]] = []
    with connection.cursor() as cursor:
        for table in sorted(django_tables):
            # (field, table), plus on_delete from Django 6.0 on.
            for _, referenced, *_ in introspection.get_relations(cursor, table).values():
                if referenced not in django_tables and referenced in str(error):
                    found.append((table, referenced))
    return sorted(set(found))


@contextmanager
def _skip_when_django_tables_depend(app_label: str, database: str) -> Iterator[None]:
    """Skip, saying why, when Django's tables keep the app's migrations from unapplying.

    On PostgreSQL and MySQL a table that a Django table references by foreign key (a
    managed model pointing at an unmanaged one, see "A Django migration that
    needs an ops migration") cannot be dropped while that table exists; the
    check would need Django's migration unapplied first, which is outside it.
    """
    try:
        yield
    except AssertionError as exc:
        references = _django_tables_referencing(database, exc)
        if not references:
            raise
        shown = ", ".join(f"{django} -> {ops}" for django, ops in references)
        raise unittest.SkipTest(
            f"Django's tables reference tables of the ops migrations by foreign key ({shown}), "
            f"so on {connections[database].vendor} the ops migrations of '{app_label}' cannot "
            "be unapplied while those tables exist"
        ) from exc


def check_stairway(app_label: str, database: str = DEFAULT_DB_ALIAS) -> None:
    """:func:`stairway` for one app.

    Raises ``unittest.SkipTest`` when the routers keep the app off
    ``database``, or when, on PostgreSQL or MySQL, a Django table references one of
    the tables its migrations drop (that table cannot be dropped first).
    """
    _skip_unless_allowed(app_label, database)
    with _skip_when_django_tables_depend(app_label, database):
        stairway([app_label], database)


def check_single_head(app_label: str) -> None:
    """Fail when ``app_label``'s ops migrations have more than one head."""
    scripts = executor.load_scripts(executor.Target(app_label))
    try:
        scripts.app_head(app_label)
    except MultipleHeads as exc:
        raise AssertionError(str(exc)) from None


def _skip_unless_allowed(app_label: str, database: str) -> None:
    discovery.require_ops_app(app_label)
    if not router.allow_migrate(database, app_label):
        raise unittest.SkipTest(
            f"the database routers do not allow app '{app_label}' on database '{database}'"
        )


def check_upgrade(app_label: str, database: str = DEFAULT_DB_ALIAS) -> None:
    """Fail unless ``app_label`` migrates from none of its migrations to its head.

    Ends at the heads. Raises ``unittest.SkipTest`` (a skip for unittest and
    pytest alike) when the database routers keep the app off ``database``,
    or when, on PostgreSQL or MySQL, a Django table references a table of the app's
    migrations (which cannot be dropped while that table exists).
    """
    _skip_unless_allowed(app_label, database)
    _refuse_test_transaction(database, _GENERIC_HINT)
    with _skip_when_django_tables_depend(app_label, database), _back_to_heads(database):
        _attempt(
            f"Cannot unapply the ops migrations of '{app_label}'",
            functools.partial(api.migrate, app_label, "zero", database=database),
        )
        _attempt(
            f"Upgrading '{app_label}' from empty to its head failed",
            functools.partial(api.migrate, app_label, database=database),
        )
        listed = api.showmigrations([app_label], database=database)[app_label]
        missing = [name for name, applied in listed if not applied]
        if missing:
            raise AssertionError(
                f"'{app_label}' was migrated to its head, but these ops migrations are not "
                f"applied: {', '.join(missing)}"
            )


def check_models_match_ddl(app_label: str, database: str = DEFAULT_DB_ALIAS) -> None:
    """Fail when autogenerate finds changes between ``app_label``'s target and its migrations.

    The database is first brought to the heads (autogenerate compares against it).

    Raises ``unittest.SkipTest`` when the app has no autogenerate target (no
    models with ``Meta.managed = False`` and no ``target_metadata``), or the
    routers keep it off ``database``.
    """
    _skip_unless_allowed(app_label, database)
    if not api.has_autogenerate_target(app_label):
        raise unittest.SkipTest(
            f"app '{app_label}' has no autogenerate target (no models with "
            "Meta.managed = False, no target_metadata in its ops package)"
        )
    _refuse_test_transaction(database, _GENERIC_HINT)
    _attempt(
        "Cannot apply the ops migrations before comparing",
        functools.partial(api.migrate, database=database),
    )
    result = _attempt(
        f"Autogenerate failed for '{app_label}'",
        functools.partial(api.autogenerate, app_label, database=database, check=True),
    )
    if result.changes:
        listed = "\n".join(f"  - {change}" for change in result.changes)
        raise AssertionError(
            f"The models of '{app_label}' do not match its ops migrations; autogenerate "
            f"found:\n{listed}\nRun 'python manage.py opsmakemigration {app_label}' "
            "to write the migration."
        )


def check_lint(app_label: str, database: str = DEFAULT_DB_ALIAS) -> None:
    """Fail when ``opslint --all`` finds something in ``app_label``'s ops migrations.

    Every migration is linted, for ``database``'s backend, offline (the
    database is not touched). When squawk is not installed, only opslint's
    own rules run and a warning says so. Raises ``unittest.SkipTest`` when
    the routers keep the app off ``database``.
    """
    import warnings

    _skip_unless_allowed(app_label, database)
    report = api.lint([app_label], all_migrations=True, database=database)
    for note in report.notes:
        warnings.warn(note, stacklevel=2)
    if report.findings:
        listed = "\n".join(f"  {finding}" for finding in report.findings)
        raise AssertionError(
            f"opslint found what locks or rewrites a busy table in '{app_label}':\n{listed}\n"
            'Use the safe pattern, or silence a rule in the script with lint_ignore = ["<rule>"].'
        )


# -- manage.py test -------------------------------------------------------------------


class OpsMigrationsTestMixin(_TestCaseBase):
    """For a Django ``TransactionTestCase``: ``self.ops_migrator`` and ``assertOpsStairway``.

    The databases the test migrated are back at the heads after it (a cleanup).
    """

    _ops_migrator: OpsMigrator | None = None

    @property
    def ops_migrator(self) -> OpsMigrator:
        """An :class:`OpsMigrator` for this test."""
        if self._ops_migrator is None:
            self._ops_migrator = OpsMigrator(hint=UNITTEST_HINT)
            self.addCleanup(self._ops_restore)
        return self._ops_migrator

    def _ops_restore(self) -> None:
        migrator, self._ops_migrator = self._ops_migrator, None
        if migrator is not None:
            migrator.restore()

    def assertOpsStairway(  # noqa: N802 (unittest's naming)
        self, app_labels: Sequence[str] | None = None, database: str = DEFAULT_DB_ALIAS
    ) -> list[str]:
        """Run :func:`stairway`; its ``AssertionError`` fails the test."""
        _refuse_test_transaction(database, UNITTEST_HINT)
        return stairway(app_labels, database)


class OpsMigratorTestCase(OpsMigrationsTestMixin, TransactionTestCase):
    """A ``TransactionTestCase`` with ``self.ops_migrator`` and ``assertOpsStairway``."""


class OpsChecksMixin(OpsMigrationsTestMixin):
    """The checks of ``pytest --ops-checks``, as tests of a ``TransactionTestCase``.

    ::

        class OpsMigrationChecks(OpsChecksMixin, TransactionTestCase):
            ops_app_labels = ["shop"]   # default: every app with ops migrations

    Each app is a ``subTest``.
    """

    #: The apps checked; ``None`` for every app with ops migrations.
    ops_app_labels: Sequence[str] | None = None
    #: The database alias the checks migrate (it must be in ``databases``).
    ops_database: str = DEFAULT_DB_ALIAS

    def _ops_each(self, check: Callable[[str], object]) -> None:
        for label in ops_app_labels(self.ops_app_labels, self.ops_database):
            with self.subTest(app_label=label):
                check(label)

    def test_ops_single_head(self) -> None:
        self._ops_each(check_single_head)

    def test_ops_upgrade(self) -> None:
        _refuse_test_transaction(self.ops_database, UNITTEST_HINT)
        self._ops_each(lambda label: check_upgrade(label, self.ops_database))

    def test_ops_models_match_ddl(self) -> None:
        self._ops_each(lambda label: check_models_match_ddl(label, self.ops_database))

    def test_ops_stairway(self) -> None:
        _refuse_test_transaction(self.ops_database, UNITTEST_HINT)
        self._ops_each(lambda label: check_stairway(label, self.ops_database))

    def test_ops_lint(self) -> None:
        self._ops_each(lambda label: check_lint(label, self.ops_database))
