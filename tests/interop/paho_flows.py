#!/usr/bin/env python3
"""Interop check for Cauldron with an independent client: Eclipse paho-mqtt 2.x.

Runs QoS 0/1/2 publish/subscribe, retained, will and persistent-session
scenarios against a broker, in MQTT 3.1.1 or 5.0. Prints one line per
scenario and exits 0 when all pass, 1 on the first failure.

usage: paho_flows.py --host 127.0.0.1 --port 1883 --protocol 311|5
"""

import argparse
import queue
import sys
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TIMEOUT = 5.0


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class Client:
    """A paho client with its network loop in a thread and blocking helpers."""

    def __init__(self, args, client_id, persistent=False, will=None):
        self.args = args
        self.v5 = args.protocol == "5"
        self.client_id = client_id
        kwargs = {"client_id": client_id, "protocol": mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311}
        if not self.v5:
            kwargs["clean_session"] = not persistent
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, **kwargs)
        self.persistent = persistent
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present = None
        self.connect_rc = None
        if will is not None:
            topic, payload = will
            self.c.will_set(topic, payload, qos=1, retain=False)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.c.on_subscribe = lambda *_a: self.subscribed.set()

    def _on_connect(self, _client, _userdata, flags, reason_code, _properties):
        self.session_present = flags.session_present
        self.connect_rc = reason_code
        self.connected.set()

    def connect(self):
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            if self.persistent:
                props.SessionExpiryInterval = 300
            self.c.connect(self.args.host, self.args.port, keepalive=30,
                           clean_start=not self.persistent, properties=props)
        else:
            self.c.connect(self.args.host, self.args.port, keepalive=30)
        self.c.loop_start()
        check(self.connected.wait(TIMEOUT), f"{self.client_id}: no CONNACK")
        check(not self.connect_rc.is_failure, f"{self.client_id}: CONNACK {self.connect_rc}")
        return self

    def subscribe(self, topic, qos):
        self.subscribed.clear()
        self.c.subscribe(topic, qos)
        check(self.subscribed.wait(TIMEOUT), f"{self.client_id}: no SUBACK for {topic}")

    def publish(self, topic, payload, qos, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(TIMEOUT)
        check(info.is_published(), f"{self.client_id}: publish {topic} not acknowledged")

    def expect(self, topic, payload, qos=None, retain=None):
        try:
            msg = self.messages.get(timeout=TIMEOUT)
        except queue.Empty:
            raise Failure(f"{self.client_id}: no message on {topic}")
        check(msg.topic == topic, f"{self.client_id}: topic {msg.topic!r}, expected {topic!r}")
        check(msg.payload == payload, f"{self.client_id}: payload {msg.payload!r}, expected {payload!r}")
        if qos is not None:
            check(msg.qos == qos, f"{self.client_id}: QoS {msg.qos}, expected {qos}")
        if retain is not None:
            check(msg.retain == retain, f"{self.client_id}: retain {msg.retain}, expected {retain}")
        return msg

    def expect_nothing(self, wait=0.3):
        try:
            msg = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise Failure(f"{self.client_id}: unexpected message {msg.topic} {msg.payload!r}")

    def disconnect(self):
        self.c.disconnect()
        self.c.loop_stop()

    def die(self):
        """Drop the TCP connection without DISCONNECT."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            sock.close()


def unique(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


def qos_flows(args):
    sub = Client(args, unique("sub")).connect()
    sub.subscribe("interop/qos/#", 2)
    pub = Client(args, unique("pub")).connect()
    for qos in (0, 1, 2):
        pub.publish(f"interop/qos/{qos}", f"qos{qos}".encode(), qos)
        sub.expect(f"interop/qos/{qos}", f"qos{qos}".encode(), qos=qos, retain=False)
    pub.disconnect()
    sub.disconnect()


def retained(args):
    pub = Client(args, unique("retainer")).connect()
    pub.publish("interop/retained", b"kept", 1, retain=True)
    pub.disconnect()
    late = Client(args, unique("late")).connect()
    late.subscribe("interop/retained", 1)
    late.expect("interop/retained", b"kept", qos=1, retain=True)
    pub = Client(args, unique("eraser")).connect()
    pub.publish("interop/retained", b"", 1, retain=True)
    late.expect("interop/retained", b"", retain=False)
    pub.disconnect()
    later = Client(args, unique("later")).connect()
    later.subscribe("interop/retained", 1)
    later.expect_nothing()
    late.disconnect()
    later.disconnect()


def will(args):
    watcher = Client(args, unique("watcher")).connect()
    watcher.subscribe("interop/will/#", 1)
    polite = Client(args, unique("polite"), will=("interop/will/polite", b"no")).connect()
    polite.disconnect()
    rude = Client(args, unique("rude"), will=("interop/will/rude", b"gone")).connect()
    rude.die()
    watcher.expect("interop/will/rude", b"gone", qos=1)
    watcher.expect_nothing()
    watcher.disconnect()


def persistent_session(args):
    client_id = unique("persistent")
    first = Client(args, client_id, persistent=True).connect()
    check(first.session_present is False, "a new session must not be present")
    first.subscribe("interop/session", 1)
    first.disconnect()
    pub = Client(args, unique("feeder")).connect()
    pub.publish("interop/session", b"while away", 1)
    pub.disconnect()
    again = Client(args, client_id, persistent=True).connect()
    check(again.session_present is True, "session present after reconnect")
    again.expect("interop/session", b"while away", qos=1)
    again.disconnect()


SCENARIOS = [qos_flows, retained, will, persistent_session]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", choices=["311", "5"], required=True)
    args = parser.parse_args()
    for scenario in SCENARIOS:
        try:
            scenario(args)
        except Failure as e:
            print(f"FAIL MQTT {args.protocol} {scenario.__name__}: {e}")
            return 1
        print(f"ok   MQTT {args.protocol} {scenario.__name__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
