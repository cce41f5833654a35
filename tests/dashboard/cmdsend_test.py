"""cmdsend against a real mosquitto: the dashboard's command sender, driven by cmdsend_driver.

Checks that the signing key is created on first use (mode 0600) and kept afterwards; that a
command goes out at QoS 1, not retained, with message expiry, correlation data = cmd_id, the
agent's result topic as response topic, and a cradle-sig signature that openssl verifies with
the key's public half under the right key id; that with the broker gone a submit is refused at
once (-ENOTCONN) rather than promised; and that the sender reconnects by itself once the broker
is back.
"""
import base64
import hashlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Broker, check, fail, wait_for  # noqa: E402

DRIVER = os.environ["CRADLE_CMDSEND_DRIVER"]
ENOTCONN = 107


class Driver:
    def __init__(self, broker, key):
        self.p = subprocess.Popen([DRIVER, broker.url(), key], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.err = []
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        check(self.line() == "ready", "driver not ready: %s" % "".join(self.err))

    @staticmethod
    def _read(f, q):
        for line in f:
            q.put(line.strip())

    def _read_err(self):
        for line in self.p.stderr:
            self.err.append(line)

    def line(self, timeout=10):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            fail("driver gave no answer; stderr:\n" + "".join(self.err)[-3000:])

    def send(self, agent, udid, name, ttl=120):
        self.p.stdin.write("send %s %s %s %d\n" % (agent, udid, name, ttl))
        self.p.stdin.flush()
        return self.line()

    def quit(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        rc = self.p.wait(timeout=20)
        check(rc == 0, "driver exited %s: %s" % (rc, "".join(self.err)[-3000:]))


class Listener:
    """Records every command message with its MQTT 5 properties; resubscribes on reconnect."""

    def __init__(self, port):
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id="cmdsend-listener-%d" % os.getpid(),
                             protocol=mqtt.MQTTv5)
        self.subscribed = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, props=None: c.subscribe("cradle/v1/agent/+/cmd",
                                                                        qos=1)
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(0.2, 1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        check(self.subscribed.wait(10), "listener could not subscribe")

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append(m)

    def find(self, cmd_id):
        with self.lock:
            for m in self.msgs:
                if json.loads(m.payload).get("cmd_id") == cmd_id:
                    return m
        return None

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def public_key(tmp, key):
    pub = os.path.join(tmp, "pub.pem")
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True,
                   capture_output=True, timeout=30)
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pub, "-outform", "DER"],
                         check=True, capture_output=True, timeout=30).stdout
    return pub, der[-32:]


def verify(tmp, pub, payload, sig_b64):
    msg, sig = os.path.join(tmp, "msg"), os.path.join(tmp, "sig")
    with open(msg, "wb") as f:
        f.write(payload)
    with open(sig, "wb") as f:
        f.write(base64.b64decode(sig_b64))
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", pub,
                        "-in", msg, "-sigfile", sig], capture_output=True, timeout=30)
    return r.returncode == 0


def send_when_connected(drv, agent, udid, name, timeout=30):
    out = [None]

    def sent():
        line = drv.send(agent, udid, name)
        if line.startswith("sent "):
            out[0] = line.split()[1]
            return True
        check(line == "error -%d" % ENOTCONN, "submit: %s" % line)
        return False

    wait_for(sent, timeout, interval=0.2, what="cmdsend to accept a command")
    return out[0]


def check_message(tmp, listener, cmd_id, agent, pub, raw):
    wait_for(lambda: listener.find(cmd_id) is not None, 20, what="command %s on the broker"
             % cmd_id)
    m = listener.find(cmd_id)
    check(m.topic == "cradle/v1/agent/%s/cmd" % agent, "topic %s" % m.topic)
    check(not m.retain and m.qos == 1, "retain %s qos %s" % (m.retain, m.qos))
    doc = json.loads(m.payload)
    check(doc["schema"] == "cradle.command.v1" and doc["agent"] == agent, "payload %s" % doc)
    p = m.properties
    check(100 <= getattr(p, "MessageExpiryInterval", 0) <= 120,
          "message expiry %s" % getattr(p, "MessageExpiryInterval", None))
    check(getattr(p, "CorrelationData", b"") == cmd_id.encode(), "correlation data")
    check(getattr(p, "ResponseTopic", "") == "cradle/v1/agent/%s/result" % agent,
          "response topic")
    props = dict(getattr(p, "UserProperty", []))
    check(props.get("cradle-key-id") == hashlib.sha256(raw).digest()[:8].hex(),
          "key id %s" % props)
    check(verify(tmp, pub, m.payload, props.get("cradle-sig", "")),
          "the signature does not verify with the dashboard's public key")


def main():
    tmp = tempfile.mkdtemp(prefix="cradle-cmdsend-test-")
    key = os.path.join(tmp, "keys", "command.key")
    broker = Broker().start()
    listener = Listener(broker.port)
    drv = Driver(broker, key)
    try:
        check(os.stat(key).st_mode & 0o777 == 0o600, "key mode %o" % os.stat(key).st_mode)
        pub, raw = public_key(tmp, key)
        udid = "00008110-001A2B3C4D5E801E"
        cmd_id = send_when_connected(drv, "st-one", udid, "device.refresh")
        check_message(tmp, listener, cmd_id, "st-one", pub, raw)

        # broker gone: refused at once; back: reconnects by itself
        listener.subscribed.clear()
        broker.stop()
        wait_for(lambda: drv.send("st-one", udid, "device.refresh") == "error -%d" % ENOTCONN,
                 20, interval=0.2, what="cmdsend to notice the broker is gone")
        broker.start()
        check(listener.subscribed.wait(30), "the listener did not subscribe again")
        cmd_id = send_when_connected(drv, "st-two", udid, "device.restart", timeout=60)
        check_message(tmp, listener, cmd_id, "st-two", pub, raw)
        drv.quit()

        # the key is kept, not made again
        drv = Driver(broker, key)
        check(public_key(tmp, key)[1] == raw, "the key changed on the second start")
        drv.quit()
    except BaseException:
        sys.stderr.write("--- driver stderr ---\n%s\n" % "".join(drv.err)[-5000:])
        raise
    finally:
        if drv.p.poll() is None:
            drv.p.kill()
        listener.close()
        broker.stop()
    print("cmdsend_test: ok")


if __name__ == "__main__":
    main()
