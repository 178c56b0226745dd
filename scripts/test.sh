#!/usr/bin/env bash
# The one test command: sets up everything on a fresh machine, then runs lint,
# type checks, the docs build and the test suite (on this Python's newest Django
# with psycopg 3 and mysqlclient, on SQLite, PostgreSQL and MariaDB; then at the
# lowest declared versions with psycopg2, on SQLite and PostgreSQL; then on the
# newest Django 6.x), stopping at the first failure.
#
#   bash scripts/test.sh [pytest args...]
#
# With $CI set, a PostgreSQL, MariaDB or Redis (the Celery tests' broker) that
# cannot be started is an error (and the suite itself fails rather than skips
# their tests); locally it is only a warning.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Servers started here are stopped (and their temp dirs removed) when this
# script exits, however it exits; one that was already running is left.
pg_started=$(mktemp -t ops-pg-started.XXXXXX)
my_started=$(mktemp -t ops-my-started.XXXXXX)
redis_started=$(mktemp -t ops-redis-started.XXXXXX)
stop_servers() {
    { set +x; } 2>/dev/null
    local dir
    dir=$(cat "$pg_started" 2>/dev/null || true)
    rm -f "$pg_started"
    if [[ -n $dir ]]; then bash scripts/start-postgres.sh --stop "$dir" || true; fi
    dir=$(cat "$my_started" 2>/dev/null || true)
    rm -f "$my_started"
    if [[ -n $dir ]]; then bash scripts/start-mariadb.sh --stop "$dir" || true; fi
    dir=$(cat "$redis_started" 2>/dev/null || true)
    rm -f "$redis_started"
    if [[ -n $dir ]]; then bash scripts/start-redis.sh --stop "$dir" || true; fi
}
trap stop_servers EXIT
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

# MariaDB likewise. Started before the venv is installed: the test extra's
# mysqlclient is built from source against libmariadb-dev, which this installs.
if OPS_MYSQL_STARTED_FILE=$my_started bash scripts/start-mariadb.sh; then
    . ./.myenv
elif [[ -n ${CI:-} ]]; then
    echo "test.sh: *** ERROR: could not start MariaDB, and CI is set: failing. ***" >&2
    exit 1
else
    echo "" >&2
    echo "test.sh: *** WARNING: could not start MariaDB; MariaDB tests will be SKIPPED. ***" >&2
    echo "" >&2
fi
if [[ -n ${CI:-} ]]; then
    export OPS_REQUIRE_MYSQL=1
fi

# Redis likewise: the broker and result backend of the Celery fleet tests.
if OPS_REDIS_STARTED_FILE=$redis_started bash scripts/start-redis.sh; then
    . ./.redisenv
elif [[ -n ${CI:-} ]]; then
    echo "test.sh: *** ERROR: could not start Redis, and CI is set: failing. ***" >&2
    exit 1
else
    echo "" >&2
    echo "test.sh: *** WARNING: could not start Redis; the Celery tests will be SKIPPED. ***" >&2
    echo "" >&2
fi
if [[ -n ${CI:-} ]]; then
    export OPS_REQUIRE_CELERY=1
fi

# Own venv, so nothing depends on (or pollutes) the machine's Python.
[[ -x .venv/bin/python ]] || python3 -m venv .venv
if ! .venv/bin/pip install -q -e '.[dev]' </dev/null; then
    # Locally, without libmariadb-dev (not root), mysqlclient cannot be built:
    # everything else, and MariaDB's tests skip. Under CI that is an error.
    [[ -z ${CI:-} ]] || exit 1
    echo "test.sh: *** WARNING: could not install '.[dev]' (mysqlclient needs libmariadb-dev," \
        "pkg-config and a compiler); installing without it: MariaDB tests will be SKIPPED. ***" >&2
    unset OPS_TEST_MYSQL_PORT
    mapfile -t test_deps < <(.venv/bin/python -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    test = tomllib.load(f)["project"]["optional-dependencies"]["test"]
print("\n".join(d for d in test if not d.startswith("mysqlclient")))')
    .venv/bin/pip install -q -e '.[lint,devlint,docs]' "${test_deps[@]}" </dev/null
fi
bin=.venv/bin

set -x  # show each check as it runs, so a failure's source is obvious in logs
"$bin/ruff" check .
"$bin/ruff" format --check .
"$bin/mypy"
if [[ -f docs/conf.py ]]; then
    "$bin/sphinx-build" -n -W --keep-going -b html docs docs/_build/html
fi
# Three backends in one run, two workers: each worker has its own PostgreSQL and
# MariaDB test databases (tests/settings.py names them after the process).
"$bin/pytest" -n 2 "$@"

# The support matrix, kept true by two more legs of the same suite, each in its
# own venv (tests that need Django 5.1 features skip, saying so):
# - "lowest": the oldest Python and exactly the lower bounds pyproject.toml
#   declares (Django 4.2.0, SQLAlchemy, Alembic), on psycopg2 with no psycopg 3
#   installed, so Django, SQLAlchemy and --sql all take psycopg2 (SQLite and
#   PostgreSQL only: no mysqlclient there, MariaDB's tests skip);
# - "newest": the newest Django (6.x needs Python 3.12+) on psycopg 3.
# Interpreters come from pyenv's versions folder or PATH. A candidate must
# actually run: a pyenv shim on PATH exists for every installed version but
# fails ("pyenv: python3.10: command not found") unless that version is
# selected, which is how CI's first run of this leg died with exit 127.
find_python() {
    local candidate
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1" \
        /root/.pyenv/versions/"$1".*/bin/"python$1" \
        "$(command -v "python$1" || true)"; do
        if [[ -n $candidate && -x $candidate ]] && "$candidate" -c '' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
{ set +x; } 2>/dev/null
lower_bounds=$("$bin/python" -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    print(" ".join(d.replace(">=", "==") for d in tomllib.load(f)["project"]["dependencies"]))')
python_lowest=$(find_python 3.10) || {
    echo "test.sh: *** WARNING: no Python 3.10 found; the lowest-versions leg runs on python3. ***" >&2
    python_lowest=python3
}
python_newest=$(find_python 3.13 || find_python 3.12) || python_newest=""
set -x

[[ -x .venv-lowest/bin/python ]] || "$python_lowest" -m venv .venv-lowest
low=.venv-lowest/bin
# shellcheck disable=SC2086  # one word per requirement
$low/pip install -q -e . $lower_bounds psycopg2-binary 'pytest>=8' 'pytest-django>=4.8' \
    'pytest-xdist>=3' 'pytest-timeout>=2.2' </dev/null
$low/pip uninstall -q -y psycopg psycopg-binary psycopg-c </dev/null 2>/dev/null || true
$low/python -c 'import django, importlib.util as u; assert django.VERSION[:3] == (4, 2, 0); assert not u.find_spec("psycopg")'
# (No Celery either: the base dependencies only, so its tests skip.)
OPS_TEST_MYSQL_PORT='' OPS_REQUIRE_MYSQL='' OPS_REQUIRE_CELERY='' $low/pytest -n 2 "$@"

if [[ -z $python_newest ]]; then
    { set +x; } 2>/dev/null
    echo "test.sh: *** WARNING: no Python 3.12+ found: the newest-Django (6.x) leg did NOT run. ***" >&2
    exit 0
fi
[[ -x .venv-newest/bin/python ]] || "$python_newest" -m venv .venv-newest
new=.venv-newest/bin
$new/pip install -q -U -e '.[test]' 'Django>=6' </dev/null
$new/python -c 'import django; assert django.VERSION >= (6, 0), django.VERSION'
$new/pytest -n 2 "$@"
