"""App config: registers the system checks and the ``migrate`` integration."""

from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DjangoAlembicOpsConfig(AppConfig):
    name = "django_alembic_ops"
    verbose_name = "Alembic operations"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
        from .integration import run_after_migrate

        # sender=self: Django sends post_migrate once per app with a models
        # module; we want one run per migrate/flush, after all apps.
        post_migrate.connect(
            run_after_migrate, sender=self, dispatch_uid="django_alembic_ops.run_after_migrate"
        )
