"""Which fleet targets are already at head, found before any worker starts.

With a few queries per database, never one connection (nor one query) per
tenant: a fleet with nothing to do must answer in about the time of one run.
On PostgreSQL a per-schema "does the version table exist?" is a catalog
lookup that grows with every tenant (``pg_class`` holds every tenant's
tables), so the catalog is asked once, for all schemas, which of them have a
version table, and the same statement reads every one of them
(:func:`schema_heads`).

"At head" is then answered from the scripts' cached headers
(:mod:`..headers`), without importing Alembic or any script. A target it
cannot judge (a recorded revision no header knows, a header it cannot read,
an explicit ``migration``) counts as behind: its worker plans it properly,
and reports "at head" if it finds nothing to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from xml.sax.saxutils import unescape

from django.db import connections

from .. import conf, discovery, headers, state, tenants
from .apply import target_apps
from .targets import FleetJob, FleetTarget

Heads = tuple[str, ...]

#: A row of ``query_to_xml(..., tableforest => true)``.
_VERSION_NUM = re.compile(r"<version_num>(.*?)</version_num>")


def recorded_heads(targets: Sequence[FleetTarget]) -> dict[FleetTarget, Heads]:
    """The version-table heads of every target (empty where there is none yet)."""
    found: dict[FleetTarget, Heads] = {}
    aliases = list(dict.fromkeys(target.alias for target in targets))
    for alias in aliases:
        mine = [target for target in targets if target.alias == alias]
        if any(target.schema is None for target in mine):
            database_heads = state.read_heads(alias)
            found.update({target: database_heads for target in mine if target.schema is None})
        schemas = [target.schema for target in mine if target.schema is not None]
        if schemas:
            by_schema = schema_heads(alias, schemas)
            found.update(
                {target: by_schema[target.schema] for target in mine if target.schema is not None}
            )
    return found


def schema_heads(alias: str, schemas: Sequence[str]) -> dict[str, Heads]:
    """The heads recorded in each schema's version table, in one query.

    The catalog names the schemas that have a version table (through
    ``pg_class``'s index on ``relname``), and ``query_to_xml()`` reads each of
    those tables on the server, in the same statement. (One ``UNION ALL`` of
    every table was measured three times slower for 1,000 schemas: PostgreSQL
    plans a union of that many relations slowly.)
    """
    state.ensure_connection(alias)
    recorded: dict[str, list[str]] = {schema: [] for schema in schemas}
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname, query_to_xml(format('SELECT version_num FROM %%I.%%I', "
            "n.nspname, c.relname), false, true, '')::text "
            "FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND c.relkind IN ('r', 'p') AND n.nspname = ANY(%s::name[])",
            [conf.get().VERSION_TABLE, list(schemas)],
        )
        for schema, rows in cursor.fetchall():
            recorded[schema] = [unescape(value) for value in _VERSION_NUM.findall(rows)]
    return {schema: tuple(sorted(revisions)) for schema, revisions in recorded.items()}


class HeadCheck:
    """Answers "is this target at the job's destination?" from script headers."""

    def __init__(self, job: FleetJob) -> None:
        self.job = job
        self.ops_apps = [app.label for app in discovery.ops_apps()]
        # An explicit migration may mean a downgrade: only a plan can tell.
        self.graph = headers.load(discovery.ops_apps()) if job.migration is None else None
        self._apps: dict[tuple[str, str], set[str]] = {}

    def apps(self, target: FleetTarget) -> set[str]:
        """The apps migrated in ``target``; the same for every target of its kind
        on its database (asked once, for the first one)."""
        key = (target.alias, target.kind)
        if key not in self._apps:
            with tenants.activated(target.alias, target.schema):
                self._apps[key] = target_apps(target, self.ops_apps)
        return self._apps[key]

    def at_head(self, target: FleetTarget, heads: Iterable[str]) -> bool:
        graph = self.graph
        if graph is None:
            return False
        labels = [label for label in self.apps(target) if graph.by_app.get(label)]
        if self.job.app_label is not None:
            if self.job.app_label not in labels:
                return True  # that app's migrations do not run here
            labels = [self.job.app_label]
        if not labels:
            return True
        heads = list(heads)
        if any(head not in graph.headers for head in heads):
            return False  # unknown to the scripts: the worker says what it is
        complete = graph.complete_heads(sorted(labels))
        return complete is not None and complete <= graph.ancestors(heads)
