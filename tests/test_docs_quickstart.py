"""docs/quickstart.rst shows the script opsmakemigration really writes, and its real output."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from .conftest import Project, run

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

PAGE = Path(__file__).resolve().parent.parent / "docs" / "quickstart.rst"


def block_after(marker: str, directive: str) -> str:
    """The body of the first ``directive`` block after ``marker`` on the page."""
    text = PAGE.read_text()
    start = text.index(directive, text.index(marker)) + len(directive)
    body = re.match(r"\n\n((?:   .*\n|\n)+)", text[start:])
    assert body, directive
    return textwrap.dedent(body.group(1)).strip("\n") + "\n"


def test_new_script_is_the_one_shown(project: Project) -> None:
    project.app("shop", ops=False)
    out = run("opsmakemigration", "shop", "-m", "add orders view", "--empty")
    console = block_after("1. Create the migration", ".. code-block:: console")
    assert console.splitlines()[1:] == [
        line.replace(str(project.root) + "/", "") for line in out.strip("\n").splitlines()
    ]
    written = (project.root / "shop/migrations_ops/0001_add_orders_view.py").read_text()
    assert (project.root / "shop/migrations_ops/__init__.py").read_text() == ""
    shown = block_after("revision script:", ".. code-block:: python")
    revision = re.search(r'^revision = "(\w+)"$', written, re.M)
    assert revision
    written = written.replace(revision.group(1), "3f2a9c1d7b10")
    written = re.sub(r"Create Date: .*", "Create Date: 2025-11-03 12:00:00", written)
    assert written == shown
