"""Alembic migration operations for Django apps.

Each Django app keeps Alembic revision scripts in its own ``migrations_ops/``
package; ``manage.py opsmigrate`` runs them on Django's own connection.
"""

__version__ = "0.1.0"
