#!/usr/bin/env bash
# Gateway benchmark, in one run: wrk + ../shared/bench/chat.lua against the fake upstream
# directly, then through the gateway in front of it (uvicorn, 1 worker, uvloop + httptools
# through pilothouse.protocol as in `pilothouse serve`, tracing and limits on, spans committed
# by the trace writer process), then a long run for peak RSS after RSS_REQUESTS requests. Also
# prints CPU per call from /proc (load-independent enough to compare runs on a shared machine).
#
# The direct and gateway phases alternate ROUNDS times, so that both see the same moments of a
# shared machine; each round's added p50 is its gateway p50 minus its direct p50, and the
# summary gives the median round.
#
# Usage: bench/gateway.sh   (env: CONNS=8 DURATION=15s ROUNDS=3 RSS_REQUESTS=100000 SHARED=...)
# Prints a markdown summary; paste real figures into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared/bench}
CONNS=${CONNS:-8}
DURATION=${DURATION:-15s}
ROUNDS=${ROUNDS:-3}
RSS_REQUESTS=${RSS_REQUESTS:-100000}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo "$(pwd)/.venv/bin/python" || echo python)}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port)
GW_PORT=$(free_port)
WORK=$(mktemp -d)
UP_PID=""
GW_PID=""
cleanup() {
    set +e
    for pid in $GW_PID $UP_PID; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$SHARED" && exec "$PY" -m uvicorn fake_upstream:app --port "$UP_PORT" --loop uvloop \
    --http httptools --no-access-log --log-level warning) &
UP_PID=$!
"$PY" bench/gateway_server.py --port "$GW_PORT" --upstream "http://127.0.0.1:$UP_PORT" \
    --data-dir "$WORK/gw" &
GW_PID=$!
for _ in $(seq 100); do
    if [ -f "$WORK/gw/bench.key" ] && curl -s -m 2 -o /dev/null "http://127.0.0.1:$GW_PORT/healthz" \
        && curl -s -m 2 -o /dev/null "http://127.0.0.1:$UP_PORT/v1/models"; then break; fi
    sleep 0.2
done
export BENCH_KEY
BENCH_KEY=$(cat "$WORK/gw/bench.key")
export BENCH_MODEL=fake-model
LUA="$SHARED/chat.lua"
DIRECT="http://127.0.0.1:$UP_PORT/v1/chat/completions"
GATEWAY="http://127.0.0.1:$GW_PORT/v1/chat/completions"

check=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BENCH_KEY" \
    -H 'content-type: application/json' -d '{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}' "$GATEWAY")
[ "$check" = 200 ] || { echo "gateway answered $check" >&2; exit 1; }

rss() { awk -v f="$1" '$1 == f":" {print $2}' "/proc/$GW_PID/status"; }
child_rss() { local t=0 p; for p in $(pgrep -P "$GW_PID" || true); do
    t=$(( t + $(awk -v f="$1" '$1 == f":" {print $2}' "/proc/$p/status") )); done; echo "$t"; }
# CPU ticks (user + system) of the gateway process, then of its children (the trace writer's).
cpu() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
child_cpu() { local t=0 p; for p in $(pgrep -P "$GW_PID" || true); do
    t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") )); done; echo "$t"; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
wrk -t2 -c"$CONNS" -d3s -s "$LUA" "$DIRECT" >/dev/null
wrk -t2 -c"$CONNS" -d3s --latency -s "$LUA" "$GATEWAY" >"$WORK/gateway-warm.txt"
CPU_TICKS=0
CHILD_TICKS=0
for round in $(seq "$ROUNDS"); do
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "$DIRECT" >"$WORK/direct-$round.txt"
    CPU_BEFORE=$(cpu)
    CHILD_BEFORE=$(child_cpu)
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "$GATEWAY" >"$WORK/gateway-$round.txt"
    CPU_TICKS=$(( CPU_TICKS + $(cpu) - CPU_BEFORE ))
    CHILD_TICKS=$(( CHILD_TICKS + $(child_cpu) - CHILD_BEFORE ))
done
RSS_WARM=$(rss VmRSS)
CHILD_WARM=$(child_rss VmRSS)
GW_RPS=$(awk '/Requests\/sec/ {print int($2)}' "$WORK/gateway-$ROUNDS.txt")
SECONDS_FOR_RSS=$(( RSS_REQUESTS / (GW_RPS > 0 ? GW_RPS : 1) + 2 ))
wrk -t2 -c"$CONNS" -d"${SECONDS_FOR_RSS}s" --latency -s "$LUA" "$GATEWAY" >"$WORK/rss.txt"
RSS_AFTER=$(rss VmRSS)
RSS_PEAK=$(rss VmHWM)
CHILD_AFTER_RSS=$(child_rss VmRSS)
CHILD_PEAK=$(child_rss VmHWM)
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
LOAD_ENDED=$(date +%s.%N)

"$PY" - "$WORK" "$CONNS" "$RSS_WARM" "$RSS_AFTER" "$RSS_PEAK" "$CPU_TICKS" \
    "$CHILD_TICKS" "$(getconf CLK_TCK)" "$CHILD_WARM" "$CHILD_AFTER_RSS" \
    "$CHILD_PEAK" "$ROUNDS" "$LOAD_ENDED" <<'PYEOF'
import re, sqlite3, sys, time
from pathlib import Path

work, conns = Path(sys.argv[1]), sys.argv[2]
warm, after, peak, cpu_ticks, child_ticks, hz, c_warm, c_after, c_peak = map(int, sys.argv[3:12])

def ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

def parse(name: str) -> dict[str, float]:
    text = (work / name).read_text()
    out = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    for pct in ("50", "99"):
        out[pct] = ms(re.search(rf"\s{pct}%\s+(\S+)", text).group(1))
    total = re.search(r"(\d+) requests in", text)
    out["requests"] = int(total.group(1)) if total else 0
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["errors"] = int(bad.group(1)) if bad else 0
    return out

rounds = int(sys.argv[12])
pairs = [(parse(f"direct-{i}.txt"), parse(f"gateway-{i}.txt")) for i in range(1, rounds + 1)]
long = parse("rss.txt")
# Every answered request is a span (+1: the check before the runs). Wait for the trace writer
# to commit them all: how long that takes after the load stopped is how far behind it was.
answered = 1 + parse("gateway-warm.txt")["requests"] + long["requests"]
answered += sum(g["requests"] for _, g in pairs)
db = sqlite3.connect(work / "gw" / "pilothouse.db")
load_ended = float(sys.argv[13])
while True:
    spans = db.execute("select count(*) from spans").fetchone()[0]
    if spans >= answered or time.time() - load_ended > 120:
        break
    time.sleep(0.2)
drained = time.time() - load_ended
overheads = sorted(
    row[0]
    for row in db.execute(
        """select json_extract(attributes, '$."pilothouse.overhead_ms"') from spans"""
    )
    if row[0] is not None
)
def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")
print("| round | direct RPS | direct p50 / p99 ms | gateway RPS | gateway p50 / p99 ms | added p50 | non-2xx |")
print("|---|---|---|---|---|---|---|")
for i, (d, g) in enumerate(pairs, 1):
    print(f"| {i} | {d['rps']:.0f} | {d['50']:.2f} / {d['99']:.2f} | {g['rps']:.0f} | {g['50']:.2f} / {g['99']:.2f} | {g['50'] - d['50']:.2f} ms | {d['errors'] + g['errors']} |")
print()
median = sorted(pairs, key=lambda p: p[1]["50"] - p[0]["50"])[len(pairs) // 2]
d, g = median
print(f"- median round (c={conns}): gateway {g['rps']:.0f} RPS against {d['rps']:.0f} direct (ratio {g['rps'] / d['rps']:.2f}), added p50 {g['50'] - d['50']:.2f} ms")
print(f"- RSS: {warm / 1024:.0f} MiB after warm-up, {after / 1024:.0f} MiB after {long['requests']} more requests (peak {peak / 1024:.0f} MiB)")
if c_peak:
    print(f"- trace writer process RSS: {c_warm / 1024:.0f} MiB after warm-up, {c_after / 1024:.0f} MiB after (peak {c_peak / 1024:.0f} MiB)")
per_call = 1e6 / hz / max(sum(g["requests"] for _, g in pairs), 1)
print(f"- CPU per proxied call (user + system): gateway process {cpu_ticks * per_call:.0f} µs, trace writer process {child_ticks * per_call:.0f} µs")
print(f"- spans persisted by the trace writer: {spans} for {answered} answered requests, all in {drained:.1f} s after the load stopped" if spans >= answered else f"- spans persisted by the trace writer: {spans} for {answered} answered requests: MISSING after {drained:.0f} s")
print(f"- gateway overhead inside the process (x-pilothouse-overhead-ms, from the spans): p50 {pct(overheads, 0.5):.3f} ms, p99 {pct(overheads, 0.99):.3f} ms")
PYEOF
