"""An Alembic autogenerate plugin: server defaults compared as the database means them.

Alembic compares a PostgreSQL server default by asking the server whether
``<reflected default> = <metadata default>``. That is right for constants
(``'new'::character varying`` = ``'new'``) and wrong for volatile functions:
``gen_random_uuid()`` never equals itself, so every run would report a
change. When either side calls a function, this comparator decides on the
normalised text instead (case, quotes, parentheses and ``::type`` casts
ignored), so Django's ``(STATEMENT_TIMESTAMP())`` matches the reflected
``statement_timestamp()``.

On MySQL/MariaDB, Alembic compares defaults as text, the metadata's
compiled for the driver (whose ``format`` parameter style doubles a ``%``:
``'100%'`` would never equal itself), and the server reports a numeric
literal at the column's scale (Django's ``DEFAULT 0`` on a ``DECIMAL(8, 2)``
reads back as ``0.00``). There a default is the same when its SQL, as
written, is the reported one, or when both are the same number.

It is used only by our comparisons (``autogenerate_plugins``), never by
other Alembic environments in the process.
"""

from __future__ import annotations

import contextlib
import re
import sys
from decimal import Decimal
from typing import Any

from alembic.autogenerate.api import AutogenContext
from alembic.operations.ops import AlterColumnOp
from alembic.runtime.plugins import Plugin
from alembic.util import PriorityDispatchResult
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.schema import Column, DefaultClause

NAME = "django_alembic_ops.server_defaults"

_CALL = re.compile(r"\w\s*\(")


def normalised(text: str | None) -> str:
    """A default's SQL without what PostgreSQL adds or Django wraps around it."""
    text = (text or "").lower()
    text = re.sub(r"::[a-z_ ]+(\[\])?", "", text)
    return re.sub(r'[\s()"]', "", text)


def _text(default: DefaultClause, autogen_context: AutogenContext) -> str:
    arg = default.arg
    if isinstance(arg, str):
        return arg
    return str(arg.compile(dialect=autogen_context.dialect, compile_kwargs={"literal_binds": True}))


def _both_defaults(
    autogen_context: AutogenContext,
    dialect: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> tuple[DefaultClause, DefaultClause] | None:
    """The database's and the target's server defaults on ``dialect``, when both are SQL."""
    if autogen_context.dialect.name != dialect:
        return None
    conn_default, metadata_default = conn_col.server_default, metadata_col.server_default
    if isinstance(conn_default, DefaultClause) and isinstance(metadata_default, DefaultClause):
        return conn_default, metadata_default
    return None


def compare_function_default(
    autogen_context: AutogenContext,
    alter_column_op: AlterColumnOp,
    schema: str | None,
    tname: str,
    cname: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> PriorityDispatchResult:
    defaults = _both_defaults(autogen_context, "postgresql", conn_col, metadata_col)
    if defaults is None:
        return PriorityDispatchResult.CONTINUE
    conn_default, metadata_default = defaults
    conn_text = _text(conn_default, autogen_context)
    metadata_text = _text(metadata_default, autogen_context)
    if not (_CALL.search(conn_text) or _CALL.search(metadata_text)):
        return PriorityDispatchResult.CONTINUE  # constants: Alembic asks the server
    if normalised(conn_text) != normalised(metadata_text):
        alter_column_op.modify_server_default = metadata_default
    return PriorityDispatchResult.STOP


def _number(text: str) -> Decimal | None:
    """The number a literal default stands for (MySQL quotes or parenthesises some)."""
    text = text.strip()
    while len(text) >= 2 and (text[0], text[-1]) in (("(", ")"), ("'", "'")):
        text = text[1:-1].strip()
    try:
        return Decimal(text)
    except ArithmeticError:
        return None


def _written(default: DefaultClause) -> str:
    """A default's SQL as written (``sql_text`` escapes a colon before a word)."""
    arg = default.arg
    if isinstance(arg, TextClause):
        return arg.text.replace("\\:", ":")
    return str(arg)


def compare_mysql_default(
    autogen_context: AutogenContext,
    alter_column_op: AlterColumnOp,
    schema: str | None,
    tname: str,
    cname: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> PriorityDispatchResult:
    defaults = _both_defaults(autogen_context, "mysql", conn_col, metadata_col)
    if defaults is None:
        return PriorityDispatchResult.CONTINUE
    conn_default, metadata_default = defaults
    conn_text, metadata_text = _written(conn_default), _written(metadata_default)
    if conn_text == metadata_text:
        return PriorityDispatchResult.STOP
    conn_number, metadata_number = _number(conn_text), _number(metadata_text)
    if conn_number is None or metadata_number is None:
        return PriorityDispatchResult.CONTINUE  # Alembic's comparison
    if conn_number != metadata_number:
        alter_column_op.modify_server_default = metadata_default
    return PriorityDispatchResult.STOP


def setup(plugin: Plugin) -> None:
    plugin.add_autogenerate_comparator(compare_function_default, "column", "server_default")
    plugin.add_autogenerate_comparator(compare_mysql_default, "column", "server_default")


def register() -> str:
    """Register the plugin once; return its name for ``autogenerate_plugins``."""
    with contextlib.suppress(ValueError):  # already registered
        Plugin.setup_plugin_from_module(sys.modules[__name__], NAME)
    return NAME
