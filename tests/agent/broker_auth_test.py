#!/usr/bin/python3
"""TLS and authorisation mistakes are reported, not bitten by (issue 8 item 11).

1. Not authorized (0x87): the broker's ACL lets the agent read but not publish (as when agent_id
   differs from the certificate's CN). Before: each refused record was dropped "for good". Now
   the agent keeps it, logs an error naming the likely cause, and backs off; once the ACL is
   fixed (SIGHUP reloads it) the phone's state arrives without restarting the agent.
2. TLS with a self-signed CA made here by openssl: the agent connects with the right CA; with a
   wrong CA its log says why (OpenSSL's "certificate verify failed", not only "TCP/TLS connect
   failure"); `ssl://` without mqtt_cafile trusts the system store (before: the daemon exited
   with "Invalid (NULL) parameter"), so this private CA is refused with the same reason."""
import os
import signal
import subprocess
import tempfile
import time

from common import AGENT, SIM, device, states, udid, write_scenario
from harness import Agent, Broker, Collector, Sim, fail, free_port, wait_for
from session_test import stopped

AID = "station-auth-1"


def stderr_of(agent):
    return agent.proc.stderr_text()


def not_authorized(tmp):
    acl = os.path.join(tmp, "acl")
    with open(acl, "w") as f:
        f.write("topic read cradle/#\n")  # anonymous: may subscribe, may not publish
    scenario = write_scenario([device(1)])
    with Broker(extra_conf="acl_file %s\n" % acl) as broker, Sim(SIM, scenario) as sim:
        col = Collector(broker.port)
        with Agent(AGENT, broker, sim, agent_id=AID) as agent:
            wait_for(lambda: stderr_of(agent).count("refused outbox record") >= 2, 30,
                     what="two refusals logged (one per back-off step)")
            err = stderr_of(agent)
            if "Not authorized" not in err or "certificate's CN" not in err:
                fail("the refusal does not say why:\n" + err[-2000:])
            if "dropping it" in err or "for good" in err:
                fail("a refused record was dropped:\n" + err[-2000:])
            if states(col, AID, udid(1)):
                fail("a state got through a read-only ACL")
            # the operator fixes the ACL: the kept records now go through, no restart needed
            with open(acl, "w") as f:
                f.write("topic readwrite #\n")
            broker.proc.signal(signal.SIGHUP)
            t0 = time.monotonic()
            wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                                 for s in states(col, AID, udid(1))), 40,
                     what="the kept state published once the ACL allows it")
            print("ok: 0x87 kept and retried; state arrived %.1fs after the ACL fix" %
                  (time.monotonic() - t0))
            if not agent.proc.alive():
                fail("agent exited")
            stopped(agent)
        col.close()


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=%s" % name, "-keyout", name + ".key", "-out", name + ".pem", cwd=d)


def make_server_cert(d):
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
            "server.key", "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)


class TlsView:
    """The TLS listener of a Broker, as Agent sees a broker (url() only)."""

    def __init__(self, port):
        self.port = port

    def url(self):
        return "ssl://127.0.0.1:%d" % self.port


def tls(tmp):
    d = os.path.join(tmp, "pki")
    os.makedirs(d, mode=0o755)
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_server_cert(d)
    os.chmod(os.path.join(d, "server.key"), 0o644)  # a test key, read by user mosquitto
    tls_port = free_port()
    extra = ("listener %d 127.0.0.1\ncafile %s/ca.pem\ncertfile %s/server.pem\n"
             "keyfile %s/server.key\n" % (tls_port, d, d, d))
    scenario = write_scenario([device(1)])
    with Broker(extra_conf=extra) as broker, Sim(SIM, scenario) as sim:
        wait_for(lambda: subprocess.run(["sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/%d" % tls_port],
                                        executable="/bin/bash").returncode == 0, 10,
                 what="TLS listener")
        col = Collector(broker.port)
        view = TlsView(tls_port)
        with Agent(AGENT, view, sim, agent_id=AID, extra_conf="mqtt_cafile %s/ca.pem\n" % d):
            wait_for(lambda: any(s["attached"] for s in states(col, AID, udid(1))), 30,
                     what="a state over TLS with the right CA")
        print("ok: TLS with the right CA")
        for name, conf in (("wrong CA", "mqtt_cafile %s/other-ca.pem\n" % d),
                           ("system store", "")):
            with Agent(AGENT, view, sim, agent_id=AID + "-x", extra_conf=conf) as agent:
                wait_for(lambda: "cannot connect" in stderr_of(agent) or
                         not agent.proc.alive(), 20, what="%s: a connect failure" % name)
                time.sleep(0.2)
                err = stderr_of(agent)
                if not agent.proc.alive():
                    fail("%s: the agent exited:\n%s" % (name, err[-2000:]))
                if "certificate verify failed" not in err:
                    fail("%s: the failure does not give OpenSSL's reason:\n%s" %
                         (name, err[-2000:]))
                stopped(agent)
            print("ok: %s refused with OpenSSL's reason" % name)
        col.close()


def main():
    with tempfile.TemporaryDirectory(prefix="cradle-auth-") as tmp:
        os.chmod(tmp, 0o755)  # mosquitto started as root reads its files as user mosquitto
        not_authorized(tmp)
        tls(tmp)
    print("PASS")


if __name__ == "__main__":
    main()
