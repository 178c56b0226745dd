from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"

    def ready(self) -> None:
        # Registers op.create_view() and op.drop_view() before any ops
        # migration is loaded: opsmigrate, migrate, --sql and tests alike.
        from . import ops_views  # noqa: F401
