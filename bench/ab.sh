#!/usr/bin/env bash
# A/B runs of one mqtt-load case against several broker builds (and Mosquitto), each
# broker started fresh for every run, in turn, round after round; prints the median
# rate, p50 and p99 per broker. For measuring one change: the run-to-run spread on a
# shared machine is wide, so use 10-20 rounds. Settings as in bench/compare.sh.
#
#   bench/ab.sh [--rounds=N] BROKER... -- MQTT-LOAD-ARGUMENTS
#
# BROKER is the path of a cauldron binary, "mosquitto" or "rumqttd" (on PATH). Example:
#   bench/ab.sh --rounds=20 /tmp/cauldron-before target/release/cauldron mosquitto -- \
#       p2p --qos 1 --payload 65536 --publishers 4 --rate 500 --messages 1000
# Raw runs (one JSON line each, the broker's name added): bench/results/ab-<stamp>.jsonl
set -euo pipefail

ROUNDS=10
BROKERS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds=*) ROUNDS="${1#--rounds=}"; shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) BROKERS+=("$1"); shift ;;
    esac
done
if [ ${#BROKERS[@]} -eq 0 ] || [ $# -eq 0 ]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOAD="${CARGO_TARGET_DIR:-$ROOT/target}/release/mqtt-load"
MOSQUITTO="${MOSQUITTO:-/usr/sbin/mosquitto}"
[ -x "$LOAD" ] || { echo "no $LOAD: cargo build --release -p integration --bin mqtt-load" >&2; exit 1; }
mkdir -p "$ROOT/bench/results"
RUNS="$ROOT/bench/results/ab-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
WORK="$(mktemp -d -t cauldron-ab.XXXXXX)"
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh" # wait_port, mosquitto_conf, cauldron_conf, rumqttd_conf
PORT=18931
mosquitto_conf "$PORT" >"$WORK/mosquitto.conf"
cauldron_conf "$PORT" >"$WORK/cauldron.toml"
rumqttd_conf "$PORT" >"$WORK/rumqttd.toml"

for round in $(seq "$ROUNDS"); do
    for broker in "${BROKERS[@]}"; do
        if [ "$broker" = mosquitto ]; then
            "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/broker.log" 2>&1 &
        elif [ "$broker" = rumqttd ]; then
            rumqttd --config "$WORK/rumqttd.toml" >"$WORK/broker.log" 2>&1 &
        else
            RUST_LOG=warn "$broker" --config "$WORK/cauldron.toml" >"$WORK/broker.log" 2>&1 &
        fi
        PID=$!
        wait_port "$PORT" || { cat "$WORK/broker.log" >&2; exit 1; }
        rm -f "$WORK/run.json"
        "$LOAD" "$@" --addr "127.0.0.1:$PORT" --json "$WORK/run.json" >/dev/null
        kill "$PID"
        wait "$PID" 2>/dev/null || true
        PID=""
        python3 - "$broker" "$WORK/run.json" >>"$RUNS" <<'PY'
import json, sys
run = json.loads(open(sys.argv[2]).readline())
run["ab_broker"] = sys.argv[1]
print(json.dumps(run))
PY
    done
    echo "round $round/$ROUNDS done" >&2
done

python3 - "$RUNS" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    run = json.loads(line)
    runs.setdefault(run["ab_broker"], []).append(run)
print("| broker | runs | msg/s | p50 ms | p99 ms | p99 min-max ms |")
print("|---|---:|---:|---:|---:|---|")
for broker, rs in runs.items():
    lat = [r.get("latency") or {} for r in rs]
    p50 = [l["p50_us"] / 1000 for l in lat if "p50_us" in l]
    p99 = [l["p99_us"] / 1000 for l in lat if "p99_us" in l]
    med = lambda xs: f"{statistics.median(xs):.3g}" if xs else "-"
    spread = f"{min(p99):.3g}-{max(p99):.3g}" if p99 else "-"
    rate = statistics.median(r.get("rate", 0) for r in rs)
    print(f"| {broker} | {len(rs)} | {rate:.0f} | {med(p50)} | {med(p99)} | {spread} |")
print(f"raw runs: {sys.argv[1]}", file=sys.stderr)
PY
