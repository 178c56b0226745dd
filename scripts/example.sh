#!/usr/bin/env bash
# Runs the example project end to end on SQLite, on a fresh machine with only
# Python 3 installed:
#
#   bash scripts/example.sh
#
# Creates .venv if missing, installs the package (its dependencies come from
# pyproject.toml), then builds example_project/db.sqlite3 from scratch with
# `manage.py migrate` (Django's migrations, then the ops migrations through the
# post_migrate integration), shows the ops commands' output (going back one
# migration and forward again too) and queries the tables and views the ops
# migrations created.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install -q -e . </dev/null
python=$PWD/.venv/bin/python

cd example_project
rm -f db.sqlite3

run() {
    echo
    echo "\$ python manage.py $*"
    "$python" manage.py "$@"
}

run migrate
run opsshowmigrations
run opsmigrate --plan
run opssqlmigrate shop 0001
run opsmigrate reports 0001   # back one step (downgrade), as migrate app 0001 does
run opsmigrate                # and forward again
run example_report
