# Shared by the bench scripts (sourced): waiting for a broker's port, and the configs
# that give Mosquitto and Cauldron comparable settings: 100 outbound QoS 1/2 messages in
# flight per client, 1000 queued per client, TCP_NODELAY, no persistence, no $SYS.
# The auth and plugin variants read $WORK (the password files) and $WASM (the plugin).

# wait_port PORT [TENTHS]: until something listens on 127.0.0.1:PORT (TENTHS x 0.1 s, 10 s
# by default).
wait_port() {
    for _ in $(seq "${2:-100}"); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

mosquitto_conf() { # PORT [auth]
    cat <<EOF
listener $1 127.0.0.1
persistence false
max_inflight_messages 100
max_queued_messages 1000
set_tcp_nodelay true
log_dest stderr
log_type error
EOF
    if [ "${2:-}" = auth ]; then
        echo "allow_anonymous false"
        echo "password_file $WORK/mosquitto.passwd"
    else
        echo "allow_anonymous true"
    fi
}

cauldron_conf() { # PORT [auth|plugin]
    cat <<EOF
[[listeners]]
name = "bench"
bind = "127.0.0.1:$1"

[limits]
max_inflight_messages = 100
max_queued_messages = 1000
# Mosquitto has no connection limit by default; the full run holds 10000 idle clients.
max_connections = 100000

[sys]
enabled = false

# Like Mosquitto's "persistence false" above (bench/storage.sh measures the store).
[storage]
backend = "memory"
EOF
    case "${2:-}" in
        auth) printf '\n[auth]\nallow_anonymous = false\n\n[auth.password_file]\npath = "%s"\n' "$WORK/cauldron.passwd" ;;
        plugin) printf '\n[[plugins]]\nname = "passthrough"\npath = "%s"\n' "$WASM" ;;
    esac
}

# rumqttd: the same window (100 in flight) on a v4 (MQTT 3.1.1) listener.
rumqttd_conf() { # PORT
    cat <<EOF
id = 0

[router]
id = 0
max_connections = 20010
max_outgoing_packet_count = 100
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:$1"
next_connection_delay_ms = 0

[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 100
dynamic_filters = true
EOF
}
