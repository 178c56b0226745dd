"""The history's checksums are cached with the script headers, and follow every edit.

A script's checksum is kept in its entry of the header cache
(``__pycache__/django_alembic_ops_headers.json``), under the same key (the
file's size and mtime): the next run, in this process or another, reads it
instead of parsing the script again; an edited script is checksummed anew.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from django_alembic_ops import headers, history

from .conftest import Project, one_table, query, run, table_names

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def shop(project: Project) -> Project:
    project.app("shop")
    project.script("shop", "0001_initial", revision="s1", **one_table("shop_a"))
    return project


def cache_of(project: Project) -> Path:
    return (
        project.root / "shop" / "migrations_ops" / "__pycache__" / "django_alembic_ops_headers.json"
    )


def entries(project: Project) -> dict[str, Any]:
    return dict(json.loads(cache_of(project).read_text())["files"])


def recorded(alias: str) -> list[tuple[Any, ...]]:
    return query(alias, f"SELECT event, revision, checksum FROM {history.TABLE} ORDER BY id")


def test_applied_checksum_is_kept_with_the_header(shop: Project, alias: str) -> None:
    path = shop.root / "shop" / "migrations_ops" / "0001_initial.py"

    run("opsmigrate", database=alias)

    expected = history.checksum_source(path.read_text())
    assert recorded(alias) == [("apply", "s1", expected)]
    entry = entries(shop)["0001_initial.py"]
    assert entry["checksum"] == expected
    assert entry["revision"] == "s1" and entry["stat"] == [
        path.stat().st_mtime_ns,
        path.stat().st_size,
    ]


def test_next_run_reads_the_cached_checksum(shop: Project, alias: str) -> None:
    """Another process (here: a cleared memory) takes the checksum from the cache file."""
    run("opsmigrate", database=alias)
    run("opsmigrate", "shop", "zero", database=alias)
    cache = entries(shop)
    cache["0001_initial.py"]["checksum"] = "planted"
    cache_of(shop).write_text(json.dumps({"version": 1, "files": cache}))
    headers._checksums.clear()
    history._loaded_checksums.clear()  # the process's memory of the loaded scripts, too

    run("opsmigrate", database=alias)

    assert recorded(alias)[-1] == ("apply", "s1", "planted")


def test_edited_script_is_checksummed_again(shop: Project, alias: str) -> None:
    path = shop.root / "shop" / "migrations_ops" / "0001_initial.py"
    run("opsmigrate", database=alias)
    run("opsmigrate", "shop", "zero", database=alias)
    first = recorded(alias)[0][2]
    stat = path.stat()
    # The same size, a later mtime: only the code differs ("shop_a" -> "shop_x").
    path.write_text(path.read_text().replace('"shop_a"', '"shop_x"'))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    # Python's own bytecode cache keys on whole seconds and the size: within the
    # same second it would run the old code (plain Alembic too). Not ours to test.
    for compiled in path.parent.glob("__pycache__/0001_initial.*.pyc"):
        compiled.unlink()

    run("opsmigrate", database=alias)

    now = history.checksum_source(path.read_text())
    assert now != first
    assert recorded(alias)[-1] == ("apply", "s1", now)
    assert entries(shop)["0001_initial.py"]["checksum"] == now
    assert "shop_x" in table_names(alias)
