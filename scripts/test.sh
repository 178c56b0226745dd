#!/usr/bin/env bash
# The one test command: sets up everything on a fresh machine, then runs lint,
# type checks, the docs build and the test suite (on the newest Django with
# psycopg 3, then on Django 4.2 LTS with psycopg2), stopping at the first failure.
#
#   bash scripts/test.sh [pytest args...]
#
# With $CI set, a PostgreSQL that cannot be started is an error (and the suite
# itself fails rather than skips PostgreSQL tests); locally it is only a warning.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Own venv, so nothing depends on (or pollutes) the machine's Python.
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[dev]' </dev/null
bin=.venv/bin

# A PostgreSQL server started here is stopped (and its temp dir removed) when
# this script exits, however it exits; one that was already running is left.
pg_started=$(mktemp -t ops-pg-started.XXXXXX)
stop_postgres() {
    { set +x; } 2>/dev/null
    local dir
    dir=$(cat "$pg_started" 2>/dev/null || true)
    rm -f "$pg_started"
    if [[ -n $dir ]]; then bash scripts/start-postgres.sh --stop "$dir" || true; fi
}
trap stop_postgres EXIT
trap 'exit 130' INT TERM  # exit, so that the EXIT trap runs

# Executed, not sourced, so a failure cannot kill this script; .pgenv is only
# sourced after a successful start, never a stale one.
if OPS_PG_STARTED_FILE=$pg_started bash scripts/start-postgres.sh; then
    . ./.pgenv
elif [[ -n ${CI:-} ]]; then
    echo "test.sh: *** ERROR: could not start PostgreSQL, and CI is set: failing. ***" >&2
    exit 1
else
    echo "" >&2
    echo "test.sh: *** WARNING: could not start PostgreSQL; PostgreSQL tests will be SKIPPED. ***" >&2
    echo "" >&2
fi
if [[ -n ${CI:-} ]]; then
    export OPS_REQUIRE_POSTGRES=1
fi

set -x  # show each check as it runs, so a failure's source is obvious in logs
"$bin/ruff" check .
"$bin/ruff" format --check .
"$bin/mypy"
if [[ -f docs/conf.py ]]; then
    "$bin/sphinx-build" -n -W --keep-going -b html docs docs/_build/html
fi
"$bin/pytest" "$@"

# Django 4.2 LTS with psycopg2 is supported too: the same suite in its own
# venv (tests that need Django 5.1 features skip, saying so). No psycopg 3
# there, so Django, SQLAlchemy and --sql all take psycopg2.
[[ -x .venv-django42/bin/python ]] || python3 -m venv .venv-django42
lts=.venv-django42/bin
$lts/pip install -q -e . 'django>=4.2,<5' psycopg2-binary 'pytest>=8' 'pytest-django>=4.8' \
    'pytest-xdist>=3' </dev/null
$lts/pip uninstall -q -y psycopg psycopg-binary psycopg-c </dev/null 2>/dev/null || true
$lts/python -c 'import django, importlib.util as u; assert django.VERSION[:2] == (4, 2); assert not u.find_spec("psycopg")'
$lts/pytest -n 2 "$@"
