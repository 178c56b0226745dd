"""Alembic operations -> the Python source of ``upgrade()``/``downgrade()``, and words for them.

Rendering is Alembic's own (what :func:`alembic.autogenerate.render_python_code`
does, on an :class:`~alembic.autogenerate.api.AutogenContext` of ours whose
imports are read afterwards: those of plugins' renderers, such as
alembic_utils' ``from alembic_utils.pg_view import PGView``, included), with
a dialect that writes SQL text as it is (:func:`rendering_context`). A type
of the project's own (not SQLAlchemy's) is written as Alembic writes it,
``module.Type(...)``, with ``import module``. An app's ``render_item`` hook is
asked first, as in plain Alembic. The additions are :class:`BatchTableOps`: a
``batch_alter_table`` block that can carry ``recreate=``, ``table_args=`` and
``table_kwargs=``, which SQLite needs so that a table rebuilt from reflection
keeps what reflection cannot see (unnamed CHECK constraints,
``AUTOINCREMENT``); operations that are part of a change rather than a
change (``is_change = False``), left out of the list of changes; and what
a script needs to run on every backend (see :mod:`.portable`):
:class:`DialectOps` (``if dialect == "postgresql":``),
:class:`DialectDefault` (a default looked up by the backend's name),
constraints with ``.ddl_if(dialect=...)`` and types with their
``with_variant()`` grouped (``.with_variant(sa.CHAR(length=32), "mysql",
"sqlite")``). ``dialect`` is the first line of a body that uses it:
``dialect = op.get_context().dialect.name``, online and offline alike.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import render as alembic_render
from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext

# Alembic's own renderers of a type and a constraint, called from the
# render_item hook so that only what is added (variants, ddl_if) is ours.
from alembic.autogenerate.render import _render_constraint, _repr_type
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Dialect

__all__ = [
    "DIALECTS",
    "AutocommitBlockOps",
    "BatchTableOps",
    "DialectDefault",
    "DialectOps",
    "DropTemporaryDefaultOp",
    "WrittenType",
    "describe",
    "render",
    "rendering_context",
    "script_imports",
    "suggested_name",
]


class BatchTableOps(ops.ModifyTableOps):
    """A ``ModifyTableOps`` rendered as ``batch_alter_table`` with extra arguments.

    ``table_args`` are Python expressions (already rendered), e.g.
    ``"sa.CheckConstraint('\\"qty\\" >= 0')"``. ``recreate_on``: the
    dialects ``recreate`` is for (the others get ``"auto"``): a rebuild only
    SQLite needs, written ``recreate="always" if dialect == "sqlite" else "auto"``.
    """

    def __init__(
        self,
        table_name: str,
        ops_: Sequence[ops.MigrateOperation],
        *,
        schema: str | None = None,
        recreate: str = "auto",
        table_args: Sequence[str] = (),
        table_kwargs: dict[str, Any] | None = None,
        recreate_on: Sequence[str] = (),
    ) -> None:
        super().__init__(table_name, list(ops_), schema=schema)
        self.recreate = recreate
        self.table_args = list(table_args)
        self.table_kwargs = dict(table_kwargs or {})
        self.recreate_on = tuple(recreate_on)
        #: SQLite's unnamed CHECKs before and after the block, when it restates them.
        self.checks_changed: tuple[Sequence[str], Sequence[str]] = ((), ())

    def is_empty(self) -> bool:
        # A rebuild with no other operation still changes the table.
        return not self.ops and self.recreate != "always"


class DropTemporaryDefaultOp(ops.AlterColumnOp):
    """Drop the default a new NOT NULL column was added with, as Django does."""

    is_change = False  # part of adding the column


#: ``info`` key of a constraint or an index that only some backends get:
#: the names of their SQLAlchemy dialects.
DIALECTS = "django_alembic_ops_dialects"

#: The statement that gives a script's body the backend's name.
DIALECT_LINE = "dialect = op.get_context().dialect.name"


class DialectOps(ops.MigrateOperation):
    """Operations that only the backends named ``dialects`` run.

    Rendered as ``if dialect == "postgresql":`` (or ``in (...)``) around
    them: where Django's DDL has an object on some backends only.
    ``otherwise``: what the other backends run instead, in a second block
    (``if dialect != "postgresql":``).
    """

    is_change = False  # its operations are described where they were found

    def __init__(
        self,
        dialects: Sequence[str],
        ops_: Sequence[ops.MigrateOperation],
        otherwise: Sequence[ops.MigrateOperation] = (),
    ) -> None:
        self.dialects = tuple(dialects)
        self.ops = list(ops_)
        self.otherwise = list(otherwise)

    def reverse(self) -> DialectOps:
        return DialectOps(
            self.dialects,
            [op.reverse() for op in reversed(self.ops)],
            [op.reverse() for op in reversed(self.otherwise)],
        )


class AutocommitBlockOps(ops.MigrateOperation):
    """Operations that cannot run in a transaction (``CREATE INDEX CONCURRENTLY``).

    Rendered inside ``with op.get_context().autocommit_block():``, itself
    inside ``if dialect == ...:`` when ``dialects`` names the only backends
    that run it.
    """

    is_change = False  # its operations are described where they were found

    def __init__(self, ops_: Sequence[ops.MigrateOperation], dialects: Sequence[str] = ()) -> None:
        self.ops = list(ops_)
        self.dialects = tuple(dialects)


class DialectDefault(sa.DefaultClause):
    """A database default whose SQL differs per backend: ``sql`` maps dialect names to it.

    Its own argument is the SQL of ``primary``, the compared backend.
    """

    def __init__(self, sql: dict[str, str], primary: str) -> None:
        super().__init__(_literal_text(sql[primary]))
        self.sql = dict(sql)


class WrittenType(sa.types.TypeDecorator[Any]):
    """A column's type as a script of the app wrote it: ``source``, rendered as it is.

    What a column the target no longer has was on every backend (with its
    variants), where reflection of one backend cannot tell (SQLite's
    ``TEXT`` may have been a JSON field). Behaves as ``reflected``.
    """

    impl = sa.types.NullType
    cache_ok = True

    def __init__(self, source: str, reflected: sa.types.TypeEngine[Any]) -> None:
        super().__init__()
        self.source = source
        self.impl = reflected  # type: ignore[assignment]  # this column's own

    def __repr__(self) -> str:
        return self.source


def _literal_text(sql: str) -> sa.TextClause:
    return sa.text(_escaped(sql))


def _escaped(sql: str) -> str:
    # A colon before a word would be a bind parameter to text().
    return re.sub(r"(?<![:\w\\]):(?=\w)", r"\\:", sql)


def _condition(dialects: Sequence[str], *, negated: bool = False) -> str:
    if len(dialects) == 1:
        return f"dialect {'!=' if negated else '=='} {_quoted(dialects[0])}"
    listed = "(" + ", ".join(_quoted(d) for d in dialects) + ")"
    return f"dialect {'not in' if negated else 'in'} {listed}"


def _quoted(text: str) -> str:
    return '"' + text + '"' if '"' not in text and "\\" not in text else repr(text)


def _flat_lines(autogen_context: AutogenContext, ops_: Sequence[ops.MigrateOperation]) -> list[str]:
    lines: list[str] = []
    for sub in ops_:
        rendered = renderers.dispatch(sub)(autogen_context, sub)
        # One line each: the printer indents a line's start only, and plugins
        # (alembic_utils) render several statements in one string. An empty
        # line would end the block.
        for text in [rendered] if isinstance(rendered, str) else rendered:
            lines.extend(line for line in text.splitlines() if line.strip())
    return lines


@renderers.dispatch_for(DialectOps)
def _render_dialect_ops(autogen_context: AutogenContext, op: DialectOps) -> list[str]:
    _uses_dialect()
    # Alembic's printer indents after the colon, and dedents at a blank line.
    lines: list[str] = []
    if op.ops:
        lines += [f"if {_condition(op.dialects)}:", *_flat_lines(autogen_context, op.ops), ""]
    if op.otherwise:
        # A second block rather than else: (the layout of codestyle, as ruff's).
        condition = _condition(op.dialects, negated=True)
        lines += [f"if {condition}:", *_flat_lines(autogen_context, op.otherwise), ""]
    return lines


@renderers.dispatch_for(AutocommitBlockOps)
def _render_autocommit_block(autogen_context: AutogenContext, op: AutocommitBlockOps) -> list[str]:
    lines = ["with op.get_context().autocommit_block():"]
    for sub in op.ops:
        # Blocks inside (if dialect == ...:) end with their own blank line.
        rendered = renderers.dispatch(sub)(autogen_context, sub)
        lines += [rendered] if isinstance(rendered, str) else list(rendered)
    lines.append("")
    if op.dialects:
        _uses_dialect()
        lines = [f"if {_condition(op.dialects)}:", *lines, ""]
    return lines


@renderers.dispatch_for(BatchTableOps)
def _render_batch_table(autogen_context: AutogenContext, op: BatchTableOps) -> list[str]:
    arguments = [repr(op.table_name), f"schema={op.schema!r}"]
    if op.recreate != "auto" and op.recreate_on:
        _uses_dialect()
        arguments.append(f"recreate={op.recreate!r} if {_condition(op.recreate_on)} else 'auto'")
    elif op.recreate != "auto":
        arguments.append(f"recreate={op.recreate!r}")
    if op.table_args:
        arguments.append("table_args=(" + "".join(f"{arg}, " for arg in op.table_args) + ")")
    if op.table_kwargs:
        arguments.append(f"table_kwargs={op.table_kwargs!r}")
    header = f"with op.batch_alter_table({', '.join(arguments)}) as batch_op:"
    # Alembic renders the block's body; only the first line is ours.
    plain = ops.ModifyTableOps(op.table_name, list(op.ops), schema=op.schema)
    lines: list[str] = list(renderers.dispatch(plain)(autogen_context, plain))
    if not lines:
        return [header, "pass", ""]
    return [header, *lines[1:]]


# Per thread: two threads may render at once (the API is thread-safe).
_rendering = threading.local()


def _uses_dialect() -> None:
    _rendering.uses_dialect = True


def _guarded() -> set[int]:
    """Objects the hook is rendering itself (Alembic calls it again for them)."""
    guard: set[int] | None = getattr(_rendering, "guard", None)
    if guard is None:
        guard = _rendering.guard = set()
    return guard


def _rendered_by_alembic(obj: Any, render_: Any) -> str:
    guard = _guarded()
    guard.add(id(obj))
    try:
        return str(render_())
    finally:
        guard.discard(id(obj))


def _import_own_type(type_: Any, autogen_context: AutogenContext) -> None:
    """``import module`` for a type of the project's own (or a library's).

    Alembic writes it ``module.Type(...)`` (no ``user_module_prefix``) and
    leaves the import to ``script.py.mako``, which apps do not have.
    """
    module = type(type_).__module__
    if not module.startswith(("sqlalchemy.", "django_alembic_ops.", "builtins", "__main__")):
        autogen_context.imports.add(f"import {module}")


def _render_type(type_: Any, autogen_context: AutogenContext) -> str | bool:
    """Variants grouped by type; another dialect's type as that dialect's Alembic writes it."""
    _import_own_type(type_, autogen_context)
    variants: dict[str, Any] = dict(getattr(type_, "_variant_mapping", {}) or {})
    if variants:
        text = _rendered_by_alembic(
            type_, lambda: _repr_type(type_, autogen_context, _skip_variants=True)
        )
        grouped: dict[str, list[str]] = {}
        for name, variant in variants.items():
            rendered = _repr_type(variant, autogen_context, _skip_variants=True)
            grouped.setdefault(rendered, []).append(name)
        for rendered, names in grouped.items():
            text += f".with_variant({rendered}, {', '.join(_quoted(n) for n in names)})"
        return text
    match = re.match(r"sqlalchemy\.dialects\.(\w+)", type(type_).__module__)
    if match is None or match.group(1) == autogen_context.dialect.name:
        return False
    name = match.group(1)
    autogen_context.imports.add(f"from sqlalchemy.dialects import {name}")
    own = rendering_context(_dialect_named(name)).impl.render_type(type_, autogen_context)
    return own if own else f"{name}.{type_!r}"


def _dialect_named(name: str) -> Dialect:
    dialect: Dialect = sa.engine.make_url(f"{name}://").get_dialect()()
    return dialect


def _render_hook(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    if id(obj) in _guarded():
        return False
    if type_ == "type" and isinstance(obj, WrittenType):
        for name in sorted(set(re.findall(r"\b(postgresql|mysql|sqlite)\.", obj.source))):
            autogen_context.imports.add(f"from sqlalchemy.dialects import {name}")
        return obj.source
    if type_ == "type":
        return _render_type(obj, autogen_context)
    if type_ == "server_default" and isinstance(obj, DialectDefault):
        _uses_dialect()
        pairs = ", ".join(f"{_quoted(n)}: {_escaped(sql)!r}" for n, sql in obj.sql.items())
        return f"sa.text({{{pairs}}}[dialect])"
    dialects = getattr(obj, "info", {}).get(DIALECTS) if isinstance(obj, sa.Constraint) else None
    if dialects:
        table = obj.table
        metadata = table.metadata if isinstance(table, sa.Table) else None
        text = _rendered_by_alembic(obj, lambda: _render_constraint(obj, autogen_context, metadata))
        names = (
            _quoted(dialects[0])
            if len(dialects) == 1
            else ("(" + ", ".join(_quoted(d) for d in dialects) + ")")
        )
        return f"{text}.ddl_if(dialect={names})"
    return False


def rendering_context(dialect: Dialect) -> MigrationContext:
    """A context to render with: ``dialect``'s kind, SQL written as it is.

    Alembic writes expressions (defaults, index conditions) into the script
    compiled by the context's dialect; with a ``pyformat`` driver such as
    psycopg that doubles every ``%`` (``'100%'`` would become ``'100%%'``
    in the script, and in the database). The same dialect with the
    ``named`` parameter style leaves them alone.
    """
    dialect_class: Any = sa.engine.make_url(f"{dialect.name}://").get_dialect()
    offline = dialect_class(paramstyle="named")
    return MigrationContext.configure(dialect=offline)


def render(
    container: ops.OpContainer,
    context: MigrationContext,
    *,
    batch: bool,
    render_item: Callable[[str, Any, AutogenContext], str | bool] | None = None,
) -> tuple[str, set[str]]:
    """The body of ``upgrade()`` or ``downgrade()`` for ``container``, and its imports.

    ``render_item``: the app's own hook (Alembic's signature), asked first.
    The body is unindented, as Alembic renders it (one line an ``op`` call):
    the writer lays it out, or has a formatter do it (see
    :func:`django_alembic_ops.writer.render`), only when it is written.
    """

    def hook(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
        if id(obj) in _guarded():
            return False  # being rendered by Alembic for the hook below
        if render_item is not None:
            rendered = render_item(type_, obj, autogen_context)
            if rendered is not False:
                return rendered
        return _render_hook(type_, obj, autogen_context)  # False: Alembic's own rendering

    # What render_python_code() does, on a context whose imports are read
    # afterwards: every renderer (plugins' too) adds its own to it.
    autogen_context = AutogenContext(
        context,
        opts={
            "sqlalchemy_module_prefix": "sa.",
            "alembic_module_prefix": "op.",
            "render_item": hook,
            "render_as_batch": batch,
            "user_module_prefix": None,
        },
        autogenerate=False,
    )
    _rendering.uses_dialect = False
    body = alembic_render._indent(alembic_render._render_cmd_body(container, autogen_context))
    imports = set(autogen_context.imports)
    if _rendering.uses_dialect:
        first, _, rest = body.partition("\n")
        body = f"{first}\n    {DIALECT_LINE}\n{rest}"
    # Alembic indents every line but the first (its template indents that
    # one): undone, so that the writer indents the body once.
    body = re.sub(r"^    ", "", "    " + body, flags=re.MULTILINE)
    return body, imports


def _column_change(op: ops.AlterColumnOp) -> str:
    what = []
    if op.modify_type is not None:
        what.append("type")
    if op.modify_nullable is not None:
        what.append("NULL" if op.modify_nullable else "NOT NULL")
    if op.modify_server_default is not False:
        what.append("default")
    if op.modify_comment is not False:
        what.append("comment")
    if op.modify_name is not None:
        what.append("name")
    return f"Alter column {op.table_name}.{op.column_name} ({', '.join(what) or 'options'})"


_CONSTRAINT_KINDS = {
    "CreateUniqueConstraintOp": "unique constraint",
    "CreateCheckConstraintOp": "check constraint",
    "CreatePrimaryKeyOp": "primary key",
}


def _describe_one(op: ops.MigrateOperation) -> Iterable[str]:
    if getattr(op, "is_change", True) is False:
        return
    if isinstance(op, ops.CreateTableOp):
        yield f"Create table {op.table_name}"
    elif isinstance(op, ops.DropTableOp):
        yield f"Drop table {op.table_name}"
    elif isinstance(op, ops.ModifyTableOps):
        if isinstance(op, BatchTableOps) and not op.ops and op.recreate == "always":
            yield f"Rebuild table {op.table_name} (CHECK constraints)"
        for sub in op.ops:
            yield from _describe_one(sub)
    elif isinstance(op, ops.AddColumnOp):
        yield f"Add column {op.table_name}.{op.column.name}"
    elif isinstance(op, ops.DropColumnOp):
        yield f"Remove column {op.table_name}.{op.column_name}"
    elif isinstance(op, ops.AlterColumnOp):
        yield _column_change(op)
    elif isinstance(op, ops.CreateIndexOp):
        yield f"Create index {op.index_name} on {op.table_name}"
    elif isinstance(op, ops.DropIndexOp):
        yield f"Remove index {op.index_name} from {op.table_name}"
    elif isinstance(op, ops.CreateForeignKeyOp):
        yield f"Create foreign key {op.constraint_name or ''} on {op.source_table}".replace(
            "  ", " "
        )
    elif isinstance(op, ops.AddConstraintOp):
        kind = _CONSTRAINT_KINDS.get(type(op).__name__, "constraint")
        name = getattr(op, "constraint_name", None) or ""
        table = getattr(op, "table_name", "")
        yield f"Create {kind} {name} on {table}".replace("  ", " ")
    elif isinstance(op, ops.DropConstraintOp):
        yield f"Remove constraint {op.constraint_name} from {op.table_name}"
    elif isinstance(op, (ops.CreateTableCommentOp, ops.DropTableCommentOp)):
        yield f"Alter comment of table {op.table_name}"
    else:
        yield _plugin_change(op)


def _entity_name(entity: Any) -> str:
    """``public.shop_big_sale``; a grant's ``public.shop_order.reader.SELECT``."""
    signature = str(entity.signature)
    if ": " in signature:  # PGGrantTable's signature is its identity
        return signature.split(": ", 1)[1]
    return f"{entity.schema}.{signature}"


def _entity_words(entity: Any) -> str:
    """``view public.shop_big_sale``: an alembic_utils entity in words."""
    try:
        kind = str(entity.type_).replace("_", " ")
    except NotImplementedError:
        kind = "entity"
    name = _entity_name(entity)
    on_entity = getattr(entity, "on_entity", None)
    return f"{kind} {name} on {on_entity}" if on_entity else f"{kind} {name}"


#: alembic_utils' operations (by class name) in words.
_ENTITY_VERBS = {
    "CreateOp": "Create",
    "ReplaceOp": "Replace",
    "DropOp": "Drop",
    "RevertOp": "Revert",
}


def _plugin_change(op: ops.MigrateOperation) -> str:
    """A plugin's operation in words (alembic_utils', alembic-postgresql-enum's, others')."""
    cls = type(op)
    if cls.__module__.startswith("alembic_utils.") and cls.__name__ in _ENTITY_VERBS:
        return f"{_ENTITY_VERBS[cls.__name__]} {_entity_words(getattr(op, 'target', None))}"
    if cls.__module__.startswith("alembic_postgresql_enum."):
        enum = f"enum {getattr(op, 'schema', None) or 'public'}.{getattr(op, 'name', '')}"
        if cls.__name__ == "CreateEnumOp":
            return f"Create {enum}"
        if cls.__name__ == "DropEnumOp":
            return f"Drop {enum}"
        if cls.__name__ == "AddEnumValuesOp":
            added = [v for v in getattr(op, "new_values", []) if v not in op.old_values]  # type: ignore[attr-defined]
            return f"Add {', '.join(map(repr, added))} to {enum}"
        return f"Alter values of {enum}"
    # Another plugin's: its class name in words, and what it names.
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", re.sub(r"Op$", "", cls.__name__)).capitalize()
    name = getattr(op, "table_name", None) or getattr(op, "name", None)
    return f"{words} {name}" if isinstance(name, str) else words


def _plugin_fragment(op: ops.MigrateOperation) -> str | None:
    """A file name fragment for a plugin's operation, as for a model's."""
    cls = type(op)
    if cls.__module__.startswith("alembic_utils.") and cls.__name__ in _ENTITY_VERBS:
        # Without its schema and a function's arguments: shop_upper_note.
        name = _entity_name(getattr(op, "target")).split(".", 1)[-1].split("(")[0].strip()  # noqa: B009
        prefix = {"CreateOp": "", "DropOp": "delete_"}.get(cls.__name__, "replace_")
        return f"{prefix}{name}"
    if cls.__module__.startswith("alembic_postgresql_enum."):
        prefix = {"CreateEnumOp": "", "DropEnumOp": "delete_"}.get(cls.__name__, "alter_")
        return f"{prefix}{getattr(op, 'name', '')}"
    return None


def describe(container: ops.OpContainer) -> list[str]:
    """One line per change, like ``makemigrations`` prints them."""
    return [line for op in container.ops for line in _describe_one(op)]


def _fragments(op: ops.MigrateOperation, created: set[str]) -> list[str | None]:
    """Django's ``Operation.migration_name_fragment`` for ``op``; ``None``: it has none.

    What comes with a new table (its indexes, constraints) adds nothing: a
    new table is named after itself, as a new model is.
    """
    if getattr(op, "is_change", True) is False:
        return []
    table = getattr(op, "table_name", None)
    if isinstance(op, ops.CreateTableOp):
        return [op.table_name]
    if table in created:
        return []
    if isinstance(op, ops.ModifyTableOps):
        return [part for sub in op.ops for part in _fragments(sub, created)] or [None]
    if isinstance(op, ops.DropTableOp):
        return [f"delete_{op.table_name}"]
    if isinstance(op, ops.AddColumnOp):
        return [f"{op.table_name}_{op.column.name}"]
    if isinstance(op, ops.DropColumnOp):
        return [f"remove_{op.table_name}_{op.column_name}"]
    if isinstance(op, ops.AlterColumnOp):
        return [f"alter_{op.table_name}_{op.column_name}"]
    if isinstance(op, ops.CreateIndexOp):
        return [str(op.index_name)]
    if isinstance(op, ops.DropIndexOp):
        return [f"remove_{op.index_name}"]
    if isinstance(op, ops.AddConstraintOp) and getattr(op, "constraint_name", None):
        return [str(getattr(op, "constraint_name", ""))]
    if isinstance(op, ops.DropConstraintOp) and op.constraint_name:
        return [f"remove_{op.constraint_name}"]
    return [_plugin_fragment(op)]


def suggested_name(container: ops.OpContainer) -> str | None:
    """A file name for the changes, as ``makemigrations`` names its files.

    Django's ``Migration.suggest_name()`` on the operations: the first
    change's name, the next ones' while the name stays within 52 characters,
    then ``_and_more`` (``shop_order_total_and_more``). ``None`` when a
    change has no name (the writer then uses a date, as Django does).
    """
    created = {op.table_name for op in container.ops if isinstance(op, ops.CreateTableOp)}
    raw = [part for op in container.ops for part in _fragments(op, created)]
    if not raw or None in raw:
        return None
    fragments = [re.sub(r"\W+", "_", part) for part in raw if part is not None]
    name = fragments[0]
    for fragment in fragments[1:]:
        longer = f"{name}_{fragment}"
        if len(longer) > 52:
            return f"{name}_and_more"
        name = longer
    return name


def _bound_names(line: str) -> list[str]:
    """What an import line binds: ``import a.b`` -> ``a.b``; ``from m import x as y`` -> ``y``."""
    if line.startswith("import "):
        return [part.split(" as ")[-1].strip() for part in line[len("import ") :].split(",")]
    _, _, names = line.partition(" import ")
    return [part.split(" as ")[-1].strip(" ()") for part in names.split(",")]


def _used(name: str, bodies: Sequence[str]) -> bool:
    pattern = rf"(?<![\w.]){re.escape(name)}(?![\w])"
    return any(re.search(pattern, body) for body in bodies)


def script_imports(bodies: Sequence[str], alembic_imports: Iterable[str]) -> str:
    """The import block of a script: only what its bodies use.

    ``alembic_imports`` are those the renderers asked for (Alembic's,
    plugins', a project's types'); a renderer may ask for several lines at
    once, and for names its code does not use (alembic_utils asks for
    ``sql_text``): those are left out.
    """
    wanted = {"from alembic import op"}
    if any(re.search(r"(?<![\w.])sa\.", body) for body in bodies):
        wanted.add("import sqlalchemy as sa")
    for text in alembic_imports:
        for line in text.splitlines():
            line = line.strip()
            if line and all(_used(name, bodies) for name in _bound_names(line)):
                wanted.add(line)
    # Straight imports first, then from-imports: isort's and ruff's order.
    straight = sorted(line for line in wanted if line.startswith("import "))
    return "\n".join(straight + sorted(wanted - set(straight)))
