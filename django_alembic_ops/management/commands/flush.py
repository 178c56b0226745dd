"""``manage.py flush``: Django's command, emptying the tables ops migrations created too.

``TransactionTestCase`` (and pytest-django's ``transactional_db``) call this
command after each test, so the same subclass serves both. Which tables are
ops-owned, and how they join Django's statement: :mod:`django_alembic_ops.flush`.
Django picks the first installed app that ships a ``flush`` command, before
its own: an app listed before ``django_alembic_ops`` that ships one wins.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.flush import Command as DjangoFlushCommand
from django.db import connections

from ...errors import OpsError
from ...flush import including_ops_tables


class Command(DjangoFlushCommand):
    help = DjangoFlushCommand.help + " Also empties the tables that ops migrations created."

    def handle(self, **options: Any) -> None:
        try:
            with including_ops_tables(connections[options["database"]]):
                super().handle(**options)
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
