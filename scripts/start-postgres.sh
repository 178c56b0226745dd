#!/usr/bin/env bash
# Make a throw-away PostgreSQL server available for the test suite and write
# its connection settings to <repo>/.pgenv (export VAR=value lines).
#
#   bash scripts/start-postgres.sh      # start (or reuse) it, write .pgenv
#   . scripts/start-postgres.sh         # same, and also export the vars here
#   bash scripts/start-postgres.sh --stop DIR   # stop the server it started in DIR
#
# Port: $OPS_PG_PORT (default 54329), so it never clashes with a system server
# on 5432. Running it again while the server answers just reuses it.
# $OPS_PG_STARTED_FILE, if set, names a file that receives the DIR of a server
# this run started (it stays empty when a running server is reused), so that
# the caller can stop what it started, and only that (scripts/test.sh does).

_ops_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# The server refuses to run as root, so as root do everything as `postgres`
# (that user is created by the Debian package); otherwise run as ourselves.
_ops_pg_as_postgres() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

_ops_pg_stop() (
    set -euo pipefail
    dir=${1:?usage: start-postgres.sh --stop DIR}
    # Only a directory this script made: never rm -rf anything else.
    if [[ $(basename "$dir") != ops-pg.* || ! -f $dir/data/PG_VERSION ]]; then
        echo "start-postgres: $dir is not a server started by this script; left alone" >&2
        exit 1
    fi
    pg_ctl=$(_ops_pg_bin)/pg_ctl
    if ! _ops_pg_as_postgres "$pg_ctl" stop -s -m fast -w -D "$dir/data" >/dev/null 2>&1 \
        && _ops_pg_as_postgres "$pg_ctl" status -D "$dir/data" >/dev/null 2>&1; then
        echo "start-postgres: *** could not stop the server in $dir ***" >&2
        exit 1
    fi
    rm -rf "$dir"
    echo "start-postgres: stopped the PostgreSQL server in $dir and removed it" >&2
)

_ops_pg_start() (
    # Subshell body: strict mode and any `exit` stay inside, so sourcing this
    # file never changes the options of, or kills, the caller's shell.
    set -euo pipefail
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    port=${OPS_PG_PORT:-54329}

    bin=$(_ops_pg_bin)
    if [[ -z $bin || ! -x $bin/initdb || ! -x $bin/pg_ctl || ! -x $bin/postgres ]]; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "start-postgres: no PostgreSQL server in /usr/lib/postgresql/*/bin and not root," \
                "so cannot apt-get install it. Install 'postgresql' or set OPS_TEST_PG_* yourself." >&2
            exit 1
        fi
        echo "start-postgres: installing PostgreSQL from apt..." >&2
        # noninteractive + </dev/null: must work in CI with no terminal/stdin.
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q </dev/null
        apt-get install -y -q postgresql </dev/null
        bin=$(_ops_pg_bin)
    fi

    as_pg() { _ops_pg_as_postgres "$@"; }

    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        echo "start-postgres: reusing the server already answering on 127.0.0.1:$port" >&2
    else
        # Fresh cluster in a temp dir: nothing shared with a system cluster and
        # no state leaking between runs. Socket dir lives there too, so we need
        # no write access to /var/run/postgresql.
        tmp=$(mktemp -d -t ops-pg.XXXXXX)
        [[ $(id -u) -eq 0 ]] && chown postgres: "$tmp"
        as_pg "$bin/initdb" -D "$tmp/data" -U postgres --auth=trust -E UTF8 --no-locale >"$tmp/initdb.log" 2>&1 \
            || { cat "$tmp/initdb.log" >&2; echo "start-postgres: *** initdb FAILED ($tmp) ***" >&2; exit 1; }
        # One role must give a password (everyone else is trusted), so that the
        # suite can check a rejected password never shows up in our errors.
        hba="$tmp/data/pg_hba.conf"
        { echo "host all ops_password_check 127.0.0.1/32 scram-sha-256"; cat "$hba"; } >"$hba.new"
        mv "$hba.new" "$hba"
        [[ $(id -u) -eq 0 ]] && chown postgres: "$hba"
        fail() {
            cat "$tmp/server.log" >&2 2>/dev/null || true
            echo "start-postgres: *** PostgreSQL did NOT become ready on 127.0.0.1:$port: $1 ***" >&2
            # Log is shown above; don't leave a half-started server or temp dirs behind.
            as_pg "$bin/pg_ctl" stop -s -m immediate -D "$tmp/data" >/dev/null 2>&1 || true
            rm -rf "$tmp"
            exit 1
        }
        # Durability is pointless for test data; turning it off makes tests much faster.
        # setsid: detach from our process group so job-control cleanups of the
        # caller (Ctrl-C, kill -- -PGID) do not take the server down with it.
        # pg_ctl -w notices at once if the postmaster dies (e.g. port taken).
        as_pg setsid -w "$bin/pg_ctl" start -w -t 30 -D "$tmp/data" -l "$tmp/server.log" -s \
            -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            </dev/null || fail "pg_ctl start failed"
        # Then confirm over TCP, which is what the tests use (deadline ~30 s).
        deadline=$((SECONDS + 30))
        until "$bin/pg_isready" -q -t 2 -h 127.0.0.1 -p "$port"; do
            ((SECONDS < deadline)) || fail "no answer within 30 s"
            sleep 0.5
        done
        echo "start-postgres: started PostgreSQL $("$bin/postgres" -V | awk '{print $3}') on 127.0.0.1:$port" \
            "(data: $tmp/data, log: $tmp/server.log)" >&2
        echo "start-postgres: stop it with: bash scripts/start-postgres.sh --stop $tmp" >&2
        if [[ -n ${OPS_PG_STARTED_FILE:-} ]]; then
            printf '%s\n' "$tmp" >"$OPS_PG_STARTED_FILE"
        fi
    fi

    env_text="export OPS_TEST_PG_HOST=127.0.0.1
export OPS_TEST_PG_PORT=$port
export OPS_TEST_PG_USER=postgres
export OPS_TEST_PG_PASSWORD="
    printf '%s\n' "$env_text" >"$root/.pgenv"
    echo "start-postgres: environment (also written to $root/.pgenv):" >&2
    printf '%s\n' "$env_text"
)

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
    # Sourced: export the settings into the caller's shell on success.
    _ops_pg_start && . "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.pgenv"
elif [[ ${1:-} == --stop ]]; then
    _ops_pg_stop "${2:-}"
else
    _ops_pg_start
fi
