"""The example project runs end to end (on a copy), so it cannot rot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def manage(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_example_project_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "example_project"
    shutil.copytree(
        REPO / "example_project",
        root,
        ignore=shutil.ignore_patterns("db.sqlite3*", "__pycache__"),
    )
    migrate = manage(root, "migrate")
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "Running ops migrations:" in migrate.stdout
    shown = manage(root, "opsshowmigrations")
    assert shown.returncode == 0
    assert "[ ]" not in shown.stdout and "[X]" in shown.stdout
    assert manage(root, "opsmigrate", "--check").returncode == 0
    report = manage(root, "example_report")
    assert report.returncode == 0, report.stdout + report.stderr
    tests = manage(root, "test", "--noinput")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    # Back to zero and up again: every ops migration of the example unapplies,
    # once the Django table that points at an ops table is gone.
    assert manage(root, "migrate", "reports", "0001").returncode == 0
    for app in ("reports", "shop"):
        down = manage(root, "opsmigrate", app, "zero")
        assert down.returncode == 0, down.stdout + down.stderr
    assert manage(root, "opsmigrate", "--check").returncode == 1
    up = manage(root, "opsmigrate")
    assert up.returncode == 0, up.stdout + up.stderr
