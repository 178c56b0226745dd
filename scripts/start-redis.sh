#!/usr/bin/env bash
# Make a throw-away Redis server available for the test suite (the broker and
# result backend of the Celery fleet tests) and write its URL to <repo>/.redisenv
# (export VAR=value lines).
#
#   bash scripts/start-redis.sh      # start (or reuse) it, write .redisenv
#   . scripts/start-redis.sh         # same, and also export the vars here
#   bash scripts/start-redis.sh --stop DIR   # stop the server it started in DIR
#
# Port: $OPS_REDIS_PORT (default 63799), so it never clashes with a system
# server on 6379; it listens on 127.0.0.1 and on a unix socket in its temp dir,
# keeps nothing on disk (no RDB snapshots, no AOF). Running it again while the
# server answers just reuses it. $OPS_REDIS_STARTED_FILE, if set, names a file
# that receives the DIR of a server this run started (it stays empty when a
# running server is reused), so that the caller can stop what it started, and
# only that (scripts/test.sh does). As root, redis-server is installed from apt
# when missing.

# As root, run the server as `redis` (that user is created by the Debian
# package): a test broker needs no privileges. Otherwise run as ourselves.
# setpriv execs what follows (runuser would fork and wait).
_ops_redis_as_redis() {
    if [[ $(id -u) -eq 0 ]]; then exec setpriv --reuid=redis --regid=redis --init-groups -- "$@"; fi
    exec "$@"
}

_ops_redis_bin() { command -v "$1" || { [[ -x /usr/bin/$1 ]] && echo "/usr/bin/$1"; } || true; }

# Does a Redis server answer on 127.0.0.1:$1?
_ops_redis_ping() {
    local cli
    cli=$(_ops_redis_bin redis-cli)
    [[ -n $cli && $("$cli" -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]
}

_ops_redis_stop() (
    set -euo pipefail
    dir=${1:?usage: start-redis.sh --stop DIR}
    # Only a directory this script made: never rm -rf anything else.
    if [[ $(basename "$dir") != ops-redis.* || ! -f $dir/redis.conf ]]; then
        echo "start-redis: $dir is not a server started by this script; left alone" >&2
        exit 1
    fi
    pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "start-redis: *** could not stop the server in $dir (pid $pid) ***" >&2
            exit 1
        fi
    fi
    rm -rf "$dir"
    echo "start-redis: stopped the Redis server in $dir and removed it" >&2
)

_ops_redis_start() (
    # Subshell body: strict mode and any `exit` stay inside, so sourcing this
    # file never changes the options of, or kills, the caller's shell.
    set -euo pipefail
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    port=${OPS_REDIS_PORT:-63799}

    server=$(_ops_redis_bin redis-server)
    if [[ -z $server || -z $(_ops_redis_bin redis-cli) ]]; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "start-redis: redis-server is missing and we are not root, so cannot apt-get" \
                "install it. Install 'redis-server' or set OPS_TEST_REDIS_URL yourself." >&2
            exit 1
        fi
        echo "start-redis: installing Redis from apt..." >&2
        # noninteractive + </dev/null: must work in CI with no terminal/stdin.
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q </dev/null
        apt-get install -y -q redis-server </dev/null
        server=$(_ops_redis_bin redis-server)
        [[ -n $server ]] || { echo "start-redis: *** redis-server not found after install ***" >&2; exit 1; }
    fi

    if _ops_redis_ping "$port"; then
        echo "start-redis: reusing the server already answering on 127.0.0.1:$port" >&2
    else
        # Its own temp dir for the config, socket, pid file and log: nothing
        # shared with a system server.
        tmp=$(mktemp -d -t ops-redis.XXXXXX)
        chmod 755 "$tmp"
        # Nothing persisted: no snapshots (save ""), no append-only file. The
        # socket is for clients on this machine; TCP on loopback only.
        cat >"$tmp/redis.conf" <<EOF
port $port
bind 127.0.0.1
unixsocket $tmp/redis.sock
unixsocketperm 770
dir $tmp
save ""
appendonly no
daemonize no
pidfile $tmp/redis.pid
logfile $tmp/server.log
EOF
        [[ $(id -u) -eq 0 ]] && chown -R redis: "$tmp"
        fail() {
            cat "$tmp/server.log" >&2 2>/dev/null || true
            echo "start-redis: *** Redis did NOT become ready on 127.0.0.1:$port: $1 ***" >&2
            # Log is shown above; don't leave a half-started server or temp dirs behind.
            kill -KILL "$(cat "$tmp/redis.pid" 2>/dev/null)" "$pid" 2>/dev/null || true
            rm -rf "$tmp"
            exit 1
        }
        # setsid: detach from our process group so job-control cleanups of the
        # caller (Ctrl-C, kill -- -PGID) do not take the server down with it.
        # -w: setsid waits for the server, so $! is alive exactly as long as it is.
        (_ops_redis_as_redis setsid -w "$server" "$tmp/redis.conf" </dev/null >/dev/null 2>&1) &
        pid=$!
        deadline=$((SECONDS + 30))
        until _ops_redis_ping "$port"; do
            kill -0 "$pid" 2>/dev/null || fail "redis-server exited (port taken?)"
            ((SECONDS < deadline)) || fail "no answer within 30 s"
            sleep 0.2
        done
        echo "start-redis: started Redis $("$server" --version | awk '{print $3}' | sed 's/^v=//') on" \
            "127.0.0.1:$port (socket: $tmp/redis.sock, log: $tmp/server.log)" >&2
        echo "start-redis: stop it with: bash scripts/start-redis.sh --stop $tmp" >&2
        if [[ -n ${OPS_REDIS_STARTED_FILE:-} ]]; then
            printf '%s\n' "$tmp" >"$OPS_REDIS_STARTED_FILE"
        fi
    fi

    env_text="export OPS_TEST_REDIS_URL=redis://127.0.0.1:$port/0"
    printf '%s\n' "$env_text" >"$root/.redisenv"
    echo "start-redis: environment (also written to $root/.redisenv):" >&2
    printf '%s\n' "$env_text"
)

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
    # Sourced: export the settings into the caller's shell on success.
    _ops_redis_start && . "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.redisenv"
elif [[ ${1:-} == --stop ]]; then
    _ops_redis_stop "${2:-}"
else
    _ops_redis_start
fi
