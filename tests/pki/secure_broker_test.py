#!/usr/bin/python3
"""The secure broker as deployed (issue 11 items 3 and 4): a real mosquitto with
packaging/mosquitto/cradle.conf and cradle.acl, its certificates made by cradle-pki.

1. An agent (with cradle-sim phones) and the dashboard connect with their certificates: the
   phone appears on the dashboard's API, a command from the dashboard reaches the phone and its
   result comes back (the dashboard with a $share group, as several instances would run).
2. Station A, with its own certificate in a real MQTT client, can publish its own topics but
   neither into B's nor to its own cmd, and never receives B's commands.
3. A client without a certificate, with a revoked one (revoked while the broker runs: new CRL,
   SIGHUP) or with one of another CA is refused; so is plain MQTT on the TLS port.
4. The agent, the dashboard and `cradle-agent send` refuse a broker whose certificate is of
   another CA, or names another host (the handshake happens, the MQTT CONNECT never follows):
   Paho's `verify` checks the host name.
5. No password or private key appears in any log, in `ps` or in --dump-config.
"""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "agent"))
sys.path.insert(0, os.path.join(HERE, "..", "dashboard"))
from harness import Proc, Sim, check, fail, free_port, wait_for  # noqa: E402
from common import device, udid, write_scenario  # noqa: E402

PKI = os.environ["CRADLE_PKI"]
AGENT = os.environ["CRADLE_AGENT"]
SIM = os.environ["CRADLE_SIM"]
DASH = os.environ["CRADLE_DASHBOARD"]
SRC = os.environ["CRADLE_SRC"]
DROPIN = os.path.join(SRC, "packaging", "mosquitto", "cradle.conf")
ACL = os.path.join(SRC, "packaging", "mosquitto", "cradle.acl")
PASSWORD = "pw-never-shown-7f3a9c"  # configured, ignored by the broker, must never be printed
A, B = "st-sec-a", "st-sec-b"


def pki(d, *args, ok=True):
    r = subprocess.run([PKI, "--dir", d] + list(args), capture_output=True, text=True,
                       timeout=60)
    if ok and r.returncode != 0:
        fail("cradle-pki %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr))
    return r


def mosquitto_ids():
    """(uid, gid) of Debian's mosquitto user when this runs as root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd
        pw = pwd.getpwnam("mosquitto")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return None


class SecureBroker:
    """mosquitto with the drop-in and ACL as shipped; only the paths and the port differ.
    Its files are laid out as packaging/mosquitto/README.md installs them in
    /etc/mosquitto/cradle/: as root, mosquitto drops to its user and reads the key and the ACL
    through group mosquitto (0640 in a 0750 directory), so the documented modes are tested."""

    def __init__(self, tmp, pki_dir, broker_name):
        self.dir = tempfile.mkdtemp(prefix="broker-", dir=tmp)
        self.port = free_port()
        self.pki_dir = pki_dir
        self.ids = mosquitto_ids()
        for src, dst in (("ca.pem", "ca.pem"), (broker_name + ".pem", "broker.pem"),
                         ("private/%s.key" % broker_name, "broker.key"), ("crl.pem", "crl.pem")):
            shutil.copy(os.path.join(pki_dir, src), os.path.join(self.dir, dst))
        shutil.copy(ACL, os.path.join(self.dir, "acl"))
        self.lay_out()
        with open(DROPIN) as f:
            dropin = f.read()
        check("listener 8883\n" in dropin, "the drop-in has the listener on 8883")
        dropin = dropin.replace("/etc/mosquitto/cradle/", self.dir + "/")
        dropin = dropin.replace("listener 8883\n", "listener %d 127.0.0.1\n" % self.port)
        # a listener without TLS, as an administrator might add later (global settings: the
        # drop-in's allow_anonymous false and no password file keep everybody out of it)
        self.plain_port = free_port()
        dropin += "\n# added by an administrator\nlistener %d 127.0.0.1\n" % self.plain_port
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            # what Debian's mosquitto.conf adds (persistence, log), then the drop-in as included
            f.write("persistence false\nlog_dest stderr\nlog_type all\n")
            if not self.ids:  # not root: mosquitto stays this user
                f.write("user %s\n" % pwd_name())
            f.write(dropin)
        self.proc = None

    def lay_out(self):
        """The modes of packaging/mosquitto/README.md (as root; else all this user's)."""
        if not self.ids:
            return
        os.chown(self.dir, 0, self.ids[1])
        os.chmod(self.dir, 0o750)
        for name, m in (("ca.pem", 0o644), ("crl.pem", 0o644), ("broker.pem", 0o644),
                        ("broker.key", 0o640), ("acl", 0o640)):
            os.chown(os.path.join(self.dir, name), 0, self.ids[1])
            os.chmod(os.path.join(self.dir, name), m)

    def start(self):
        self.proc = Proc("mosquitto", self.dir)
        self.proc.spawn(["mosquitto", "-c", self.conf])
        wait_for(lambda: "Opening ipv4 listen socket on port %d" % self.port in self.log() or
                 not self.proc.alive(), 10, what="mosquitto listening")
        if not self.proc.alive():
            fail("mosquitto did not start:\n" + self.log() + self.proc.stderr_text())
        return self

    def log(self):
        return self.proc.stderr_text() if self.proc else self.last_log

    last_log = ""

    def install_crl(self):
        """As the admin does after a revoke: copy the CRL, reload mosquitto."""
        shutil.copy(os.path.join(self.pki_dir, "crl.pem"), os.path.join(self.dir, "crl.pem"))
        self.lay_out()
        n = self.log().count("Reloading config")
        self.proc.signal(signal.SIGHUP)
        wait_for(lambda: self.log().count("Reloading config") > n, 10, what="mosquitto reload")

    def url(self, host="127.0.0.1"):
        return "ssl://%s:%d" % (host, self.port)

    def stop(self):
        if self.proc:
            self.last_log = self.proc.stderr_text()
            self.proc.stop()
            self.proc = None


class Client:
    """A paho MQTT 5 client with a certificate (or none); records what it receives."""

    def __init__(self, port, ca, cert=None, key=None, client_id=None):
        self.msgs = []
        self.acks = {}
        self.lock = threading.Lock()
        self.result = None
        self.done = threading.Event()
        self.c = mqtt.Client(client_id=client_id or "t-%d-%f" % (os.getpid(), time.time()),
                             protocol=mqtt.MQTTv5)
        self.c.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_publish = lambda c, u, mid: None
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = lambda c, u, rc, props=None: self.done.set()
        self.granted = {}
        try:
            self.c.connect("127.0.0.1", port, keepalive=30)
        except (ssl.SSLError, OSError) as e:
            self.result = "refused: %s" % e
            self.done.set()
            return
        self.c.loop_start()

    def _on_connect(self, c, u, flags, rc, props=None):
        self.result = "connected" if rc == 0 else "refused: %s" % rc
        self.done.set()

    def _on_subscribe(self, c, u, mid, codes, props=None):
        with self.lock:
            self.granted[mid] = [int(getattr(x, "value", x)) for x in codes]

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, bytes(m.payload)))

    def connected(self, timeout=10):
        self.done.wait(timeout)
        return self.result == "connected"

    def subscribe(self, topic):
        rc, mid = self.c.subscribe(topic, qos=1)
        check(rc == 0, "subscribe %s sent" % topic)
        return wait_for(lambda: self.granted.get(mid), 10, what="SUBACK for " + topic)[0]

    def publish(self, topic, payload, retain=False):
        """QoS 1, waits for the PUBACK (paho 1.6 does not show its reason code: the broker's
        log and the receivers tell whether it was accepted)."""
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        check(info.is_published(), "PUBACK for %s" % topic)

    def got(self, topic_filter):
        with self.lock:
            return [m for m in self.msgs if mqtt.topic_matches_sub(topic_filter, m[0])]

    def close(self):
        self.c.loop_stop()
        try:
            self.c.disconnect()
        except OSError:
            pass


def pwd_name():
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


def write_agent_conf(tmp, name, broker_url, ca, cert, key, cmd_key):
    state = os.path.join(tmp, "state-" + name)
    os.makedirs(state, exist_ok=True)
    path = os.path.join(tmp, name + ".conf")
    with open(path, "w") as f:
        f.write("agent_id %s\nbroker_url %s\nstate_dir %s\nmqtt_cafile %s\nmqtt_certfile %s\n"
                "mqtt_keyfile %s\nmqtt_username %s\nmqtt_password %s\ncommand_keys %s\n"
                "probe_interval 1m\n" %
                (name, broker_url, state, ca, cert, key, name, PASSWORD, cmd_key))
    os.chmod(path, 0o600)
    return path


def start_agent(tmp, name, conf, sim):
    p = Proc("agent-" + name, tmp)
    p.spawn([AGENT, "-c", conf], env=sim.env())
    return p


def api(dash_url, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(dash_url + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def key_lines(path):
    """The base64 body lines of a PEM private key: none may be printed anywhere."""
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("-----")]


def main():
    tmp = tempfile.mkdtemp(prefix="cradle-secure-")
    os.chmod(tmp, 0o755)
    procs = []
    brokers = []
    try:
        run(tmp, procs, brokers)
    except BaseException:
        for b in brokers:
            sys.stderr.write("--- mosquitto log (tail) ---\n" + b.log()[-4000:])
        for p in procs:
            sys.stderr.write("--- %s stderr ---\n%s\n" % (p.name, p.stderr_text()[-4000:]))
        raise
    finally:
        for p in reversed(procs):
            p.stop()
        for b in brokers:
            b.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")


def run(tmp, procs, brokers):
    # ---- the PKI, as pki/README.md does it ----
    ca = os.path.join(tmp, "pki")
    other = os.path.join(tmp, "other-pki")
    pki(ca, "init")
    pki(ca, "issue", "broker", "localhost", "127.0.0.1")
    pki(ca, "issue", "broker", "wrong.example")
    for n in (A, B):
        pki(ca, "issue", "station", n)
    pki(ca, "issue", "dashboard")
    pki(other, "init")
    pki(other, "issue", "station", A)
    pki(other, "issue", "broker", "localhost", "127.0.0.1")
    cafile = os.path.join(ca, "ca.pem")

    def cert(name, d=ca):
        return os.path.join(d, name + ".pem"), os.path.join(d, "private", name + ".key")

    broker = SecureBroker(tmp, ca, "localhost").start()
    brokers.append(broker)
    if broker.ids:
        user = subprocess.run(["ps", "-o", "user=", "-p", str(broker.proc.p.pid)],
                              capture_output=True, text=True).stdout.strip()
        check(user.startswith("mosquit"), "mosquitto dropped to its user: %r" % user)
        print("ok: mosquitto runs as its own user and reads the files with the documented modes")

    texts_extra = []

    # ---- 1. agent and dashboard with their certificates, end to end ----
    dtmp = os.path.join(tmp, "dash")
    os.makedirs(dtmp)
    dconf = os.path.join(dtmp, "dashboard.conf")
    http_port = free_port()
    dcert, dkey = cert("cradle-dashboard")
    with open(dconf, "w") as f:
        # localhost: the name in the broker's certificate (DNS); the agent uses the IP (IP SAN)
        f.write("broker_url %s\nmqtt_client_id dash-sec-%d\nmqtt_share_group cradle\n"
                "db %s/cradle.db\ncommand_key %s/command.key\nhttp_listen 127.0.0.1:%d\n"
                "mqtt_cafile %s\nmqtt_certfile %s\nmqtt_keyfile %s\nmqtt_password %s\n" %
                (broker.url("localhost"), os.getpid(), dtmp, dtmp, http_port, cafile, dcert,
                 dkey, PASSWORD))
    os.chmod(dconf, 0o600)
    r = subprocess.run([DASH, "-c", dconf, "key", "public"], capture_output=True, text=True,
                       timeout=20)
    check(r.returncode == 0, "dashboard key public: %s" % r.stderr)
    cmd_key = r.stdout.split()[-1]
    r = subprocess.run([DASH, "-c", dconf, "token", "add", "sec-op", "--role", "operator"],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "dashboard token add: %s" % r.stderr)
    token = r.stdout.strip().split()[-1]
    dash = Proc("dashboard", dtmp)
    procs.append(dash)
    dash.spawn([DASH, "-c", dconf])
    wait_for(lambda: "ingest: subscribed" in dash.stderr_text() or not dash.alive(), 30,
             what="the dashboard subscribed over TLS")
    check(dash.alive(), "the dashboard runs")
    dash_url = "http://127.0.0.1:%d" % http_port

    sim = Sim(SIM, write_scenario([device(1), device(2)])).start()
    try:
        acert, akey = cert(A)
        aconf = write_agent_conf(tmp, A, broker.url(), cafile, acert, akey, cmd_key)
        agent = start_agent(tmp, A, aconf, sim)
        procs.append(agent)
        t0 = time.monotonic()

        def phone_listed():
            st, doc = api(dash_url, "GET", "/api/v1/devices/" + udid(1), token)
            return st == 200 and doc.get("agent") == A and doc
        wait_for(phone_listed, 60, interval=0.3, what="the phone on the dashboard's API")
        print("ok: agent -> broker (mTLS, ACL) -> dashboard: phone listed after %.1fs" %
              (time.monotonic() - t0))
        st, doc = api(dash_url, "POST", "/api/v1/devices/%s/commands" % udid(1), token,
                      {"name": "device.restart"})
        check(st == 202, "POST command: %s %s" % (st, doc))
        cmd_id = doc["cmd_id"]

        def finished():
            st, d = api(dash_url, "GET", "/api/v1/commands/" + cmd_id, token)
            return st == 200 and d["status"] in ("succeeded", "failed", "rejected") and d
        cmd = wait_for(finished, 60, interval=0.3, what="the command's result")
        check(cmd["status"] == "succeeded", "command result: %s" % json.dumps(cmd))
        journal = json.dumps(sim.ctl({"op": "journal", "udid": udid(1)}))
        check("restart" in journal.lower() or "diagnostics" in journal.lower(),
              "the phone's journal shows no restart: %s" % journal[:1500])
        print("ok: a command from the dashboard reached the phone; result %s" % cmd["status"])

        # ---- 2. station A's certificate in a real MQTT client ----
        watcher = Client(broker.port, cafile, dcert, dkey)
        check(watcher.connected(), "the dashboard's identity connects: %s" % watcher.result)
        check(watcher.subscribe("cradle/v1/#") == 1, "the dashboard may read everything")
        a = Client(broker.port, cafile, acert, akey)
        check(a.connected(), "A connects with its certificate: %s" % a.result)
        print("A subscribing to B's cmd: reason %s" % a.subscribe("cradle/v1/agent/%s/cmd" % B))
        a.subscribe("cradle/v1/#")  # granted or not: the broker must deliver none of B's
        check(a.subscribe("cradle/v1/agent/%s/cmd" % A) == 1, "A may read its own cmd")
        forged = ["cradle/v1/agent/%s/status" % B, "cradle/v1/agent/%s/device/X1/state" % B,
                  "cradle/v1/agent/%s/event" % B, "cradle/v1/agent/%s/result" % B,
                  "cradle/v1/agent/%s/cmd" % B, "cradle/v1/agent/%s/cmd" % A, "cradle/v1/other"]
        for t in forged:
            a.publish(t, b'{"forged":true}')
        own = "cradle/v1/agent/%s/device/X1/event" % A
        a.publish(own, b'{"own":true}')
        # the own message came after the forged ones on the same connection: had the broker
        # accepted any of them, the dashboard's identity (reading everything) has it by now
        wait_for(lambda: watcher.got(own), 10, what="A's own message at the dashboard identity")
        check(not [m for m in watcher.got("cradle/v1/#") if b"forged" in m[1]],
              "a forged message got through: %s" %
              [m for m in watcher.got("cradle/v1/#") if b"forged" in m[1]])
        log = broker.log()
        for t in forged:
            check("Denied PUBLISH from" in log and "'%s'" % t in log,
                  "the broker's log names the denied publish to %s" % t)
        # the dashboard's identity sends B a command: B's topic only, A never sees it
        b = Client(broker.port, cafile, *cert(B))
        check(b.connected(), "B connects")
        check(b.subscribe("cradle/v1/agent/%s/cmd" % B) == 1, "B reads its cmd")
        watcher.publish("cradle/v1/agent/%s/cmd" % B, b'{"for":"b"}')
        wait_for(lambda: b.got("cradle/v1/agent/%s/cmd" % B), 10, what="B got its command")
        time.sleep(0.5)  # the same fan-out delivered B's copy: A's would have come with it
        check(not a.got("cradle/v1/agent/%s/#" % B), "A received B's messages: %s" %
              a.got("cradle/v1/agent/%s/#" % B))
        print("ok: A can publish only its own topics and reads none of B's commands")
        a.close()

        # ---- 3. refused clients ----
        for what, args in (("no certificate", ()), ("another CA's certificate",
                                                      cert(A, other))):
            r = handshake(broker.port, cafile, *args)
            check(r != "connected", "%s: connected" % what)
            print("ok: %s refused (%s)" % (what, r))
        r = handshake(broker.port, None)
        check(r != "connected", "plain MQTT on the TLS port: connected")
        print("ok: plain MQTT on the TLS port refused (%s)" % r)
        for user in (None, B):
            r = handshake(broker.plain_port, None, username=user)
            check(r != "connected", "a listener without TLS let %s in" % (user or "anonymous"))
        print("ok: a listener added without TLS lets nobody in (%s)" % r)
        # B revoked while the broker runs: the admin copies the new CRL and reloads. The
        # thief kept a copy of B's certificate and key.
        b.close()
        bcert, bkey = os.path.join(tmp, "b.pem"), os.path.join(tmp, "b.key")
        shutil.copy(cert(B)[0], bcert)
        shutil.copy(cert(B)[1], bkey)
        pki(ca, "revoke", B)
        check(not os.path.exists(cert(B)[0]) and not os.path.exists(cert(B)[1]),
              "revoke removes the certificate and its key from the PKI directory")
        broker.install_crl()
        check(handshake(broker.port, cafile, *cert(A)) == "connected",
              "control: A's certificate still connects after the reload")
        r = handshake(broker.port, cafile, bcert, bkey)
        check(r != "connected", "a revoked certificate connected")
        print("ok: revoked certificate refused after revoke + CRL + SIGHUP (%s)" % r)
        watcher.close()

        # ---- 4. the agent refuses a broker of another CA, or for another host ----
        def send(url):
            """cradle-agent send with the dashboard's certificate, unsigned: A's agent rejects
            it (exit 1) once it arrives; exit 2 is a broker that could not be reached."""
            r = subprocess.run([AGENT, "send", "--broker", url, "--agent", A, "--udid", udid(1),
                                "--cafile", cafile, "--cert", dcert, "--key", dkey,
                                "--timeout", "15", "device.refresh"],
                               capture_output=True, text=True, timeout=60)
            texts_extra.append(r.stdout + r.stderr)
            return r.returncode, r.stdout + r.stderr
        rc, err = send(broker.url())
        check(rc == 1 and "rejected" in err, "control: send over TLS: exit %d %s" % (rc, err))
        for what, pdir, name in (("another CA", other, "localhost"),
                                 ("another host name", ca, "wrong.example")):
            rogue = SecureBroker(tmp, pdir, name).start()
            brokers.append(rogue)
            conf = write_agent_conf(tmp, A + "-r", rogue.url(), cafile, acert, akey, cmd_key)
            with open(conf) as f:
                text = f.read().replace("agent_id %s-r\n" % A, "agent_id %s\n" % A)
            with open(conf, "w") as f:
                f.write(text)
            p = start_agent(tmp, A + "-r", conf, sim)
            procs.append(p)
            # the dashboard too, with its own database, at this broker by host name
            rtmp = tempfile.mkdtemp(prefix="dash-r-", dir=tmp)
            with open(dconf) as f:
                text = f.read().replace(broker.url("localhost"), rogue.url("localhost"))
            text = text.replace("%s/cradle.db" % dtmp, "%s/cradle.db" % rtmp)
            text = text.replace("127.0.0.1:%d" % http_port, "127.0.0.1:%d" % free_port())
            rconf = os.path.join(rtmp, "dashboard.conf")
            with open(rconf, "w") as f:
                f.write(text)
            rd = Proc("dashboard-r", rtmp)
            procs.append(rd)
            rd.spawn([DASH, "-c", rconf])
            wait_for(lambda: rogue.log().count("New connection from") >= 4, 30,
                     what="%s: the agent and the dashboard tried" % what)
            check(p.alive(), "%s: the agent keeps running" % what)
            check(rd.alive() and "connected to" not in rd.stderr_text(),
                  "%s: the dashboard connected or died:\n%s" % (what, rd.stderr_text()))
            if pdir == other:  # OpenSSL's reason, not only Paho's "TCP/TLS connect failure"
                wait_for(lambda: "TLS: certificate verify failed" in rd.stderr_text(), 20,
                         what="%s: the dashboard's log giving OpenSSL's reason" % what)
            rd.stop()
            procs.remove(rd)
            check("as %s" % A not in rogue.log() and "connected to" not in p.stderr_text(),
                  "%s: the agent sent its CONNECT:\n%s" % (what, rogue.log()[-2000:]))
            rc, err = send(rogue.url())
            check(rc == 2, "%s: cradle-agent send got through: exit %d %s" % (what, rc, err))
            check("New client connected" not in rogue.log(),
                  "%s: a client sent its CONNECT:\n%s" % (what, rogue.log()[-2000:]))
            why = [ln for ln in p.stderr_text().splitlines() if "cannot connect" in ln][-1:]
            print("ok: the agent, the dashboard and cradle-agent send refuse a broker with %s "
                  "(%s)" % (what, why))
            p.stop()
            procs.remove(p)
            rogue.stop()

        # ---- 5. no secret anywhere ----
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        dump = subprocess.run([AGENT, "-c", aconf, "--dump-config"], capture_output=True,
                              text=True, timeout=20)
        check(dump.returncode == 0, "agent --dump-config: %s" % dump.stderr)
        ddump = subprocess.run([DASH, "-c", dconf, "--dump-config"], capture_output=True,
                               text=True, timeout=20)
        check(ddump.returncode == 0, "dashboard --dump-config: %s" % ddump.stderr)
        texts = {"ps": ps, "agent --dump-config": dump.stdout + dump.stderr,
                 "dashboard --dump-config": ddump.stdout + ddump.stderr,
                 "mosquitto log": broker.log()}
        for p in procs:
            if p is not None:
                texts[p.name + " log"] = p.stderr_text()
        texts["cradle-agent send"] = "\n".join(texts_extra)
        secrets = [PASSWORD]
        for k in (akey, dkey, os.path.join(ca, "private", "ca.key"),
                  os.path.join(broker.dir, "broker.key")):
            secrets += key_lines(k)
        for name, text in texts.items():
            for s in secrets:
                check(s not in text, "a secret (%s...) appears in %s" % (s[:6], name))
        check("mqtt_keyfile" in dump.stdout, "--dump-config lists mqtt_keyfile (as a path)")
        print("ok: no password or key in %s" % ", ".join(sorted(texts)))
    finally:
        sim.stop()


def handshake(port, ca, cert=None, key=None, username=None):
    """TLS (ca None: plain TCP) and an MQTT 3.1.1 CONNECT by hand: "connected" only for a
    CONNACK that accepts, else what went wrong. Synchronous, so a refusal is seen at once."""
    payload = b"\x00\x04prob"
    flags = 0x02
    if username:
        payload += len(username).to_bytes(2, "big") + username.encode()
        flags |= 0x80
    body = b"\x00\x04MQTT" + bytes([4, flags, 0, 30]) + payload
    connect = bytes([0x10, len(body)]) + body
    try:
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.settimeout(5)
        if ca:
            ctx = ssl.create_default_context(cafile=ca)
            if cert:
                ctx.load_cert_chain(cert, key)
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(connect)
        ack = s.recv(4)
        s.close()
    except (OSError, ssl.SSLError) as e:
        return "refused: %s" % e
    if ack == bytes([0x20, 2, 0, 0]):
        return "connected"
    return "refused: %r" % ack

if __name__ == "__main__":
    main()
