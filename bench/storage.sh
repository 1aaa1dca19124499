#!/usr/bin/env bash
# Durable storage benchmarks against Mosquitto with persistence, on loopback:
#
#  1. QoS 1 and QoS 2 throughput to a persistent session (fan-in: 8 publishers ->
#     1 subscriber with Clean Session 0) for Cauldron with each fsync policy
#     (group, always, periodic) and the memory store, and Mosquitto
#     (persistence true, which snapshots every autosave_interval and at exit).
#  2. Restart time with --retained retained messages and --sessions persistent
#     sessions: populate, SIGTERM, start again, and time from the start of the
#     process until a client receives the last retained message (state loaded and
#     serving).
#
#   bench/storage.sh                      # 100000 retained, 10000 sessions, 3 rounds
#   bench/storage.sh --quick              # 20000 retained, 2000 sessions, 1 round
#   bench/storage.sh --no-build           # reuse the release binaries
#
# Results: a table on stdout, bench/results/storage-<stamp>.jsonl (+ compare JSON).
set -euo pipefail

BUILD=1
ROUNDS=3
RETAINED=100000
SESSIONS=10000
MESSAGES=2000
for arg in "$@"; do
    case "$arg" in
        --quick) ROUNDS=1; RETAINED=20000; SESSIONS=2000; MESSAGES=1000 ;;
        --no-build) BUILD=0 ;;
        --rounds=*) ROUNDS="${arg#--rounds=}" ;;
        --retained=*) RETAINED="${arg#--retained=}" ;;
        --sessions=*) SESSIONS="${arg#--sessions=}" ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release"
MOSQUITTO="${MOSQUITTO:-/usr/sbin/mosquitto}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/bench/results"
RUNS="$OUT/storage-$STAMP.jsonl"
WORK="$(mktemp -d -t cauldron-storage.XXXXXX)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || true

if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p cauldron -p integration --bin cauldron --bin mqtt-load)
fi
LOAD="$BIN/mqtt-load"
CAULDRON="$BIN/cauldron"
command -v mosquitto_sub >/dev/null || { echo "needs mosquitto_sub (mosquitto-clients)" >&2; exit 1; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh" # wait_port (its configs are its own)

# launch NAME CMD...: a background broker, its pid in PID_<NAME>.
launch() {
    local name="$1"
    shift
    "$@" >>"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    printf -v "PID_${name//-/_}" '%s' "$!"
}

# stop NAME: SIGTERM and wait.
stop() {
    local var="PID_${1//-/_}"
    kill -TERM "${!var}" 2>/dev/null || true
    wait "${!var}" 2>/dev/null || true
}

cauldron_conf() { # PORT BACKEND FSYNC
    cat <<CONF
[[listeners]]
name = "bench"
bind = "127.0.0.1:$1"

[limits]
max_inflight_messages = 100
max_queued_messages = 100000
max_connections = 100000

[mqtt]
max_retained_messages = 0

[sys]
enabled = false

[storage]
backend = "$2"
fsync = "$3"
dir = "data-$1"
CONF
}

mosquitto_conf() { # PORT
    mkdir -p "$WORK/mosq-$1"
    # Mosquitto started as root drops to the "mosquitto" user.
    chown mosquitto "$WORK/mosq-$1" 2>/dev/null || true
    cat <<CONF
listener $1 127.0.0.1
allow_anonymous true
persistence true
persistence_location $WORK/mosq-$1/
max_inflight_messages 100
max_queued_messages 100000
set_tcp_nodelay true
log_dest stderr
log_type error
CONF
}
chmod 755 "$WORK"

# --- 1. throughput to a persistent session -------------------------------------------
echo "## QoS 1/2 fan-in to a persistent session ($ROUNDS round(s))"
BROKERS=("cauldron-group 18871" "cauldron-always 18872" "cauldron-periodic 18873"
    "cauldron-memory 18874" "mosquitto 18870")
cauldron_conf 18871 redb group >"$WORK/c-group.toml"
cauldron_conf 18872 redb always >"$WORK/c-always.toml"
cauldron_conf 18873 redb periodic >"$WORK/c-periodic.toml"
cauldron_conf 18874 memory group >"$WORK/c-memory.toml"
mosquitto_conf 18870 >"$WORK/mosquitto.conf"
launch cauldron-group "$CAULDRON" --config "$WORK/c-group.toml"
launch cauldron-always "$CAULDRON" --config "$WORK/c-always.toml"
launch cauldron-periodic "$CAULDRON" --config "$WORK/c-periodic.toml"
launch cauldron-memory "$CAULDRON" --config "$WORK/c-memory.toml"
launch mosquitto "$MOSQUITTO" -c "$WORK/mosquitto.conf"
for p in 18870 18871 18872 18873 18874; do wait_port "$p" 300; done
for round in $(seq "$ROUNDS"); do
    for qos in 1 2; do
        for b in "${BROKERS[@]}"; do
            read -r name port <<<"$b"
            n=$MESSAGES
            # one fsync per write: fewer messages, the rate is what counts
            [ "$name" = cauldron-always ] && n=$((MESSAGES / 8))
            "$LOAD" fan-in --addr "127.0.0.1:$port" --broker "$name" --qos "$qos" \
                --payload 64 --publishers 8 --subscribers 1 --messages "$n" \
                --clean-session false --name "durable fan-in q$qos 8x1" --json "$RUNS" >/dev/null
        done
    done
    echo "round $round done"
done
"$LOAD" compare --input "$RUNS" --baseline cauldron-group --json "$OUT/storage-$STAMP.json"
for b in "${BROKERS[@]}"; do
    read -r name _ <<<"$b"
    stop "$name"
done

# --- 2. restart time -------------------------------------------------------------------
echo
echo "## Restart with $RETAINED retained messages and $SESSIONS persistent sessions"
last="ml/populate/r/$((RETAINED - 1))"
for b in "cauldron 18881" "mosquitto 18880"; do
    read -r name port <<<"$b"
    if [ "$name" = cauldron ]; then
        cauldron_conf "$port" redb group >"$WORK/restart.toml"
        cmd=("$CAULDRON" --config "$WORK/restart.toml")
        data="$WORK/data-$port"
    else
        mosquitto_conf "$port" >"$WORK/restart.conf"
        cmd=("$MOSQUITTO" -c "$WORK/restart.conf")
        data="$WORK/mosq-$port"
    fi
    launch "$name-fill" "${cmd[@]}"
    wait_port "$port" 300
    t0=$(date +%s%N)
    "$LOAD" populate --addr "127.0.0.1:$port" --broker "$name" --messages "$RETAINED" \
        --connections "$SESSIONS" --concurrency 50 --payload 64 >/dev/null
    fill_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    stop "$name-fill"
    disk=$(du -sk "$data" | awk '{print $1}')
    for r in $(seq "$ROUNDS"); do
        t0=$(date +%s%N)
        launch "$name-r$r" "${cmd[@]}"
        wait_port "$port" 300
        mosquitto_sub -h 127.0.0.1 -p "$port" -t "$last" -C 1 -W 120 >/dev/null
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        var="PID_${name}_r$r"
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/${!var}/status")
        echo "$name: populated in ${fill_ms} ms, ${disk} KiB on disk; restart $r: ${ms} ms until the last retained message arrives, RSS ${rss} KiB"
        echo "{\"bench\":\"restart\",\"broker\":\"$name\",\"retained\":$RETAINED,\"sessions\":$SESSIONS,\"populate_ms\":$fill_ms,\"disk_kib\":$disk,\"restart_ms\":$ms,\"rss_kib\":$rss}" >>"$RUNS"
        stop "$name-r$r"
    done
    grep -h "durable state loaded" "$WORK/$name"-r*.log 2>/dev/null | tail -n 1 || true
done
echo "raw results: $RUNS"
