"""Generated Python laid out as ``ruff format`` (and black) lay it out.

A generated script must read like hand-written code when no formatter is
installed (:func:`django_alembic_ops.writer.format_source` runs one when there
is). Alembic renders each ``op`` call on one line, in single quotes. This lays
out the small part of Python that such code uses - calls, literals, names,
subscripts, comparisons, assignments, ``with`` and ``if`` blocks, ``pass``
and comment lines between statements - the way ruff does: double quotes
unless they need more escapes; what does not fit on a line is split inside
its brackets, the arguments of a call first on one line of their own, else
one a line with a trailing comma; a call chain ruff calls fluent
(``sa.JSON().with_variant(...).with_variant(...)``) one call a line;
implicitly concatenated strings (``"ALTER TABLE t " "VALIDATE ..."``) joined
when they fit, else one a line.

The printer is the one ruff's (and Prettier's) are built on: a document of
groups that print flat when they fit, else broken at their line breaks.

Source that uses anything else (a comment inside a statement, a multi-line
string, a comprehension, ...) comes back exactly as it was given.
"""

from __future__ import annotations

import ast
import io
import tokenize
import unicodedata
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["LINE_LENGTH", "format_code"]

#: ruff's and black's default.
LINE_LENGTH = 88

_INDENT = 4


class _Unsupported(Exception):
    """Source outside what this module lays out; it is kept as it is."""


@dataclass(eq=False)
class _Group:
    """Printed flat when it fits in what is left of the line, else broken."""

    parts: list[Doc]


@dataclass(eq=False)
class _Indent:
    parts: list[Doc]


@dataclass(eq=False)
class _IfBreak:
    """``text`` only when ``group`` is broken: the trailing comma."""

    text: str
    group: _Group


@dataclass(eq=False)
class _Line:
    """A line break in a broken group; ``flat`` (``""`` or ``" "``) otherwise."""

    flat: str


@dataclass(eq=False)
class _Concatenated:
    """Implicitly concatenated strings: one string when it fits, else one part a line."""

    joined: str
    parts: list[str]


Doc: TypeAlias = "str | _Group | _Indent | _IfBreak | _Line | _Concatenated | list[Doc]"
_Command: TypeAlias = "tuple[int, bool, Doc]"  # (indent, broken, doc)

_SOFT = _Line("")
_SPACE = _Line(" ")


def _width(text: str) -> int:
    """Columns ``text`` takes, as ruff counts them (wide characters count two)."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _fits(todo: list[_Command], rest: list[_Command], room: int, broken: dict[int, bool]) -> bool:
    """Whether ``todo`` (flat), then ``rest`` up to its next line break, fit in ``room``."""
    waiting = len(rest)
    while room >= 0:
        if not todo:
            if not waiting:
                return True
            waiting -= 1
            todo.append(rest[waiting])
            continue
        indent, breaking, item = todo.pop()
        if isinstance(item, str):
            room -= _width(item)
        elif isinstance(item, _Concatenated):
            room -= _width(item.joined)
        elif isinstance(item, list):
            todo.extend((indent, breaking, part) for part in reversed(item))
        elif isinstance(item, _Indent):
            todo.append((indent + _INDENT, breaking, item.parts))
        elif isinstance(item, _Group):
            todo.append((indent, breaking, item.parts))
        elif isinstance(item, _Line):
            if breaking:
                return True
            room -= len(item.flat)
        elif broken.get(id(item.group), False):
            room -= len(item.text)
    return False


def _print(doc: Doc, line_length: int) -> str:
    out: list[str] = []
    column = 0
    broken: dict[int, bool] = {}
    stack: list[_Command] = [(0, True, doc)]
    while stack:
        indent, breaking, item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            column += _width(item)
        elif isinstance(item, _Concatenated):
            if _fits([(indent, False, item.joined)], stack, line_length - column, broken):
                stack.append((indent, False, item.joined))
            else:
                parts: list[Doc] = []
                for part in item.parts:
                    parts += [_SOFT, part] if parts else [part]
                stack.append((indent, True, parts))
        elif isinstance(item, list):
            stack.extend((indent, breaking, part) for part in reversed(item))
        elif isinstance(item, _Indent):
            stack.append((indent + _INDENT, breaking, item.parts))
        elif isinstance(item, _Group):
            flat = not breaking or _fits(
                [(indent, False, item.parts)], stack, line_length - column, broken
            )
            broken[id(item)] = not flat
            stack.append((indent, not flat, item.parts))
        elif isinstance(item, _Line):
            if breaking:
                out.append("\n" + " " * indent)
                column = indent
            else:
                out.append(item.flat)
                column += len(item.flat)
        elif broken.get(id(item.group), False):
            out.append(item.text)
            column += len(item.text)
    return "".join(out)


# -- expressions -----------------------------------------------------------------


def _string(value: str) -> str:
    """A string literal as ruff writes it: double quotes unless more escapes."""
    quote = "'" if value.count('"') > value.count("'") else '"'
    body = []
    for char in value:
        if char == "\\" or char == quote:
            body.append("\\" + char)
        elif char.isprintable():
            body.append(char)
        else:
            body.append(repr(char)[1:-1])  # \n, \t, \x00, \u200b
    return quote + "".join(body) + quote


#: Attribute of a string constant written as several literals ("a " "b"): their values.
_PARTS = "_codestyle_parts"


def _note_concatenations(source: str, tree: ast.AST) -> None:
    """Give each implicitly concatenated string constant its parts (see :data:`_PARTS`)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        segment = ast.get_source_segment(source, node) or ""
        if segment.count('"') + segment.count("'") <= 2:
            continue  # one literal (the common case: no tokenizing)
        tokens = tokenize.generate_tokens(io.StringIO(segment).readline)
        literals = [token.string for token in tokens if token.type == tokenize.STRING]
        if len(literals) > 1:
            setattr(node, _PARTS, [ast.literal_eval(literal) for literal in literals])


def _constant(node: ast.Constant) -> Doc:
    value = node.value
    if isinstance(value, str):
        if node.lineno != node.end_lineno:
            raise _Unsupported("a multi-line string")  # kept as the author wrote it
        parts = getattr(node, _PARTS, None)
        if parts:
            # As ruff: joined when that fits, else one literal a line.
            return _Concatenated(_string(value), [_string(part) for part in parts])
        return _string(value)
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    raise _Unsupported(type(value).__name__)


def _joined(items: list[Doc]) -> list[Doc]:
    joined: list[Doc] = []
    for index, item in enumerate(items):
        if index:
            joined += [",", _SPACE]
        joined.append(item)
    return joined


def _collection(opening: str, items: list[Doc], closing: str, *, one_tuple: bool = False) -> Doc:
    """``[a, b]``: flat, or one item a line with a trailing comma."""
    if not items:
        return opening + closing
    group = _Group([])
    # A trailing comma is added to two items or more; a one-item tuple has its own.
    comma: Doc = "," if one_tuple else _IfBreak(",", group) if len(items) > 1 else ""
    group.parts = [opening, _Indent([_SOFT, *_joined(items), comma]), _SOFT, closing]
    return group


def _arguments(node: ast.Call) -> Doc:
    """``(a, b=1)``: flat, else on a line of their own, else one a line."""
    items: list[Doc] = [
        ["*", _expr(arg.value)] if isinstance(arg, ast.Starred) else _expr(arg) for arg in node.args
    ]
    items += [
        ["**", _expr(kw.value)] if kw.arg is None else [kw.arg, "=", _expr(kw.value)]
        for kw in node.keywords
    ]
    if not items:
        return "()"
    inner = _Group([])
    inner.parts = [*_joined(items), _IfBreak(",", inner) if len(items) > 1 else ""]
    return _Group(["(", _Indent([_SOFT, inner]), _SOFT, ")"])


def _is_fluent(node: ast.expr) -> bool:
    """A call chain ruff breaks at its dots (two attributes after calls, or more)."""
    after_calls = 0
    while True:
        if isinstance(node, ast.Attribute):
            after_calls += isinstance(node.value, (ast.Call, ast.Subscript))
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return after_calls >= 2


def _fluent(node: ast.expr) -> Doc:
    """A fluent chain: flat, else a line before each ``.name`` that follows a call."""
    segments: list[list[Doc]] = [[]]  # the chain from its end: the last segment first
    while True:
        if isinstance(node, ast.Call):
            segments[-1].insert(0, _arguments(node))
            node = node.func
        elif isinstance(node, ast.Subscript):
            segments[-1].insert(0, ["[", _expr(node.slice), "]"])
            node = node.value
        elif isinstance(node, ast.Attribute):
            segments[-1].insert(0, "." + node.attr)
            if isinstance(node.value, (ast.Call, ast.Subscript)):
                segments.append([])
            node = node.value
        else:
            segments[-1].insert(0, _expr(node, in_chain=True))
            break
    parts: list[Doc] = []
    for segment in reversed(segments):
        if parts:
            parts.append(_SOFT)
        parts.append(segment)
    return _Group(parts)


def _expr(node: ast.expr, *, in_chain: bool = False) -> Doc:
    doc: Doc
    if isinstance(node, ast.Constant):
        return _constant(node)
    if isinstance(node, ast.Name):
        return node.id
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, (ast.USub, ast.UAdd))
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
    ):
        return ("-" if isinstance(node.op, ast.USub) else "+") + repr(node.operand.value)
    if not in_chain and _is_fluent(node):
        return _fluent(node)
    if isinstance(node, ast.Attribute) and not isinstance(node.value, ast.Constant):
        doc = [_expr(node.value, in_chain=True), ".", node.attr]
    elif isinstance(node, ast.Call):
        doc = [_expr(node.func, in_chain=True), _arguments(node)]
    elif isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Slice):
        doc = [_expr(node.value, in_chain=True), "[", _expr(node.slice), "]"]
    elif isinstance(node, ast.IfExp):
        # Flat, as comparisons are: short in the code rendered here.
        return [_expr(node.body), " if ", _expr(node.test), " else ", _expr(node.orelse)]
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARISONS:
        # Flat: a long one is left to the statement's check.
        return [_expr(node.left), _COMPARISONS[type(node.ops[0])], _expr(node.comparators[0])]
    elif isinstance(node, ast.List):
        return _collection("[", [_expr(e) for e in node.elts], "]")
    elif isinstance(node, ast.Tuple):
        items = [_expr(e) for e in node.elts]
        return _collection("(", items, ")", one_tuple=len(items) == 1)
    elif isinstance(node, ast.Dict) and None not in node.keys:
        pairs: list[Doc] = [
            [_expr(key), ": ", _expr(value)]
            for key, value in zip(node.keys, node.values, strict=True)
            if key is not None
        ]
        return _collection("{", pairs, "}")
    else:
        raise _Unsupported(type(node).__name__)
    return doc


_COMPARISONS: dict[type[ast.cmpop], str] = {
    ast.Eq: " == ",
    ast.NotEq: " != ",
    ast.In: " in ",
    ast.NotIn: " not in ",
}


# -- statements ------------------------------------------------------------------


def _flat_text(node: ast.expr) -> str:
    """An annotation, written flat (``list[tuple[str, str]]``)."""
    if not isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)):
        raise _Unsupported(type(node).__name__)
    return ast.unparse(node)


def _simple(node: ast.stmt, line_length: int) -> list[str]:
    """The lines of a statement that has no body."""
    if isinstance(node, ast.Pass):
        return ["pass"]
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return _print(_expr(node.value), line_length).split("\n")
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target, value = node.targets[0], node.value
    elif isinstance(node, ast.AnnAssign) and node.simple and node.value is not None:
        target = node.target
        value = node.value
    else:
        raise _Unsupported(type(node).__name__)
    if not isinstance(target, ast.Name):
        raise _Unsupported("an assignment to more than a name")
    head = target.id
    if isinstance(node, ast.AnnAssign):
        head += ": " + _flat_text(node.annotation)
    lines = _print([head, " = ", _expr(value)], line_length).split("\n")
    # What does not fit even when split, ruff may parenthesize instead.
    if any(_width(line) > line_length for line in lines):
        raise _Unsupported("an assignment that does not fit")
    return lines


def _after(line: str, offset: int) -> str:
    """What follows column ``offset`` of ``line`` (AST columns count UTF-8 bytes)."""
    return line.encode()[offset:].decode()


class _Layout:
    """Statements of ``source`` laid out one by one, with the comment lines between them."""

    def __init__(self, source: str, line_length: int) -> None:
        self.lines = source.splitlines()
        self.line_length = line_length
        self.out: list[str] = []
        self.done = 0  # source lines dealt with

    def between(self, before: int) -> None:
        """The lines up to line ``before`` (1-based): comments kept, blank lines dropped."""
        for text in self.lines[self.done : before - 1]:
            if text.lstrip().startswith("#"):
                self.out.append(text.rstrip())
            elif text.strip():
                raise _Unsupported("code outside a statement")
        self.done = max(self.done, before - 1)

    def no_comment(self, first: int, last: int) -> None:
        """Lines ``first`` to ``last`` hold code and no comment (that would be lost)."""
        text = "\n".join(self.lines[first - 1 : last])
        if "#" in text:  # maybe in a string: ask the tokenizer (slow; rarely needed)
            tokens = tokenize.generate_tokens(io.StringIO(text).readline)
            if any(token.type == tokenize.COMMENT for token in tokens):
                raise _Unsupported("a comment inside a statement")

    def block(self, body: list[ast.stmt], depth: int) -> None:
        for node in body:
            self.between(node.lineno)
            indent = " " * (_INDENT * depth)
            room = self.line_length - _INDENT * depth
            if isinstance(node, ast.With):
                item = node.items[0]
                if len(node.items) > 1 or not isinstance(item.context_expr, ast.Call):
                    raise _Unsupported("a with statement of another shape")
                head: list[Doc] = ["with ", _expr(item.context_expr)]
                if item.optional_vars is not None:
                    if not isinstance(item.optional_vars, ast.Name):
                        raise _Unsupported("a with target that is not a name")
                    head += [" as ", item.optional_vars.id]
                lines = _print([*head, ":"], room).split("\n")
                if _width(lines[0]) > room:
                    # Nothing to split in the call: ruff parenthesizes the item instead.
                    raise _Unsupported("a with statement that does not fit")
                self.out += [indent + line for line in lines]
                header_end = (item.optional_vars or item.context_expr).end_lineno or node.lineno
                self.no_comment(node.lineno, header_end)
                self.done = header_end
                self.block(node.body, depth + 1)
            elif isinstance(node, ast.If) and not node.orelse:
                header = _print(["if ", _expr(node.test), ":"], room)
                if "\n" in header or _width(header) > room:
                    raise _Unsupported("an if statement that does not fit")
                self.out.append(indent + header)
                self.no_comment(node.lineno, node.test.end_lineno or node.lineno)
                self.done = node.test.end_lineno or node.lineno
                self.block(node.body, depth + 1)
            else:
                assert node.end_lineno is not None and node.end_col_offset is not None
                self.no_comment(node.lineno, node.end_lineno)
                if _after(self.lines[node.end_lineno - 1], node.end_col_offset).strip():
                    raise _Unsupported("a comment or a statement after a statement")
                lines = _simple(node, room)
                self.out += [indent + line if line else line for line in lines]
                self.done = node.end_lineno


def format_code(source: str, *, line_length: int = LINE_LENGTH) -> str:
    """``source`` laid out as ``ruff format`` would, without its blank lines.

    ``source`` is module-level code (unindented); ``line_length`` is the
    room it has (less the indentation it will be given). Source this module
    does not lay out comes back unchanged.
    """
    try:
        tree = ast.parse(source)
        _note_concatenations(source, tree)
        layout = _Layout(source, line_length)
        layout.block(tree.body, 0)
        layout.between(len(layout.lines) + 1)
        result = "\n".join(layout.out)
        if ast.dump(ast.parse(result)) != ast.dump(tree):
            return source  # a bug: never change what the code does
    except (_Unsupported, SyntaxError, tokenize.TokenError, ValueError):
        return source
    return result
