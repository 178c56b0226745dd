"""Load every app's ops scripts into one Alembic :class:`ScriptDirectory`.

Alembic does the loading and builds the revision graph; this module adds what
a Django user expects on top: a one-line error naming the file for a script
that does not import, for duplicate revision ids and for a broken graph (Alembic
only warns about some of those), and the ``app_label.0002_name`` of each
revision. The result is cached per process and rebuilt when any script file
changes (``post_migrate`` runs after every test flush and must stay cheap).
"""

from __future__ import annotations

import heapq
import os
import threading
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError as AlembicCommandError

from . import app_env, discovery, heap
from .discovery import OpsApp
from .errors import MultipleHeads, ScriptError

_PACKAGE_DIR = Path(__file__).resolve().parent

#: Alembic's version column is ``String(32)``: a longer revision id could be
#: applied but not recorded (SQLite would store it, the others refuse it).
VERSION_LENGTH = 32

#: A script's ``phase``: "pre" runs before the new code starts (the default),
#: "post" after the old code is gone (``opsmigrate --phase pre|post``).
PHASES = ("pre", "post")


@dataclass(frozen=True)
class OpsMigration:
    """One ops migration script, as users name it."""

    app_label: str
    name: str  # file name without ".py", e.g. "0002_add_orders_view"
    script: Script = field(compare=False, repr=False)

    @property
    def revision(self) -> str:
        return self.script.revision

    @property
    def full_name(self) -> str:
        return f"{self.app_label}.{self.name}"

    @property
    def django_dependencies(self) -> list[tuple[str, str]]:
        declared = getattr(self.script.module, "django_dependencies", None) or []
        return [(str(app_label), str(name)) for app_label, name in declared]

    @property
    def phase(self) -> str:
        """``"pre"`` (the default) or ``"post"``: when in a deploy the migration runs.

        Validated when the scripts are loaded: any other value is a one-line error.
        """
        return str(getattr(self.script.module, "phase", "pre"))


def _script_files(folder: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    return [
        Path(entry.path)
        for entry in entries
        if entry.name.endswith(".py")
        and entry.name != "__init__.py"
        and not entry.name.startswith((".", "#"))
        and entry.is_file()
    ]


def _display(path: Path) -> str:
    """``path`` relative to the current directory when inside it, else absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _error_location(exc: BaseException, path: Path) -> str:
    """``file, line N: Type: message`` for ``exc`` raised while loading ``path``.

    The line is a syntax error's own, else that of the deepest frame inside
    ``path``. A syntax error in the script drops the ``(file, line N)`` that
    its text repeats; one in a module the script imports keeps it, as it
    names that other file.
    """
    resolved = path.resolve()
    line: int | None = None
    detail = str(exc)
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename).resolve() == resolved:
        line, detail = exc.lineno, str(exc.msg)
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            if Path(frame.filename).resolve() == resolved:
                line = frame.lineno
    where = f"{_display(path)}, line {line}" if line else _display(path)
    return f"{where}: {type(exc).__name__}: {detail}"


class _OpsScriptDirectory(ScriptDirectory):
    """A ScriptDirectory whose loader reports bad files in one line."""

    def __init__(self, apps: Sequence[OpsApp]) -> None:
        self.ops_apps = list(apps)
        super().__init__(
            str(_PACKAGE_DIR),
            version_locations=[str(app.path) for app in self.ops_apps],
        )

    def _load_revisions(self) -> Iterator[Script]:
        seen: dict[str, Path] = {}
        for app in self.ops_apps:
            # The package is the app's env.py: the plugins it imports (new op
            # directives) must be there before its scripts run.
            try:
                app_env.load(app)
            except Exception as exc:
                raise ScriptError(_error_location(exc, app.path / "__init__.py")) from exc
            for path in _script_files(app.path):
                try:
                    # A SyntaxError carries its line; other errors are located
                    # from the traceback (see _error_location).
                    with warnings.catch_warnings():
                        warnings.simplefilter("error")
                        script = Script._from_path(self, path)
                except AlembicCommandError as exc:
                    raise ScriptError(f"{_display(path)}: {exc}") from None
                except Exception as exc:
                    raise ScriptError(_error_location(exc, path)) from exc
                if script is None:
                    continue
                if len(script.revision) > VERSION_LENGTH:
                    raise ScriptError(
                        f"{_display(path)}: revision id '{script.revision}' has "
                        f"{len(script.revision)} characters; the version table holds at most "
                        f"{VERSION_LENGTH}. Give the script a shorter revision id."
                    )
                if script.revision in seen:
                    raise ScriptError(
                        f"Revision id '{script.revision}' is used by two scripts: "
                        f"{_display(seen[script.revision])} and {_display(path)}. "
                        "Give one of them a new id."
                    )
                seen[script.revision] = path
                _check_phase(script, path)
                yield script


def _check_phase(script: Script, path: Path) -> None:
    """Refuse a ``phase`` other than "pre"/"post" when loading, not mid-deploy."""
    phase = getattr(script.module, "phase", "pre")
    if phase not in PHASES:
        raise ScriptError(
            f"{_display(path)}: phase = {phase!r} is not a deploy phase; "
            'use phase = "pre" (the default, before the new code starts) or '
            'phase = "post" (after the old code is gone).'
        )


class OpsScripts:
    """All ops migrations of the installed apps and their revision graph."""

    def __init__(self, apps: Sequence[OpsApp]) -> None:
        self.apps = {app.label: app for app in apps}
        self.directory = _OpsScriptDirectory(apps)
        label_of_folder = {app.path.resolve(): app.label for app in apps}
        # Each folder resolved once, not each script (a system call per part
        # of the path: 40 ms at N = 1000).
        label_of_parent: dict[str, str] = {}
        self.by_revision: dict[str, OpsMigration] = {}
        self.by_app: dict[str, list[OpsMigration]] = {app.label: [] for app in apps}
        for script in self._scripts():
            path = Path(script.path)
            parent = os.path.dirname(script.path)
            label = label_of_parent.get(parent)
            if label is None:
                label = label_of_parent[parent] = label_of_folder[Path(parent).resolve()]
            migration = OpsMigration(label, path.stem, script)
            self.by_revision[script.revision] = migration
            self.by_app[label].append(migration)
        self._check_branches()
        for label, migrations in self.by_app.items():
            self.by_app[label] = _history_order(migrations)

    def _scripts(self) -> list[Script]:
        try:
            with warnings.catch_warnings():
                # Alembic only warns about a down_revision that is not there.
                warnings.simplefilter("error")
                return list(self.directory.walk_revisions("base", "heads"))
        except (RevisionError, AlembicCommandError, UserWarning) as exc:
            raise ScriptError(
                f"Broken ops migration graph: {' '.join(str(exc).split())}; fix the "
                "down_revision or depends_on of the scripts it names."
            ) from None
        except KeyError as exc:
            # Alembic's map lookup of a depends_on target that no script defines.
            raise ScriptError(
                f"Broken ops migration graph: revision {exc} is named in depends_on or "
                "down_revision but no script defines it."
            ) from None

    def _check_branches(self) -> None:
        for migration in self.by_revision.values():
            for down in migration.script._versioned_down_revisions:
                parent = self.by_revision[down]
                if parent.app_label != migration.app_label:
                    raise ScriptError(
                        f"{migration.full_name} has down_revision {parent.full_name} "
                        f"of another app; use depends_on = '{down}' for cross-app order."
                    )

    # -- queries ---------------------------------------------------------------

    def migration(self, revision: str) -> OpsMigration:
        return self.by_revision[revision]

    def app_heads(self, app_label: str) -> list[OpsMigration]:
        """Migrations of the app that no other migration of the app builds on."""
        migrations = self.by_app[app_label]
        parents = {down for m in migrations for down in m.script._versioned_down_revisions}
        return [m for m in migrations if m.revision not in parents]

    def app_head(self, app_label: str) -> OpsMigration | None:
        """The single head of an app (``None`` when it has no migrations)."""
        heads = self.app_heads(app_label)
        if len(heads) > 1:
            names = ", ".join(m.name for m in heads)
            raise MultipleHeads(
                f"Conflicting ops migrations detected; multiple heads in app '{app_label}': "
                f"{names}. To fix them run 'python manage.py opsmakemigration --merge {app_label}'."
            )
        return heads[0] if heads else None

    def unknown(self, heads: Sequence[str]) -> list[str]:
        """The recorded ``heads`` that no script defines (a branch switch, a deleted file)."""
        return sorted(head for head in heads if head not in self.by_revision)

    def applied(self, heads: Sequence[str]) -> set[str]:
        """Revision ids applied when the version table holds ``heads``.

        Heads no script defines are left out (see :meth:`unknown`): what they
        needed cannot be known, so only the known heads answer. Planning
        refuses such heads first (:func:`.executor.check_recorded`).
        """
        known = tuple(head for head in heads if head in self.by_revision)
        if not known:
            return set()
        return {
            script.revision
            for script in self.directory.revision_map.iterate_revisions(
                known, "base", inclusive=True
            )
            if script is not None
        }

    def upgrade_order(self) -> list[OpsMigration]:
        """Every migration, in the order ``opsmigrate`` applies them from empty."""
        steps = self.directory._upgrade_revs("heads", ())  # type: ignore[arg-type]
        return [self.by_revision[step.revision.revision] for step in steps]


def _history_order(migrations: Sequence[OpsMigration]) -> list[OpsMigration]:
    """``migrations`` of one app, parents before children, whatever the file names.

    Hex revision ids name files in no particular order, so the names only break
    ties (between the sibling branches of a fork), which keeps the order the
    same on every run.
    """
    waiting = {m.revision: len(m.script._versioned_down_revisions) for m in migrations}
    children: dict[str, list[OpsMigration]] = {m.revision: [] for m in migrations}
    for migration in migrations:
        for down in migration.script._versioned_down_revisions:
            children[down].append(migration)
    ready = [(m.name, m.revision, m) for m in migrations if not waiting[m.revision]]
    heapq.heapify(ready)
    ordered: list[OpsMigration] = []
    while ready:
        _, _, migration = heapq.heappop(ready)
        ordered.append(migration)
        for child in children[migration.revision]:
            waiting[child.revision] -= 1
            if not waiting[child.revision]:
                heapq.heappush(ready, (child.name, child.revision, child))
    return ordered


_cache: dict[tuple[Any, ...], tuple[tuple[Any, ...], OpsScripts]] = {}
_build_lock = threading.Lock()


def _signature(apps: Sequence[OpsApp]) -> tuple[Any, ...]:
    signature: list[Any] = []
    for app in apps:
        try:
            entries = os.scandir(app.path)
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                if entry.name.endswith(".py"):
                    stat = entry.stat()
                    signature.append((entry.path, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(signature))


def load(apps: Sequence[OpsApp] | None = None) -> OpsScripts:
    """The scripts of ``apps`` (default: every app with ops migrations), cached."""
    if apps is None:
        apps = discovery.ops_apps()
    key = tuple((app.label, str(app.path)) for app in apps)
    signature = _signature(apps)
    cached = _cache.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    # One thread builds, the others wait for its result: loading switches
    # warnings to errors with catch_warnings(), which is process-wide — two
    # loads at once could leave that filter on for good.
    with _build_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        with heap.long_lived_objects_frozen():
            scripts = OpsScripts(apps)
        _cache.clear()
        _cache[key] = (signature, scripts)
    return scripts
