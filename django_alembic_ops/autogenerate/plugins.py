"""Alembic's autogenerate plugins, scoped to one app.

Plugins such as alembic_utils and alembic-postgresql-enum register their
comparators with Alembic when they are imported (by an app's
``migrations_ops/__init__.py``, see :mod:`django_alembic_ops.app_env`), and
then run for every comparison in the process. Plain Alembic has one
``env.py``; here each app is compared on its own, so:

- alembic_utils' process-wide registry holds, while an app is compared,
  only the entities that app's package registered (:func:`scoped`). Its
  entities are PostgreSQL's: on another database none are compared, and a
  note says so.
- Both plugins drop what they find in the database and the target does
  not declare: alembic_utils every view, function or trigger of a compared
  schema, alembic-postgresql-enum every unused enum type.
  :func:`drop_only_own` keeps only the drops of what the app's own scripts
  made (an entity they construct, an enum type they name): never another
  app's, nor one somebody created by hand.
- :func:`postgresql_only` puts their operations under
  ``if dialect == "postgresql":`` in a script made for other backends too.

Nothing here imports a plugin: each is looked up in :data:`sys.modules`,
where the app's package put it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.operations import ops

from .. import app_env
from . import render

__all__ = ["drop_only_own", "is_postgresql_plugin_op", "postgresql_only", "scoped"]

#: Modules of plugins whose operations are PostgreSQL's only.
POSTGRESQL_PLUGINS = ("alembic_utils.", "alembic_postgresql_enum.")


def _entity_classes() -> dict[str, type]:
    """alembic_utils' entity classes that are imported, by name (none without alembic_utils)."""
    module = sys.modules.get(app_env.ALEMBIC_UTILS_REGISTRY)
    if module is None:
        return {}
    found: dict[str, type] = {}
    waiting: list[type] = [module.ReplaceableEntity]
    while waiting:
        cls = waiting.pop()
        sub: type
        for sub in cls.__subclasses__():
            found.setdefault(sub.__name__, sub)
            waiting.append(sub)
    return found


def _callee(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _calls(paths: Iterable[Path]) -> Iterator[ast.Call]:
    for path in paths:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        yield from (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def _literal_arguments(node: ast.Call) -> tuple[list[Any], dict[str, Any]] | None:
    try:
        args = [ast.literal_eval(arg) for arg in node.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
    except ValueError:
        return None
    if any(kw.arg is None for kw in node.keywords):
        return None  # **options: not literal
    return args, kwargs


def made_entities(paths: Iterable[Path]) -> list[Any]:
    """The alembic_utils entities ``paths`` construct from literals (``PGView(schema=...)``).

    What autogenerate writes into a script; an entity built from variables
    is not known.
    """
    classes = _entity_classes()
    made: list[Any] = []
    if not classes:
        return made
    for node in _calls(paths):
        cls = classes.get(_callee(node))
        arguments = _literal_arguments(node) if cls is not None else None
        if cls is None or arguments is None:
            continue
        try:
            made.append(cls(*arguments[0], **arguments[1]))
        except Exception:  # noqa: S112 (arguments of another shape: not one we know)
            continue
    return made


def named_enums(paths: Iterable[Path]) -> set[str]:
    """Enum types ``paths`` name: ``sa.Enum(..., name=...)``, ``enum_name=...`` of an op."""
    names: set[str] = set()
    for node in _calls(paths):
        callee = _callee(node)
        for keyword in node.keywords:
            value = keyword.value
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                continue
            if (keyword.arg == "name" and callee.lower().endswith("enum")) or (
                keyword.arg == "enum_name"
            ):
                names.add(value.value)
    return names


@contextmanager
def scoped(
    app_label: str, dialect_name: str, script_paths: list[Path], notes: list[str]
) -> Iterator[None]:
    """alembic_utils' registry holds only ``app_label``'s entities for the block.

    Its schemas also include those of the entities the app's scripts made,
    so that one the app no longer registers is found and dropped.
    """
    registry = app_env.alembic_utils_registry()
    if registry is None:
        yield
        return
    own = app_env.registered(app_label)
    entities = list(own.entities)
    schemas = set(own.schemas)
    if dialect_name == "postgresql":
        schemas |= {entity.schema for entity in made_entities(script_paths)}
    elif entities:
        notes.append(
            "the views, functions and triggers it registers (alembic_utils) are compared on "
            f"PostgreSQL only; run 'python manage.py opsmakemigration {app_label} "
            "--database <alias>' with the alias of a PostgreSQL database."
        )
        entities = []
    with app_env.registry_lock:
        saved = (
            registry._entities,
            registry.schemas,
            registry.exclude_schemas,
            registry.entity_types,
        )
        registry._entities = {entity.identity: entity for entity in entities}
        registry.schemas = schemas
        registry.exclude_schemas = set(own.exclude_schemas)
        registry.entity_types = set(own.entity_types)
        try:
            yield
        finally:
            (
                registry._entities,
                registry.schemas,
                registry.exclude_schemas,
                registry.entity_types,
            ) = saved


def _plugin_class(module: str, name: str) -> type | None:
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else None


def drop_only_own(container: ops.OpContainer, script_paths: list[Path]) -> None:
    """Leave out the plugins' drops of what the app's scripts did not make."""
    drop_entity = _plugin_class("alembic_utils.reversible_op", "DropOp")
    drop_enum = _plugin_class("alembic_postgresql_enum.operations.drop_enum", "DropEnumOp")
    if drop_entity is None and drop_enum is None:
        return
    made: set[str] | None = None
    enums: set[str] | None = None
    kept: list[ops.MigrateOperation] = []
    for op in container.ops:
        if drop_entity is not None and isinstance(op, drop_entity):
            if made is None:
                made = {entity.identity for entity in made_entities(script_paths)}
            if getattr(op, "target").identity not in made:  # noqa: B009
                continue
        elif drop_enum is not None and isinstance(op, drop_enum):
            if enums is None:
                enums = named_enums(script_paths)
            if getattr(op, "name") not in enums:  # noqa: B009
                continue
        kept.append(op)
    container.ops = kept


def is_postgresql_plugin_op(op: ops.MigrateOperation) -> bool:
    """An operation of a plugin whose SQL is PostgreSQL's only."""
    return type(op).__module__.startswith(POSTGRESQL_PLUGINS)


def postgresql_only(container: ops.OpContainer) -> None:
    """Put the PostgreSQL plugins' operations under ``if dialect == "postgresql":``."""
    result: list[ops.MigrateOperation] = []
    for op in container.ops:
        if not is_postgresql_plugin_op(op):
            result.append(op)
        elif (
            result
            and isinstance(result[-1], render.DialectOps)
            and all(is_postgresql_plugin_op(done) for done in result[-1].ops)
        ):
            result[-1].ops.append(op)  # one block for consecutive ones
        else:
            result.append(render.DialectOps(("postgresql",), [op]))
    container.ops = result
