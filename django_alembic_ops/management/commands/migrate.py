"""``manage.py migrate``: Django's command, whose flags also see ops migrations.

Teams gate deploys on ``migrate --check`` and read ``migrate --plan``; with
``EXTEND_MIGRATE`` on (the default) this subclass makes them count pending ops
migrations, makes ``--fake`` record them without running them, and refuses,
before Django's migrations run, when an ops migration cannot be placed. Ops
migrations themselves still run through ``post_migrate``
(:mod:`django_alembic_ops.integration`), so everything else is Django's.

Django picks the first installed app that ships a ``migrate`` command, before
its own: an app listed before ``django_alembic_ops`` that ships one wins.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrateCommand

from ... import conf, integration
from ...errors import OpsError
from ...report import print_plan


class Command(DjangoMigrateCommand):
    help = DjangoMigrateCommand.help + " Also applies pending ops (Alembic) migrations."

    def handle(self, *args: Any, **options: Any) -> None:
        settings = conf.get()
        if not (settings.EXTEND_MIGRATE and settings.RUN_WITH_MIGRATE):
            super().handle(*args, **options)  # Django's command, untouched
            return
        try:
            # Before Django changes anything: one that cannot be placed stops
            # migrate here, as Django's own missing dependency does.
            steps = integration.pending(options["database"])
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
        if not (options["plan"] or options["check_unapplied"]):
            with integration.migrate_options(fake=options["fake"]):
                super().handle(*args, **options)
            return
        # --plan / --check: Django sends no post_migrate, so nothing runs.
        django_pending = False
        try:
            super().handle(*args, **options)
        except SystemExit as exc:
            if not options["plan"]:
                raise  # --check: Django's own migrations are pending
            django_pending = exc.code != 0  # --plan --check exits after its plan
        if options["plan"] and steps:
            print_plan(self.stdout, self.style, steps, heading="Planned ops migrations:")
        if options["check_unapplied"] and (steps or django_pending):
            sys.exit(1)
