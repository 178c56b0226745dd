"""docs/tutorial.rst, replayed on a fresh copy of example_project/ with the real manage.py.

Each ``$ python manage.py ...`` line of the page's console blocks runs in a
subprocess (SQLite, as the example project is configured) and its output is
compared with the lines shown after it (``…`` as in test_docs_deploying).
``.. tutorial-test: edit=<path>`` before a block fills the functions of the
script that ``opsmakemigration`` wrote with those of
``docs/examples/tutorial/daily_totals.py``, as the page tells the reader to.
Other ``$`` lines (creating a virtualenv, ``cd``) are the reader's setup.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from .test_docs_deploying import blocks, commands_on_page, matches

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "tutorial.rst"
FUNCTIONS = REPO / "docs" / "examples" / "tutorial" / "daily_totals.py"


def manage(root: Path, line: str) -> tuple[str, int]:
    argv = shlex.split(line)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=180,
    )
    return result.stdout, result.returncode


def fill_functions(path: Path) -> None:
    written = path.read_text()
    functions = FUNCTIONS.read_text()
    marker = "def upgrade() -> None:"
    path.write_text(written[: written.index(marker)] + functions[functions.index(marker) :])


def test_tutorial_page(tmp_path: Path) -> None:
    root = tmp_path / "example_project"
    shutil.copytree(
        REPO / "example_project",
        root,
        ignore=shutil.ignore_patterns("db.sqlite3*", "__pycache__"),
    )
    run: set[str] = set()
    status = 0
    for block in blocks(PAGE, "tutorial-test"):
        if "edit" in block.options:
            fill_functions(root / block.options["edit"])
        for command in block.commands:
            if command.line == "echo $?":
                assert [line for line in command.expected if line] == [str(status)]
                continue
            if not command.line.startswith("python manage.py "):
                continue  # the reader's setup: venv, pip, cd
            output, status = manage(root, command.line)
            run.add(" ".join(command.line.split()[2:]))
            assert matches(command.expected, output), (
                f"docs/tutorial.rst, block at line {block.lineno}: $ {command.line}\n"
                "--- expected\n" + "\n".join(command.expected) + f"\n--- actual\n{output}"
            )
    assert commands_on_page(PAGE) <= run, commands_on_page(PAGE) - run


def test_included_files_exist() -> None:
    for line in PAGE.read_text().splitlines():
        if ".. literalinclude:: " in line:
            assert (PAGE.parent / line.split(":: ", 1)[1]).is_file(), line
