from django.db import migrations, models

from django_alembic_ops.operations import RunOpsMigrations


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0001_initial"),
        # reports' ops migration 0001 lists shop.0001_initial in its
        # django_dependencies: it must be applied before this migration runs it.
        ("shop", "0001_initial"),
    ]

    operations = [
        # SalesNote's foreign key references reports_daily_sales, which the ops
        # migration reports.0001 creates: apply it first (added by hand;
        # makemigrations wrote the CreateModel).
        RunOpsMigrations("reports", "0001"),
        migrations.CreateModel(
            name="SalesNote",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("text", models.CharField(max_length=200)),
                (
                    "daily_sales",
                    models.ForeignKey(
                        on_delete=models.deletion.CASCADE,
                        related_name="notes",
                        to="reports.dailysales",
                    ),
                ),
            ],
        ),
    ]
