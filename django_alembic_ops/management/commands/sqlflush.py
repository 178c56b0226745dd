"""``manage.py sqlflush``: the SQL that ``flush`` runs, ops tables included."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.sqlflush import Command as DjangoSqlFlushCommand
from django.db import connections

from ...errors import OpsError
from ...flush import including_ops_tables


class Command(DjangoSqlFlushCommand):
    def handle(self, **options: Any) -> str:
        try:
            with including_ops_tables(connections[options["database"]]):
                return str(super().handle(**options))
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
