"""A light, cached view of the revision graph, for "is everything applied?".

``post_migrate`` runs after every ``migrate`` and every ``TransactionTestCase``
flush, and most ``opsmigrate`` runs in a deploy find nothing to do. Answering
that must not import every script (Alembic's ``ScriptDirectory`` does) nor
grow with the number of migrations. So this module reads only each script's
header — the literal ``revision``, ``down_revision`` and ``depends_on`` —
with :mod:`ast`, caches the result per folder in ``__pycache__`` keyed on the
files' size and mtime, and keeps it in memory per process.

It is only ever used to say "up to date"; anything it cannot read with
certainty (non-literal values, branch-label references, broken files) makes
it answer ``None`` and the caller falls back to the full Alembic load, which
also produces the proper error messages.
"""

from __future__ import annotations

import ast
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .discovery import OpsApp

_CACHE_NAME = "django_alembic_ops_headers.json"
_CACHE_VERSION = 1
_FIELDS = ("revision", "down_revision", "depends_on")


@dataclass(frozen=True)
class Header:
    revision: str
    down: tuple[str, ...]
    depends: tuple[str, ...]


class _Unreadable(Exception):
    """A script whose header is not plain literals."""


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _Unreadable


def _read_header(path: str) -> Header:
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read(), path)
    except (OSError, SyntaxError, ValueError):
        raise _Unreadable from None
    found: dict[str, Any] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name) and target.id in _FIELDS and value is not None:
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    raise _Unreadable from None
    revision = found.get("revision")
    if not isinstance(revision, str):
        raise _Unreadable
    return Header(
        revision, _as_tuple(found.get("down_revision")), _as_tuple(found.get("depends_on"))
    )


def _is_script(name: str) -> bool:
    return name.endswith(".py") and name != "__init__.py" and not name.startswith((".", "#"))


def _scan(folder: Path) -> dict[str, tuple[int, int]]:
    """Each script's (mtime in ns, size): the cache's key, read for every file at every call."""
    if os.stat in os.supports_dir_fd:
        # stat() relative to the open folder: a quarter cheaper than scandir's
        # entries, which matters at 1,000 files in every post_migrate.
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            stat = os.stat
            return {
                name: (result.st_mtime_ns, result.st_size)
                for name in os.listdir(fd)
                # _is_script(), inline: a call per file is a tenth of the scan
                if name.endswith(".py") and name != "__init__.py" and name[0] not in ".#"
                for result in (stat(name, dir_fd=fd),)
            }
        finally:
            os.close(fd)
    stats: dict[str, tuple[int, int]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if _is_script(entry.name):
                result = entry.stat()
                stats[entry.name] = (result.st_mtime_ns, result.st_size)
    return stats


def _read_cache(folder: Path) -> dict[str, Any]:
    """The folder's cached entries by file name (empty when missing or unreadable)."""
    try:
        data = json.loads((folder / "__pycache__" / _CACHE_NAME).read_text())
        if data.get("version") == _CACHE_VERSION and isinstance(data["files"], dict):
            return dict(data["files"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return {}


def _write_cache(folder: Path, files: dict[str, Any]) -> None:
    cache_path = folder / "__pycache__" / _CACHE_NAME
    try:
        cache_path.parent.mkdir(exist_ok=True)
        # Per process and thread: two writers never share a temporary file.
        temporary = cache_path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps({"version": _CACHE_VERSION, "files": files}))
        os.replace(temporary, cache_path)
    except OSError:
        pass  # a read-only deployment: the cache is only an optimisation


def _folder_headers(folder: Path, stats: dict[str, tuple[int, int]]) -> list[Header]:
    cached = _read_cache(folder)
    files: dict[str, Any] = {}
    changed = set(cached) != set(stats)
    for name, stat in stats.items():
        entry = cached.get(name)
        if entry is not None and tuple(entry["stat"]) == stat:
            files[name] = entry
            continue
        header = _read_header(str(folder / name))
        files[name] = {
            "stat": list(stat),
            "revision": header.revision,
            "down": list(header.down),
            "depends": list(header.depends),
        }
        changed = True
    if changed:
        _write_cache(folder, files)
    return [
        Header(entry["revision"], tuple(entry["down"]), tuple(entry["depends"]))
        for entry in files.values()
    ]


class HeaderGraph:
    """Revisions per app with their down revisions and dependencies."""

    def __init__(self, by_app: dict[str, list[Header]]) -> None:
        self.by_app = by_app
        self.headers = {h.revision: h for headers in by_app.values() for h in headers}
        self._complete: dict[tuple[str, ...], set[str] | None] = {}

    def _parents(self, revision: str) -> tuple[str, ...]:
        header = self.headers[revision]
        return header.down + header.depends

    def ancestors(self, revisions: Iterable[str]) -> set[str]:
        """``revisions`` and everything they need, transitively."""
        seen: set[str] = set()
        stack = list(revisions)
        while stack:
            revision = stack.pop()
            if revision not in seen:
                seen.add(revision)
                stack.extend(self._parents(revision))
        return seen

    def complete_heads(self, labels: Sequence[str]) -> set[str] | None:
        key = tuple(labels)
        if key not in self._complete:
            self._complete[key] = self._complete_heads(labels)
        return self._complete[key]

    def _complete_heads(self, labels: Sequence[str]) -> set[str] | None:
        """The version-table heads once every migration of ``labels`` is applied.

        ``None`` when an app has several heads or none, or the graph has a
        cycle (the full load reports those).
        """
        heads: list[str] = []
        for label in labels:
            headers = self.by_app.get(label, [])
            parents = {down for h in headers for down in h.down}
            app_heads = [h.revision for h in headers if h.revision not in parents]
            if len(app_heads) != 1:
                return None
            heads += app_heads
        needed: set[str] = set()
        for head in heads:
            needed |= self.ancestors(self._parents(head))
        reachable = needed | set(heads)
        if any(h.revision not in reachable for label in labels for h in self.by_app[label]):
            return None  # a cycle: some revision hangs off no head
        return {head for head in heads if head not in needed}


_memo: dict[tuple[Any, ...], tuple[Any, HeaderGraph]] = {}


def load(apps: Sequence[OpsApp]) -> HeaderGraph | None:
    """The header graph of ``apps``, or ``None`` when a header cannot be trusted."""
    key = tuple(str(app.path) for app in apps)
    try:
        signature = [_scan(app.path) for app in apps]
    except OSError:
        return None
    memo = _memo.get(key)
    if memo is not None and memo[0] == signature:
        return memo[1]
    try:
        graph = HeaderGraph(
            {
                app.label: _folder_headers(app.path, stats)
                for app, stats in zip(apps, signature, strict=True)
            }
        )
    except (_Unreadable, OSError):
        return None
    known = graph.headers
    if any(ref not in known for h in known.values() for ref in h.down + h.depends):
        return None  # e.g. a branch label in depends_on: let Alembic resolve it
    if sum(len(headers) for headers in graph.by_app.values()) != len(known):
        return None  # duplicate revision ids
    _memo.clear()
    _memo[key] = (signature, graph)
    return graph


# -- checksums -------------------------------------------------------------------------
#
# The history table records the checksum of every script it applies
# (:mod:`.history`): parsing and dumping its syntax tree, 0.3-0.5 ms a
# script, for each migration of every run, and again for each new test
# database. A script's checksum is kept in its cache entry, next to its
# header and under the same key (its size and mtime).

_checksums: dict[Path, dict[str, Any]] = {}  # folder -> its entries, as read and extended
_unsaved: set[Path] = set()
_checksums_lock = threading.Lock()


def checksum(path: str, compute: Callable[[str], str]) -> str:
    """``compute(source)`` for the script at ``path``, cached while its size and mtime hold.

    New values are kept in memory; :func:`save_checksums` writes them.
    """
    file = Path(path)
    folder, name = file.parent, file.name
    stat = os.stat(file)
    key = [stat.st_mtime_ns, stat.st_size]
    with _checksums_lock:
        files = _checksums.get(folder)
        if files is None:
            files = _checksums[folder] = _read_cache(folder)
        entry = files.get(name)
    if entry is not None and entry.get("stat") == key and isinstance(entry.get("checksum"), str):
        return str(entry["checksum"])
    value = compute(file.read_text(encoding="utf-8"))
    if entry is None or entry.get("stat") != key:
        try:
            header = _read_header(str(file))
        except _Unreadable:
            return value  # no entry without its header: the no-op path reads those
        entry = {
            "stat": key,
            "revision": header.revision,
            "down": list(header.down),
            "depends": list(header.depends),
        }
    with _checksums_lock:
        files[name] = {**entry, "checksum": value}
        _unsaved.add(folder)
    return value


def save_checksums() -> None:
    """Write the checksums computed since the last call into their folders' caches.

    Merged into what is on disk now (another process may have written it):
    an entry is added only while its file still has the size and mtime it
    was computed for.
    """
    with _checksums_lock:
        for folder in list(_unsaved):
            on_disk = _read_cache(folder)
            for name, entry in _checksums[folder].items():
                there = on_disk.get(name, {})
                if "checksum" not in entry or (
                    there.get("stat") == entry["stat"] and "checksum" in there
                ):
                    continue
                try:
                    stat = os.stat(folder / name)
                except OSError:
                    continue
                if [stat.st_mtime_ns, stat.st_size] == entry["stat"]:
                    on_disk[name] = entry
            _write_cache(folder, on_disk)
        _unsaved.clear()
