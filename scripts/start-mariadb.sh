#!/usr/bin/env bash
# Make a throw-away MariaDB server available for the test suite and write its
# connection settings to <repo>/.myenv (export VAR=value lines).
#
#   bash scripts/start-mariadb.sh      # start (or reuse) it, write .myenv
#   . scripts/start-mariadb.sh         # same, and also export the vars here
#   bash scripts/start-mariadb.sh --stop DIR   # stop the server it started in DIR
#
# Port: $OPS_MYSQL_PORT (default 33069), so it never clashes with a system
# server on 3306. Running it again while the server answers just reuses it.
# $OPS_MYSQL_STARTED_FILE, if set, names a file that receives the DIR of a
# server this run started (it stays empty when a running server is reused), so
# that the caller can stop what it started, and only that (scripts/test.sh does).
# As root, MariaDB (and what building the mysqlclient driver needs:
# libmariadb-dev, pkg-config) is installed from apt when missing.

# mariadbd refuses to run as root, so as root run it as `mysql` (that user is
# created by the Debian package); otherwise run as ourselves.
_ops_my_as_mysql() { if [[ $(id -u) -eq 0 ]]; then runuser -u mysql -- "$@"; else "$@"; fi; }

_ops_my_bin() { command -v "$1" || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || true; }

# Does a server answer on 127.0.0.1:$1? (as root, over TCP; no password)
_ops_my_ping() {
    local admin
    admin=$(_ops_my_bin mariadb-admin)
    [[ -n $admin ]] && "$admin" --no-defaults --protocol=TCP -h 127.0.0.1 -P "$1" -u root \
        --connect-timeout=2 ping >/dev/null 2>&1
}

_ops_my_stop() (
    set -euo pipefail
    dir=${1:?usage: start-mariadb.sh --stop DIR}
    # Only a directory this script made: never rm -rf anything else.
    if [[ $(basename "$dir") != ops-my.* || ! -d $dir/data/mysql ]]; then
        echo "start-mariadb: $dir is not a server started by this script; left alone" >&2
        exit 1
    fi
    pid=$(cat "$dir/mariadbd.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        # A clean shutdown takes a moment (no durability, so it is short).
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "start-mariadb: *** could not stop the server in $dir (pid $pid) ***" >&2
            exit 1
        fi
    fi
    rm -rf "$dir"
    echo "start-mariadb: stopped the MariaDB server in $dir and removed it" >&2
)

_ops_my_start() (
    # Subshell body: strict mode and any `exit` stay inside, so sourcing this
    # file never changes the options of, or kills, the caller's shell.
    set -euo pipefail
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    port=${OPS_MYSQL_PORT:-33069}

    mariadbd=$(_ops_my_bin mariadbd)
    # The driver (mysqlclient) is built from source against libmariadb: its
    # headers and pkg-config file are needed as much as the server.
    if [[ -z $mariadbd || -z $(_ops_my_bin mariadb-install-db) || -z $(_ops_my_bin mariadb-admin) ]] \
        || ! pkg-config --exists libmariadb 2>/dev/null; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "start-mariadb: MariaDB (mariadbd, libmariadb-dev, pkg-config) is missing and we are" \
                "not root, so cannot apt-get install it. Install 'mariadb-server libmariadb-dev" \
                "pkg-config' or set OPS_TEST_MYSQL_* yourself." >&2
            exit 1
        fi
        echo "start-mariadb: installing MariaDB from apt..." >&2
        # noninteractive + </dev/null: must work in CI with no terminal/stdin.
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q </dev/null
        apt-get install -y -q mariadb-server libmariadb-dev pkg-config gcc </dev/null
        mariadbd=$(_ops_my_bin mariadbd)
        [[ -n $mariadbd ]] || { echo "start-mariadb: *** mariadbd not found after install ***" >&2; exit 1; }
    fi

    if _ops_my_ping "$port"; then
        echo "start-mariadb: reusing the server already answering on 127.0.0.1:$port" >&2
    else
        # Fresh data dir in a temp dir: nothing shared with a system server and
        # no state leaking between runs. The socket lives there too, so we need
        # no write access to /run/mysqld.
        tmp=$(mktemp -d -t ops-my.XXXXXX)
        chmod 755 "$tmp"
        [[ $(id -u) -eq 0 ]] && chown mysql: "$tmp"
        # Passwordless root over TCP and socket alike: a throw-away test server.
        _ops_my_as_mysql "$(_ops_my_bin mariadb-install-db)" --no-defaults \
            --auth-root-authentication-method=normal --skip-test-db \
            --datadir="$tmp/data" >"$tmp/install-db.log" 2>&1 \
            || { cat "$tmp/install-db.log" >&2; echo "start-mariadb: *** mariadb-install-db FAILED ($tmp) ***" >&2; exit 1; }
        fail() {
            cat "$tmp/server.log" >&2 2>/dev/null || true
            echo "start-mariadb: *** MariaDB did NOT become ready on 127.0.0.1:$port: $1 ***" >&2
            # Log is shown above; don't leave a half-started server or temp dirs behind.
            pid=$(cat "$tmp/mariadbd.pid" 2>/dev/null || true)
            [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
            rm -rf "$tmp"
            exit 1
        }
        # Durability is pointless for test data; turning it off makes tests much
        # faster (no fsync per commit or per DDL). --no-defaults: no my.cnf of
        # the machine changes this server. setsid: detach from our process group
        # so job-control cleanups of the caller (Ctrl-C, kill -- -PGID) do not
        # take the server down with it.
        # As root, --user=mysql: mariadbd drops to that user itself, so $! is
        # the server's own pid (no runuser or subshell in between).
        user_opt=()
        [[ $(id -u) -eq 0 ]] && user_opt=(--user=mysql)
        setsid "$mariadbd" --no-defaults "${user_opt[@]}" --datadir="$tmp/data" \
            --port="$port" --bind-address=127.0.0.1 --socket="$tmp/mysqld.sock" \
            --pid-file="$tmp/mariadbd.pid" --log-error="$tmp/server.log" \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
            --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
            --innodb-flush-method=nosync --skip-name-resolve --max-connections=500 \
            </dev/null >/dev/null 2>&1 &
        server=$!
        # Then confirm over TCP, which is what the tests use (deadline ~30 s).
        deadline=$((SECONDS + 30))
        until _ops_my_ping "$port"; do
            kill -0 "$server" 2>/dev/null || fail "mariadbd exited (port taken?)"
            ((SECONDS < deadline)) || fail "no answer within 30 s"
            sleep 0.5
        done
        echo "start-mariadb: started MariaDB $("$mariadbd" --version | awk '{print $3}') on" \
            "127.0.0.1:$port (data: $tmp/data, log: $tmp/server.log)" >&2
        echo "start-mariadb: stop it with: bash scripts/start-mariadb.sh --stop $tmp" >&2
        if [[ -n ${OPS_MYSQL_STARTED_FILE:-} ]]; then
            printf '%s\n' "$tmp" >"$OPS_MYSQL_STARTED_FILE"
        fi
    fi

    env_text="export OPS_TEST_MYSQL_HOST=127.0.0.1
export OPS_TEST_MYSQL_PORT=$port
export OPS_TEST_MYSQL_USER=root
export OPS_TEST_MYSQL_PASSWORD="
    printf '%s\n' "$env_text" >"$root/.myenv"
    echo "start-mariadb: environment (also written to $root/.myenv):" >&2
    printf '%s\n' "$env_text"
)

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
    # Sourced: export the settings into the caller's shell on success.
    _ops_my_start && . "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.myenv"
elif [[ ${1:-} == --stop ]]; then
    _ops_my_stop "${2:-}"
else
    _ops_my_start
fi
