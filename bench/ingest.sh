#!/usr/bin/env bash
# Trace ingestion benchmark: ../shared/bench/otlp_load.py (OTLP/HTTP protobuf, 4-span GenAI
# traces) against `pilothouse serve`, on SQLite and on PostgreSQL. Reports spans PERSISTED per
# second: rows counted in the spans table after the run, divided by the load's wall time
# (the server acknowledges only committed spans, so every acknowledged span is counted).
# Also reports spans per CPU-second of the server process (user + system time from /proc), a
# figure that depends less on what else the machine is running than wall-clock throughput.
#
# Usage: bench/ingest.sh [sqlite|postgres|both]   (env: SPANS=200000 BATCH=512 CONCURRENCY=4
#        WORKERS=1 PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres SHARED=...)
# WORKERS > 1 serves with that many processes (`pilothouse serve` with
# PILOTHOUSE_SERVER_PROCESSES), each with its writer and its own SO_REUSEPORT socket, so the
# kernel spreads the connections over them.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared/bench}
SPANS=${SPANS:-200000}
BATCH=${BATCH:-512}
CONCURRENCY=${CONCURRENCY:-4}
WORKERS=${WORKERS:-1}
PG_URL=${PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}
PY=${PYTHON:-python}
KEY="ph-bench-ingest-$(date +%s)"
WORK=$(mktemp -d)
SERVER_PID=""
PG_DB=""

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg() { "$PY" - "$PG_URL" "$@" <<'EOF'
import sys, sqlalchemy as sa
url, action, name = sys.argv[1:4]
engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
with engine.connect() as conn:
    if action == "create":
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    else:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
print(sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False))
EOF
}
cpu_seconds() {  # user + system CPU seconds of a process and its children (workers)
    local total=0 pid
    for pid in $1 $(pgrep -P "$1" || true); do
        total=$(awk -v hz="$(getconf CLK_TCK)" -v t="$total" '{print t + ($14 + $15) / hz}' "/proc/$pid/stat")
    done
    echo "$total"
}
stop_server() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    SERVER_PID=""
}
cleanup() {
    stop_server
    [ -n "$PG_DB" ] && pg drop "$PG_DB" >/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

run() {  # run NAME DATABASE_URL
    local name=$1 url=$2 port out wall persisted
    port=$(free_port)
    PILOTHOUSE_DATA_DIR="$WORK/$name" PILOTHOUSE_DATABASE_URL="$url" PILOTHOUSE_ADMIN_KEY="$KEY" \
        PILOTHOUSE_ADMIN_PASSWORD=bench-password PILOTHOUSE_WORKERS_INLINE=false \
        PILOTHOUSE_LOG_LEVEL=warning PILOTHOUSE_PORT="$port" PILOTHOUSE_SERVER_PROCESSES="$WORKERS" \
        "$PY" -m pilothouse serve >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 150); do
        curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
        sleep 0.2
    done
    sleep 1  # every worker up
    cpu_before=$(cpu_seconds "$SERVER_PID")
    out=$("$PY" "$SHARED/otlp_load.py" "http://127.0.0.1:$port/v1/traces" --spans "$SPANS" \
        --batch "$BATCH" --concurrency "$CONCURRENCY" --header "Authorization=Bearer $KEY")
    wall=$(echo "$out" | sed -E 's/.*wall=([0-9.]+)s.*/\1/')
    cpu=$("$PY" -c "print(round($(cpu_seconds "$SERVER_PID") - $cpu_before, 2))")
    stop_server
    persisted=$("$PY" -c '
import sys, sqlalchemy as sa
e = sa.create_engine(sys.argv[1])
with e.connect() as c:
    print(c.exec_driver_sql("SELECT count(*) FROM spans").scalar())
' "$url")
    echo "| $name, $WORKERS process(es) | $SPANS | $BATCH x $CONCURRENCY | ${wall}s | $persisted | $("$PY" -c "print(round($persisted / $wall))") | ${cpu}s | $("$PY" -c "print(round($persisted / $cpu))") | $(cut -d' ' -f1 /proc/loadavg) |"
    echo "  load generator: $out" >&2
}

which=${1:-both}
echo "| database | spans sent | batch x concurrency | wall | rows in spans | persisted spans/s | server CPU | spans per CPU-second | load average |"
echo "|---|---|---|---|---|---|---|---|---|"
if [ "$which" = sqlite ] || [ "$which" = both ]; then
    run sqlite "sqlite:///$WORK/sqlite/pilothouse.db"
fi
if [ "$which" = postgres ] || [ "$which" = both ]; then
    PG_DB="ph_bench_$$"
    run postgres "$(pg create "$PG_DB")"
fi
