"""App config: registers the system checks, the ``migrate`` integration and the
test databases' serialization of ops tables."""

from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DjangoAlembicOpsConfig(AppConfig):
    name = "django_alembic_ops"
    verbose_name = "Alembic operations"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
        from .flush import prepare_test_database
        from .integration import run_after_migrate
        from .lock import remove_side_files_with_test_databases

        remove_side_files_with_test_databases()

        # sender=self: Django sends post_migrate once per app with a models
        # module; we want one run per migrate/flush, after all apps.
        post_migrate.connect(
            run_after_migrate, sender=self, dispatch_uid="django_alembic_ops.run_after_migrate"
        )
        # After the ops migrations: serialized_rollback keeps the rows they inserted.
        post_migrate.connect(
            prepare_test_database,
            sender=self,
            dispatch_uid="django_alembic_ops.prepare_test_database",
        )
