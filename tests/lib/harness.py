"""Integration-test harness: real processes on loopback, cleaned up on exit.

    from harness import Broker, Sim, Agent, Collector, wait_for
    with Broker() as broker, Sim(sim_bin, scenario) as sim:
        col = Collector(broker.port, "cradle/v1/#")
        with Agent(agent_bin, broker, sim, agent_id="st-1") as agent:
            msg = wait_for(lambda: col.last("cradle/v1/agent/st-1/status"), 5)

Everything is bounded in time: wait_for() raises TimeoutError, processes are terminated (then
killed) when their context ends, temporary directories are removed. Only Debian's
/usr/bin/python3 with python3-paho-mqtt and python3-jsonschema is assumed.
"""
import atexit
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(fn, timeout, interval=0.05, what="condition"):
    """Polls fn() until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


class Proc:
    """A child process with its output in files under a temporary directory."""

    def __init__(self, name, tmp):
        self.name = name
        self.tmp = tmp
        self.p = None
        self.out_path = os.path.join(tmp, name + ".out")
        self.err_path = os.path.join(tmp, name + ".err")

    def spawn(self, argv, env=None):
        self.out = open(self.out_path, "ab")
        self.err = open(self.err_path, "ab")
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=self.err,
                                  env=env or os.environ.copy(), stdin=subprocess.DEVNULL)
        return self.p

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, wait, then SIGKILL. Returns the exit status."""
        if self.p is None:
            return None
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for f in (self.out, self.err):
            f.close()
        return self.p.returncode

    def kill9(self):
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for f in (self.out, self.err):
            f.close()

    def stderr_text(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class Broker:
    """A private mosquitto on a free loopback port."""

    def __init__(self, port=None, extra=""):
        """extra: more mosquitto.conf lines (an acl_file, a second listener...)."""
        self.tmp = tempfile.mkdtemp(prefix="cradle-broker-")
        self.port = port or free_port()
        self.extra = extra
        self.proc = None

    def start(self):
        conf = os.path.join(self.tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    "persistence_location %s/\nautosave_interval 1\n" % (self.port, self.tmp))
            f.write(self.extra)
        self.proc = Proc("mosquitto", self.tmp)
        self.proc.spawn(["mosquitto", "-c", conf])
        wait_for(self._accepting, 10, what="mosquitto on port %d" % self.port)
        return self

    def _accepting(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def url(self):
        return "tcp://127.0.0.1:%d" % self.port

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Sim:
    """cradle-sim with a control socket; usbmuxd on a free TCP port (survives restarts)."""

    def __init__(self, sim_bin, scenario=None, extra=(), port=None):
        self.bin = sim_bin
        self.scenario = scenario
        self.extra = list(extra)
        self.tmp = tempfile.mkdtemp(prefix="cradle-sim-")
        self.control = os.path.join(self.tmp, "control")
        self.port = port or free_port()
        self.proc = None

    @property
    def mux(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        argv = [self.bin, "--listen", self.mux, "--control", "unix:" + self.control]
        if self.scenario:
            argv += ["--scenario", self.scenario]
        argv += self.extra
        self.proc = Proc("sim", self.tmp)
        # the output file is appended to across restarts: only a "ready" of this run counts
        try:
            skip = os.path.getsize(self.proc.out_path)
        except OSError:
            skip = 0
        self.proc.spawn(argv)
        wait_for(lambda: b"ready" in open(self.proc.out_path, "rb").read()[skip:] or
                 not self.proc.alive(), 15, what="cradle-sim ready")
        if not self.proc.alive():
            raise RuntimeError("cradle-sim exited: " + self.proc.stderr_text())
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def ctl(self, req):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.control)
        f = s.makefile("rwb")
        f.write(json.dumps(req).encode() + b"\n")
        f.flush()
        line = f.readline()
        s.close()
        return json.loads(line)

    def env(self):
        e = os.environ.copy()
        e["USBMUXD_SOCKET_ADDRESS"] = self.mux
        return e

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class SigningKey:
    """An Ed25519 command signing key pair made by `openssl genpkey` (proto/cmdsig.h).

    path: the PEM private key (for `cradle-agent send --sign-key`); public: the base64 raw
    public key (for the agent's command_keys); key_id: the derived key id."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="cradle-key-")
        self.path = os.path.join(self.tmp, "cmd.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", self.path],
                       check=True, capture_output=True, timeout=30)
        self.pub_path = os.path.join(self.tmp, "cmd.pub.pem")
        subprocess.run(["openssl", "pkey", "-in", self.path, "-pubout", "-out", self.pub_path],
                       check=True, capture_output=True, timeout=30)
        der = subprocess.run(["openssl", "pkey", "-pubin", "-in", self.pub_path, "-outform",
                              "DER"], check=True, capture_output=True, timeout=30).stdout
        raw = der[-32:]  # the DER SubjectPublicKeyInfo ends with the raw 32-byte key
        self.public = base64.b64encode(raw).decode()
        self.key_id = hashlib.sha256(raw).digest()[:8].hex()
        atexit.register(shutil.rmtree, self.tmp, True)

    def sign(self, payload):
        """The base64 Ed25519 signature of payload (bytes or str), as cradle-sig carries it."""
        if isinstance(payload, str):
            payload = payload.encode()
        # Ed25519 is one-shot: openssl wants the message in a file it can size
        with tempfile.NamedTemporaryFile(dir=self.tmp) as f:
            f.write(payload)
            f.flush()
            r = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", self.path,
                                "-in", f.name], check=True, capture_output=True, timeout=30)
        return base64.b64encode(r.stdout).decode()

    def verify(self, payload, sig_b64):
        """Whether sig_b64 is this key's signature of payload (bytes), checked by openssl."""
        with tempfile.NamedTemporaryFile(dir=self.tmp) as f, \
                tempfile.NamedTemporaryFile(dir=self.tmp) as s:
            f.write(payload)
            f.flush()
            s.write(base64.b64decode(sig_b64))
            s.flush()
            r = subprocess.run(["openssl", "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey",
                                self.pub_path, "-in", f.name, "-sigfile", s.name],
                               capture_output=True, timeout=30)
        return r.returncode == 0

    def user_properties(self, payload, key_id=None):
        """The MQTT 5 user properties of a command signed by this key (key_id: claim another)."""
        return [("cradle-sig", self.sign(payload)), ("cradle-key-id", key_id or self.key_id)]


_default_key = None


def signing_key():
    """The key pair of this test run: agents trust it by default, senders sign with it."""
    global _default_key
    if _default_key is None:
        _default_key = SigningKey()
    return _default_key


def sign_args():
    """The `cradle-agent send` options that sign with this run's key."""
    return ["--sign-key", signing_key().path]


class Agent:
    """cradle-agent daemon with a generated config; state_dir persists across restart().

    The agent trusts this run's signing_key() unless extra_conf sets command_keys itself."""

    def __init__(self, agent_bin, broker, sim, agent_id="test-agent-1", extra_conf="",
                 state_dir=None):
        self.bin = agent_bin
        self.broker = broker
        self.sim = sim
        self.agent_id = agent_id
        self.tmp = tempfile.mkdtemp(prefix="cradle-agent-")
        self.state_dir = state_dir or os.path.join(self.tmp, "state")
        os.makedirs(self.state_dir, exist_ok=True)
        self.conf = os.path.join(self.tmp, "agent.conf")
        if "command_keys" not in extra_conf:
            extra_conf = "command_keys %s\n%s" % (signing_key().public, extra_conf)
        with open(self.conf, "w") as f:
            f.write("agent_id %s\nbroker_url %s\nstate_dir %s\n%s" %
                    (agent_id, broker.url(), self.state_dir, extra_conf))
        self.proc = None

    def start(self):
        self.proc = Proc("agent", self.tmp)
        self.proc.spawn([self.bin, "-c", self.conf], env=self.sim.env())
        return self

    def restart(self):
        self.stop()
        return self.start()

    def stop(self):
        rc = None
        if self.proc:
            rc = self.proc.stop()
            self.proc = None
        return rc

    def kill9(self):
        if self.proc:
            self.proc.kill9()
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and exc[0] is not None:
            sys.stderr.write("--- agent stderr ---\n" + self.proc.stderr_text()[-8000:])
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Collector:
    """Subscribes (MQTT 5) and records every message: (topic, payload bytes, retain, t)."""

    def __init__(self, port, topic="cradle/v1/#", client_id=None, persistent=False):
        """persistent: a broker session that outlives disconnects (and a broker restart with
        persistence), so nothing published while the collector reconnects is missed."""
        from paho.mqtt.properties import Properties
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id=client_id or "collector-%d" % os.getpid(),
                             protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.connected = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, props=None: (c.subscribe(topic, qos=1),
                                                              self.connected.set())
        self.c.reconnect_delay_set(0.2, 1)
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        self.c.connect("127.0.0.1", port, clean_start=not persistent, properties=props)
        self.c.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("collector could not connect")

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, bytes(m.payload), bool(m.retain), time.monotonic()))

    def all(self, topic_filter=None):
        with self.lock:
            return [m for m in self.msgs if topic_filter is None or mqtt.topic_matches_sub(
                topic_filter, m[0])]

    def json(self, topic_filter=None):
        out = []
        for t, p, r, ts in self.all(topic_filter):
            if p:
                out.append((t, json.loads(p), r, ts))
        return out

    def last(self, topic):
        msgs = self.json(topic)
        return msgs[-1][1] if msgs else None

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def validate_messages(validate_py, schema_dir, messages):
    """Validates every JSON message against the schema named by its `schema` field."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for m in messages:
            f.write(json.dumps(m) + "\n")
        path = f.name
    try:
        r = subprocess.run(["/usr/bin/python3", validate_py, schema_dir, path],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            fail("schema validation failed:\n" + r.stdout + r.stderr)
    finally:
        os.unlink(path)
