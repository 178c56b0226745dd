"""Run Alembic's autogenerate for one app, on Django's connection.

The comparison is Alembic's (:func:`alembic.autogenerate.produce_migrations`)
on a :class:`~alembic.runtime.migration.MigrationContext` configured on the
SQLAlchemy view of Django's connection (:mod:`django_alembic_ops.bridge`).
What this module adds is the scope: only the app's own tables are compared,
so other apps' tables, Django's tables and the version table are never
altered or dropped.

A table is the app's own when it is in the app's target (see
:mod:`.target`), or when one of the app's ops migrations created it with
``op.create_table()`` and no installed model claims it any more: that is how
a dropped model's table is found. Tables of managed models and of other apps'
models are never the app's (:func:`claimed_tables`).

Alembic's operations are then adjusted where Django does things its own way:
removed tables are dropped in dependency order, constraints added to existing
tables are named (a downgrade drops them by name), new ``NOT NULL`` columns
are added with Django's effective default, and the script depends on what
creates the tables its foreign keys point at. On SQLite every change to an
existing table is a ``batch_alter_table`` that keeps what a rebuild would
lose (see :mod:`.sqlite`).

Alembic's plugins work as in plain Alembic, the app's
``migrations_ops/__init__.py`` being its ``env.py``: the context gets every
option :meth:`~alembic.runtime.environment.EnvironmentContext.configure`
sets (plugins read them), plus the app's own ``include_object``,
``include_name`` and ``render_item`` hooks; the comparison runs in a
transaction that is rolled back (alembic_utils tries its entities' DDL in
savepoints: nothing it tries may commit); and only the app's own entities
and enum types are compared (:mod:`.plugins`).
"""

from __future__ import annotations

import ast
import dataclasses
import graphlib
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.config import Config
from alembic.operations import ops
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader

from .. import app_env, bridge, conf, discovery, executor, heap, history, state
from ..errors import OpsError
from . import defaults, plugins, portable, render, safe, sqlite
from .metadata import is_key_index, pg_constraint_name, quoted, sql_text
from .target import AppTarget, app_target

__all__ = ["Comparison", "DatabaseNotAtHead", "compare"]

#: Alembic plugins used for comparing: its defaults, CHECK constraints
#: compared by name (all of ours are named on PostgreSQL; SQLite's unnamed
#: ones are handled by :mod:`.sqlite`), and :mod:`.defaults`.
PLUGINS = [
    "alembic.autogenerate.*",
    "alembic.ext.checkconstraint_byname",
    defaults.register(),
]


class DatabaseNotAtHead(OpsError):
    """The database is behind the app's ops migrations."""


@dataclass(frozen=True)
class Comparison:
    """What autogenerate found for one app."""

    app_label: str
    database: str
    changes: list[str]  # one line per change; empty when the schema matches
    upgrade: str  # body of upgrade()
    downgrade: str  # body of downgrade()
    imports: str  # the script's import block
    name: str | None = None  # a file name for the changes, None for a dated one
    notes: list[str] = field(default_factory=list)  # what was skipped, and why
    # What must run first: other apps' ops migrations (revision ids) and
    # Django migrations ((app_label, name)) that create the tables the new
    # foreign keys point at.
    depends_on: list[str] = field(default_factory=list)
    django_dependencies: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)


def _created_tables(paths: list[Path]) -> set[str]:
    """Table names passed to ``op.create_table("...")`` in these scripts."""
    names: set[str] = set()
    for path in paths:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "create_table"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value)
    return names


def claimed_tables(app_label: str) -> set[str]:
    """Tables that are not the app's to change: Django's and other apps'.

    Those of every installed model that Django's migrations create
    (``managed``) or that belongs to another app. An auto-created join
    table belongs with the model that declares the many-to-many field.
    """
    claimed: set[str] = set()
    for model in apps.get_models(include_auto_created=True):
        declared_by = model._meta.auto_created  # the model whose M2M made it
        owner = declared_by if isinstance(declared_by, type) else model
        if owner._meta.app_label != app_label or owner._meta.managed:
            claimed.add(model._meta.db_table)
    return claimed


def _check_head(app_label: str, alias: str, context: MigrationContext) -> None:
    scripts = executor.load_scripts()
    recorded = context.get_current_heads()
    # A revision without its script: what the database holds cannot be told.
    executor.check_recorded(alias, scripts, recorded)
    if app_label not in scripts.by_app:
        return
    head = scripts.app_head(app_label)
    if head is not None and head.revision not in scripts.applied(recorded):
        raise DatabaseNotAtHead(
            f"Database '{alias}' is not at the head of the ops migrations of app '{app_label}'; "
            f"run 'python manage.py opsmigrate {app_label} --database {alias}' first."
        )


def _script_paths(app_label: str) -> list[Path]:
    scripts = executor.load_scripts()
    return [Path(m.script.path) for m in scripts.by_app.get(app_label, [])]


@contextmanager
def _recorded_warnings(notes: list[str]) -> Iterator[None]:
    # Alembic and SQLAlchemy warn about what they skip; tell the user instead.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        message = " ".join(str(warning.message).split())
        if message not in notes:
            notes.append(message)


def _referred_tables(container: ops.OpContainer) -> set[str]:
    """Tables the foreign keys that ``container`` creates point at."""
    referred: set[str] = set()
    for op in container.ops:
        if isinstance(op, ops.CreateTableOp):
            # From op.columns (columns and constraints), not op.to_table():
            # building a Table per created table was a tenth of the run.
            for item in op.columns:
                keys: Iterable[sa.ForeignKey] = ()
                if isinstance(item, sa.Column):
                    keys = item.foreign_keys
                elif isinstance(item, sa.ForeignKeyConstraint):
                    keys = item.elements
                referred |= {key.target_fullname.rsplit(".", 1)[0] for key in keys}
        elif isinstance(op, ops.ModifyTableOps):
            referred |= {
                sub.referent_table for sub in op.ops if isinstance(sub, ops.CreateForeignKeyOp)
            }
    return referred


def dependencies(
    container: ops.OpContainer, app_label: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """What must have run before ``container``: as ``makemigrations`` adds dependencies.

    A foreign key to a table Django's migrations create (``auth_user``)
    needs that app's Django migrations (its latest one, as a
    ``django_dependencies`` entry); one to an unmanaged model of another app
    with ops migrations needs that app's head (``depends_on``).
    """
    owners = {m._meta.db_table: m for m in apps.get_models(include_auto_created=True)}
    depends_on: list[str] = []
    django: list[tuple[str, str]] = []
    loader: MigrationLoader | None = None
    for table in sorted(_referred_tables(container)):
        model = owners.get(table)
        if model is None:
            continue
        declared_by = model._meta.auto_created
        owner = declared_by if isinstance(declared_by, type) else model
        label = owner._meta.app_label
        if label == app_label:
            continue
        if owner._meta.managed:
            if loader is None:
                loader = MigrationLoader(None, ignore_no_migrations=True)
            django += sorted(loader.graph.leaf_nodes(label))
        else:
            scripts = executor.load_scripts()
            head = scripts.app_head(label) if label in scripts.by_app else None
            if head is not None:
                depends_on.append(head.revision)
    return list(dict.fromkeys(depends_on)), list(dict.fromkeys(django))


def _django_name(
    connection: BaseDatabaseWrapper, table: str, columns: list[str], suffix: str
) -> str:
    editor: Any = connection.schema_editor(collect_sql=True, atomic=False)
    return str(editor._create_index_name(table, columns, suffix=suffix))


def name_constraints(
    container: ops.OpContainer,
    tables: set[str],
    connection: BaseDatabaseWrapper,
    notes: list[str],
) -> None:
    """Name the unnamed constraints added to existing ``tables``.

    A ``downgrade()`` can only drop a constraint by name, and SQLite's batch
    mode needs one to add it. PostgreSQL and MySQL get the name they would
    choose themselves for Django's inline ``UNIQUE`` (``<table>_<column>_key``;
    the column's name); SQLite gets Django's (``..._uniq``,
    ``..._fk_<table>_<column>``). Run
    before the operations are reversed. On SQLite an unnamed constraint of
    the database cannot be dropped in batch mode: that is noted instead.
    """
    postgresql = connection.vendor == "postgresql"
    for op in container.ops:
        if not isinstance(op, ops.ModifyTableOps) or op.table_name not in tables:
            continue
        kept: list[ops.MigrateOperation] = []
        for sub in op.ops:
            if isinstance(sub, ops.CreateForeignKeyOp) and not sub.constraint_name:
                suffix = f"_fk_{sub.referent_table}_{sub.remote_cols[0]}"
                sub.constraint_name = _django_name(
                    connection, sub.source_table, list(sub.local_cols), suffix
                )
            elif isinstance(sub, ops.CreateUniqueConstraintOp) and not sub.constraint_name:
                columns = [str(c) for c in sub.columns]
                if postgresql:
                    name = pg_constraint_name(sub.table_name, "_".join(columns), "key")
                elif connection.vendor == "mysql":
                    name = columns[0]
                else:
                    name = _django_name(connection, sub.table_name, columns, "_uniq")
                sub.constraint_name = name
            elif isinstance(sub, ops.DropConstraintOp) and not sub.constraint_name:
                notes.append(
                    f"{op.table_name}: an unnamed {sub.constraint_type or 'constraint'} cannot "
                    "be dropped by batch_alter_table on SQLite; not rendered - drop it by hand "
                    "(e.g. rebuild the table with batch_alter_table(copy_from=...))."
                )
                continue
            kept.append(sub)
        op.ops = kept


def _quoted_default(connection: BaseDatabaseWrapper, fld: Any) -> str | None:
    """Django's effective default of ``fld`` as SQL on ``connection``'s backend."""
    editor: Any = connection.schema_editor(collect_sql=True, atomic=False)
    try:
        value = editor.effective_default(fld)
        return None if value is None else quoted(editor, value)
    except (TypeError, ValueError):
        return None


def temporary_defaults(
    container: ops.OpContainer,
    target: AppTarget,
    backends: list[portable.Backend],
    tables: set[str],
    notes: list[str],
) -> None:
    """Add new NOT NULL columns of existing tables the way Django does.

    Django's ``add_field()`` adds such a column with ``DEFAULT`` the field's
    effective default (its ``default``, ``""`` for a blank text field, now
    for ``auto_now``) so that existing rows get a value, then drops the
    default. The same is rendered here, from the schema editor's
    ``effective_default()`` and ``quote_value()`` on each backend (the
    first is the compared one; ``True`` is ``true`` on PostgreSQL and ``1``
    on SQLite). Only ``upgrade()``: its reverse simply drops the column.
    """
    primary = backends[0]
    for op in container.ops:
        if not isinstance(op, ops.ModifyTableOps) or op.table_name not in tables:
            continue
        result: list[ops.MigrateOperation] = []
        for sub in op.ops:
            result.append(sub)
            if not isinstance(sub, ops.AddColumnOp):
                continue
            column = sub.column
            if column.nullable or column.server_default is not None or column.primary_key:
                continue
            fld = target.fields.get((op.table_name, column.name))
            literal = None if fld is None else _quoted_default(primary.connection, fld)
            if literal is None:
                notes.append(
                    f"{op.table_name}.{column.name}: a NOT NULL column without a default; "
                    "adding it fails on a table with rows (give the field a default or "
                    "db_default, or edit the migration)."
                )
                continue
            literals = {
                backend.name: _quoted_default(backend.connection, fld) or literal
                for backend in backends
            }
            column = column._copy()
            column.server_default = (
                sa.DefaultClause(sql_text(literal))
                if len(set(literals.values())) == 1
                else render.DialectDefault(literals, primary.name)
            )
            sub.column = column
            result.append(
                render.DropTemporaryDefaultOp(
                    op.table_name,
                    column.name,
                    schema=op.schema,
                    existing_type=column.type,
                    existing_nullable=False,
                    existing_server_default=column.server_default,
                    modify_server_default=None,
                )
            )
        op.ops = result


def note_unfilled_readds(downgrade: ops.OpContainer, tables: set[str], notes: list[str]) -> None:
    """Note dropped NOT NULL columns that ``downgrade()`` would add back without a default.

    The reverse of a dropped column is rebuilt from the database, where the
    model field (and so its effective default) no longer exists: on a table
    with rows, that ``add_column`` fails (it is rolled back whole).
    """
    for op in downgrade.ops:
        if not isinstance(op, ops.ModifyTableOps) or op.table_name not in tables:
            continue
        for sub in op.ops:
            column = getattr(sub, "column", None)
            if (
                isinstance(sub, ops.AddColumnOp)
                and column is not None
                and not column.nullable
                and column.server_default is None
                and column.computed is None
            ):
                notes.append(
                    f"{op.table_name}.{column.name}: downgrade() adds this dropped NOT NULL "
                    "column back without a default, which fails on a table with rows "
                    "(give it a server_default there)."
                )


def order_drops(container: ops.OpContainer) -> None:
    """Drop removed tables last, each before the tables it references.

    Alembic emits them in no particular order; PostgreSQL refuses to drop a
    table another one still references. ``downgrade()`` is the reverse, so
    it creates them in dependency order.
    """
    drops = {op.table_name: op for op in container.ops if isinstance(op, ops.DropTableOp)}
    graph: dict[str, set[str]] = {name: set() for name in drops}
    for name, op in drops.items():
        for constraint in op.to_table().foreign_key_constraints:
            referred = constraint.elements[0].target_fullname.rsplit(".", 1)[0]
            if referred in graph and referred != name:
                graph[referred].add(name)  # drop the referencing table first
    ordered = list(graphlib.TopologicalSorter(graph).static_order())
    container.ops = [op for op in container.ops if not isinstance(op, ops.DropTableOp)] + [
        drops[name] for name in ordered
    ]


def _prepare_sqlite(
    upgrade_ops: ops.UpgradeOps,
    downgrade_ops: ops.DowngradeOps,
    metadata: sa.MetaData,
    sa_connection: sa.Connection,
    hidden: dict[str, set[tuple[str, ...]]],
) -> None:
    """Batch blocks that keep what a rebuild would lose (see :mod:`.sqlite`)."""
    database = {name: sqlite.database_state(sa_connection, name) for name in hidden}
    target = {
        name: sqlite.target_state(metadata.tables[name], hidden[name], database[name])
        for name in hidden
    }
    sqlite.prepare(upgrade_ops, database, target)
    # downgrade(): from the target back to the database as it is. Unique sets
    # that reflection cannot see are restated unless the upgrade's rebuild
    # already wrote them out visibly.
    rebuilt = {
        op.table_name
        for op in upgrade_ops.ops
        if isinstance(op, render.BatchTableOps) and sqlite.rebuilds(op)
    }
    restore = {
        name: dataclasses.replace(
            database[name],
            uniques=tuple(
                sorted(hidden[name] - (set(target[name].uniques) if name in rebuilt else set()))
            ),
        )
        for name in hidden
    }
    sqlite.prepare(downgrade_ops, target, restore, restoring=True)


def _context(sa_connection: sa.Connection, **options: Any) -> MigrationContext:
    """A context configured as an ``env.py`` configures it, with ``options``.

    Through :meth:`EnvironmentContext.configure`, so that every option it
    sets is there with Alembic's default: plugins read them
    (alembic_utils reads ``include_schemas``).
    """
    environment = EnvironmentContext(Config(), executor.load_scripts().directory)
    environment.configure(connection=sa_connection, **options)
    return environment.get_context()


def _hooks(app_label: str) -> app_env.Hooks:
    ops_app = discovery.app_folder(app_label)
    return app_env.hooks(ops_app) if ops_app.exists else app_env.Hooks()


def compare(
    app_label: str, *, database: str = DEFAULT_DB_ALIAS, unsafe: bool = False
) -> Comparison:
    """Compare ``database`` with the target of ``app_label``; render what differs.

    ``upgrade()`` changes existing tables in the forms that are safe on a busy
    PostgreSQL database (:mod:`.safe`); ``unsafe``: in the plain forms.

    :raises NoTarget: the app has neither unmanaged models nor ``target_metadata``.
    :raises DatabaseNotAtHead: the app's ops migrations are not all applied.
    """
    if not router.allow_migrate(database, app_label):
        raise OpsError(
            f"The database routers do not allow app '{app_label}' on database '{database}'; "
            "compare against a database the app is migrated on (--database)."
        )
    state.ensure_connection(database)
    notes: list[str] = []
    version_table = conf.get().VERSION_TABLE
    # Every app's package first (each is its app's env.py), and so its plugins.
    executor.load_scripts()
    hooks = _hooks(app_label)
    script_paths = _script_paths(app_label)
    with (
        heap.long_lived_objects_frozen(),
        # Rolled back: nothing a plugin tries while comparing may stay.
        transaction.atomic(using=database),
        bridge.sqlalchemy_connection(database) as sa_connection,
        _recorded_warnings(notes),
    ):
        target = app_target(app_label, connections[database], sa_connection, notes)
        inspector = sa.inspect(sa_connection)
        existing = set(inspector.get_table_names())
        claimed = claimed_tables(app_label) | {version_table, history.TABLE}
        owned = set(target.tables) - claimed
        dropped = (
            set()
            if target.source == "entities"  # no table is the app's to drop
            else (_created_tables(script_paths) & existing) - claimed - owned
        )
        compared = owned | dropped
        is_sqlite = sa_connection.dialect.name == "sqlite"
        # On SQLite, unique sets and foreign key options that reflection
        # cannot see (see .sqlite).
        hidden: dict[str, set[tuple[str, ...]]] = {}
        optionless: dict[str, set[sqlite.ForeignKeySignature]] = {}
        if is_sqlite:
            for name in existing & owned:
                hidden[name] = sqlite.hidden_uniques(sa_connection, name)
                optionless[name] = sqlite.optionless_foreign_keys(sa_connection, name)

        def same_foreign_key_elsewhere(constraint: sa.ForeignKeyConstraint) -> bool:
            # A foreign key on both sides whose options the database does not
            # report: not a change.
            table = constraint.table.name
            signature = sqlite.foreign_key_signature(constraint)
            if signature not in optionless.get(table, set()):
                return False
            return any(
                sqlite.foreign_key_signature(other) == signature
                for other in target.metadata.tables[table].foreign_key_constraints
            )

        def ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
            if type_ == "table":
                return name in compared
            if type_ == "unique_constraint" and not reflected and compare_to is None:
                # Not new: SQLite has it, SQLAlchemy cannot see it.
                columns = tuple(column.name for column in obj.columns)
                return columns not in hidden.get(obj.table.name, set())
            if type_ == "foreign_key_constraint" and is_sqlite:
                return not same_foreign_key_elsewhere(obj)
            if type_ == "index" and reflected and compare_to is None:
                return not is_key_index(connections[database], obj)
            return True

        # The app's own hooks narrow what is compared; they never widen it.
        def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
            if type_ == "table" and name not in compared:
                return False
            user = hooks.include_name
            return user is None or bool(user(name, type_, parent_names))

        def include_object(
            obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
        ) -> bool:
            if not ours(obj, name, type_, reflected, compare_to):
                return False
            user = hooks.include_object
            return user is None or bool(user(obj, name, type_, reflected, compare_to))

        context = _context(
            sa_connection,
            target_metadata=target.metadata,
            include_name=include_name,
            include_object=include_object,
            compare_type=True,
            compare_server_default=True,
            render_as_batch=is_sqlite,
            version_table=version_table,
            autogenerate_plugins=PLUGINS,
        )
        _check_head(app_label, database, context)
        with plugins.scoped(app_label, sa_connection.dialect.name, script_paths, notes):
            script = produce_migrations(context, target.metadata)
        upgrade_ops = script.upgrade_ops
        assert upgrade_ops is not None
        plugins.drop_only_own(upgrade_ops, script_paths)
        django_connection = connections[database]
        # The target on every backend the script must run on (see .portable);
        # with nothing to write (--check, "No changes"), none but this one.
        left_out: list[str] = []
        backends = portable.backends(
            target.models if not upgrade_ops.is_empty() else [],
            django_connection,
            target.metadata,
            sa_connection.dialect,
            left_out,
        )
        order_drops(upgrade_ops)
        name_constraints(upgrade_ops, existing & owned, django_connection, notes)
        downgrade_ops = upgrade_ops.reverse()
        temporary_defaults(upgrade_ops, target, backends, existing & owned, notes)
        note_unfilled_readds(downgrade_ops, existing & owned, notes)
        if is_sqlite:
            sqlite.expression_indexes(
                upgrade_ops, downgrade_ops, target.metadata, sa_connection, existing & owned
            )
            # Compared above instead.
            notes[:] = [note for note in notes if "expression-based index" not in note]
            _prepare_sqlite(upgrade_ops, downgrade_ops, target.metadata, sa_connection, hidden)
        depends_on, django_dependencies = dependencies(upgrade_ops, app_label)
        changes = render.describe(upgrade_ops)
        file_name = render.suggested_name(upgrade_ops)
        batch = is_sqlite
        made_for = [sa_connection.dialect.name]  # the backends the script runs on
        if target.source == "models":
            written = portable.written_types(script_paths)
            schema = portable.portable_schema(backends, target.tables, written)
            made_for = schema.names
            portable.make_portable(upgrade_ops, schema, upgrade=True)
            portable.make_portable(downgrade_ops, schema, upgrade=False)
            # Changes to existing tables go in batch blocks wherever SQLite must run them.
            batch = batch or "sqlite" in schema.names
            if set(schema.names) - {"postgresql"}:
                # Views, functions, enum types: PostgreSQL's only.
                plugins.postgresql_only(upgrade_ops)
                plugins.postgresql_only(downgrade_ops)
            if changes:
                notes.extend(left_out)
        if not unsafe:
            safe.make_safe(upgrade_ops, existing & owned, made_for)
        writing = render.rendering_context(sa_connection.dialect)
        upgrade, up_imports = render.render(
            upgrade_ops, writing, batch=batch, render_item=hooks.render_item
        )
        downgrade, down_imports = render.render(
            downgrade_ops, writing, batch=batch, render_item=hooks.render_item
        )
        transaction.set_rollback(True, using=database)
    return Comparison(
        app_label=app_label,
        database=database,
        changes=changes,
        upgrade=upgrade,
        downgrade=downgrade,
        imports=render.script_imports([upgrade, downgrade], up_imports | down_imports),
        name=file_name,
        notes=notes,
        depends_on=depends_on,
        django_dependencies=django_dependencies,
    )
