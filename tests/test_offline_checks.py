"""Offline SQL runs Django's system checks without asking any database, as ``sqlmigrate``.

Asking one imports its backend and driver and, on MySQL, connects (to read
``sql_mode``): ``opsmigrate --sql`` and ``opssqlmigrate`` need no server.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Project, extra_database, run

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    "args", [["opsmigrate", "--sql"], ["opssqlmigrate", "shop", "0001"]], ids=lambda a: a[0]
)
def test_offline_sql_with_checks_never_connects(
    project: Project, django_db_blocker: Any, args: list[str]
) -> None:
    pytest.importorskip("MySQLdb")
    project.app("shop")
    project.script(
        "shop",
        "0001_initial",
        revision="o1",
        upgrade='op.create_table("ops_thing", sa.Column("id", sa.Integer, primary_key=True))',
    )
    unreachable = {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "nope",
        "HOST": "127.0.0.1",
        "PORT": "1",
        "USER": "someone",
    }
    with extra_database("unreachable", unreachable, django_db_blocker):
        # skip_checks=False: the system checks run, as from manage.py.
        out = run(*args, database="unreachable", skip_checks=False)

    assert "CREATE TABLE ops_thing" in out and "AUTO_INCREMENT" in out  # MySQL's DDL
