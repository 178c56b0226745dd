"""op.create_view() and op.drop_view(): custom directives for every ops migration.

Registered when this module is imported, which ShopConfig.ready() does.
"""

from alembic.operations import MigrateOperation, Operations


@Operations.register_operation("create_view")
class CreateViewOp(MigrateOperation):
    """CREATE VIEW <name> AS <select>."""

    def __init__(self, view_name: str, select: str) -> None:
        self.view_name = view_name
        self.select = select

    @classmethod
    def create_view(cls, operations: Operations, view_name: str, select: str) -> None:
        """Create a view: ``op.create_view("name", "SELECT ...")``."""
        return operations.invoke(cls(view_name, select))

    def reverse(self) -> "DropViewOp":
        return DropViewOp(self.view_name, self.select)


@Operations.register_operation("drop_view")
class DropViewOp(MigrateOperation):
    """DROP VIEW <name>."""

    def __init__(self, view_name: str, select: str | None = None) -> None:
        self.view_name = view_name
        self.select = select

    @classmethod
    def drop_view(cls, operations: Operations, view_name: str) -> None:
        """Drop a view: ``op.drop_view("name")``."""
        return operations.invoke(cls(view_name))

    def reverse(self) -> CreateViewOp:
        if self.select is None:
            raise ValueError(
                f"Cannot reverse dropping view {self.view_name}: its SELECT is unknown"
            )
        return CreateViewOp(self.view_name, self.select)


@Operations.implementation_for(CreateViewOp)
def create_view(operations: Operations, operation: CreateViewOp) -> None:
    operations.execute(f"CREATE VIEW {operation.view_name} AS {operation.select}")


@Operations.implementation_for(DropViewOp)
def drop_view(operations: Operations, operation: DropViewOp) -> None:
    operations.execute(f"DROP VIEW {operation.view_name}")
