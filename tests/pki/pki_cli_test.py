#!/usr/bin/python3
"""cradle-pki's commands and errors, checked with openssl (no broker); the man page's OPTIONS
are exactly those of --help.

The CA and every key are mode 0600 whatever the umask, and no key is ever printed; a station's
CN is its agent id (proto's charset, dashboards' names reserved), the broker's certificate
carries its host names and addresses as SANs; certificates chain to ca.pem and are for client
or server use only; bad names, an existing name, a missing CA and bad usage are clear errors
(exit 1, usage 2) that change nothing; revoke puts the serial in a new CRL that openssl then
enforces, and the name can be issued again; --days, --version, --help."""
import os
import re
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import check  # noqa: E402

PKI = os.environ["CRADLE_PKI"]
OUTPUTS = []


def run(d, *args, rc=0, umask=0o022):
    r = subprocess.run([PKI] + (["--dir", d] if d else []) + list(args), capture_output=True,
                       text=True, timeout=60, preexec_fn=lambda: os.umask(umask))
    OUTPUTS.append(r.stdout + r.stderr)
    check(r.returncode == rc, "cradle-pki %s: exit %d, want %d:\n%s%s" %
          (" ".join(args), r.returncode, rc, r.stdout, r.stderr))
    return r


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def text_of(pem):
    rc, out = openssl("x509", "-in", pem, "-noout", "-text")
    check(rc == 0, "openssl x509 %s: %s" % (pem, out))
    return out


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def main():
    with tempfile.TemporaryDirectory(prefix="cradle-pki-") as tmp:
        d = os.path.join(tmp, "ca")
        r = run(None, "--version")
        check(re.fullmatch(r"cradle-pki \d+\.\d+\.\d+(\S*)?\n", r.stdout),
              "--version: %r" % r.stdout)
        r = run(None, "--help")
        for word in ("init", "issue station", "issue dashboard", "issue broker", "revoke",
                     "--dir", "--days", "--help", "--version"):
            check(word in r.stdout, "--help mentions %s" % word)
        # the man page's OPTIONS are exactly the options --help lists
        helpopts = set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*",
                                  r.stdout.split("\noptions:\n")[1].split("\n\n")[0]))
        with open(os.path.join(os.environ["CRADLE_SRC"], "docs", "man", "cradle-pki.1.scd")) as f:
            man = f.read()
        manopts = set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*",
                                 "\n".join(ln for ln in man.split("# OPTIONS")[1]
                                           .split("\n# ")[0].splitlines()
                                           if ln.startswith("*"))))
        check(helpopts == manopts and len(helpopts) == 7,
              "--help options %s, man page OPTIONS %s" % (sorted(helpopts), sorted(manopts)))
        for args, why in (((), "no command"), (("--bogus", "init"), "unknown option"),
                          (("frobnicate",), "unknown command"), (("--days", "0", "init"),
                                                                 "--days wants")):
            r = run(d, *args, rc=2)
            check(why in r.stderr, "usage error %s: %r" % (args, r.stderr))
        r = run(d, "issue", "station", "st-1", rc=1)
        check("no CA in" in r.stderr and "init" in r.stderr, "missing CA: %r" % r.stderr)
        check(not os.path.exists(os.path.join(d, "st-1.pem")), "nothing issued without a CA")

        # init under a careless umask: the CA's key is still 0600
        run(d, "init", umask=0)
        ca, cakey = os.path.join(d, "ca.pem"), os.path.join(d, "private", "ca.key")
        check(mode(cakey) == 0o600, "ca.key mode %o" % mode(cakey))
        check(mode(os.path.join(d, "private")) == 0o700, "private/ is 0700")
        check(mode(ca) == 0o644, "ca.pem mode %o" % mode(ca))
        t = text_of(ca)
        check("CA:TRUE" in t and "Certificate Sign, CRL Sign" in t, "a CA certificate:\n" + t)
        rc, out = openssl("crl", "-in", os.path.join(d, "crl.pem"), "-noout", "-text")
        check(rc == 0 and "No Revoked Certificates" in out, "init writes an empty CRL: " + out)
        with open(ca) as f:
            ca_before = f.read()
        r = run(d, "init", rc=1)
        check("already holds a CA" in r.stderr, "second init: %r" % r.stderr)
        with open(ca) as f:
            check(f.read() == ca_before, "a second init left the CA alone")

        # names
        for bad in ("Bad_Name", "ab", "-abc", "a/b", "x" * 64, "st 1", "../../etc"):
            r = run(d, "issue", "station", bad, rc=1)
            check("not an agent id" in r.stderr, "station %r: %r" % (bad, r.stderr))
        r = run(d, "issue", "station", "cradle-dashboard-2", rc=1)
        check("reserved for dashboards" in r.stderr, "reserved name: %r" % r.stderr)
        r = run(d, "issue", "dashboard", "st-9", rc=1)
        check("starts with 'cradle-dashboard'" in r.stderr, "dashboard name: %r" % r.stderr)
        for bad in (("bad host",), ("-x",), ("ok.example", "bad/san")):
            r = run(d, "issue", "broker", *bad, rc=1)
            check("host name" in r.stderr, "broker %r: %r" % (bad, r.stderr))
        check(sorted(os.listdir(os.path.join(d, "private"))) == ["ca.key"],
              "refused names left no key behind: %s" % os.listdir(os.path.join(d, "private")))

        # a station
        run(d, "issue", "station", "st-1", umask=0)
        pem, key = os.path.join(d, "st-1.pem"), os.path.join(d, "private", "st-1.key")
        check(mode(key) == 0o600, "station key mode %o" % mode(key))
        t = text_of(pem)
        check("Subject: CN = st-1" in t, "CN = agent id:\n" + t)
        check("TLS Web Client Authentication" in t and "Server Authentication" not in t,
              "a client-only certificate:\n" + t)
        rc, out = openssl("verify", "-CAfile", ca, "-purpose", "sslclient", pem)
        check(rc == 0, "the station's certificate chains to ca.pem: " + out)
        rc, out = openssl("verify", "-CAfile", ca, "-purpose", "sslserver", pem)
        check(rc != 0, "a station's certificate cannot serve as the broker's")
        _, pub_cert = openssl("x509", "-in", pem, "-noout", "-pubkey")
        _, pub_key = openssl("pkey", "-in", key, "-pubout")
        check(pub_cert == pub_key, "the key belongs to the certificate")
        r = run(d, "issue", "station", "st-1", rc=1)
        check("already has a certificate" in r.stderr, "existing name: %r" % r.stderr)
        with open(pem) as f:
            st1 = f.read()

        # the dashboard and the broker
        run(d, "issue", "dashboard")
        check("Subject: CN = cradle-dashboard" in
              text_of(os.path.join(d, "cradle-dashboard.pem")), "dashboard CN")
        run(d, "issue", "broker", "mqtt.example.org", "10.1.2.3", "mqtt", "fd00::5")
        t = text_of(os.path.join(d, "mqtt.example.org.pem"))
        check("DNS:mqtt.example.org, IP Address:10.1.2.3, DNS:mqtt, IP Address:FD00:0:0:0:0:0:0:5"
              in t, "broker SANs:\n" + t)
        check("TLS Web Server Authentication" in t and "Client Authentication" not in t,
              "a server-only certificate:\n" + t)
        rc, out = openssl("verify", "-CAfile", ca, "-purpose", "sslserver",
                          os.path.join(d, "mqtt.example.org.pem"))
        check(rc == 0, "the broker's certificate chains to ca.pem: " + out)

        # --days
        run(d, "--days", "2", "issue", "station", "st-short")
        rc, out = openssl("x509", "-in", os.path.join(d, "st-short.pem"), "-noout",
                          "-checkend", str(3 * 86400))
        check(rc != 0, "--days 2: expires within 3 days: " + out)
        rc, out = openssl("x509", "-in", pem, "-noout", "-checkend", str(700 * 86400))
        check(rc == 0, "the default validity exceeds 700 days: " + out)

        # revoke
        r = run(d, "revoke", "nobody", rc=1)
        check("no certificate named 'nobody'" in r.stderr, "revoke unknown: %r" % r.stderr)
        r = run(d, "revoke", "../ca", rc=1)
        check("not a certificate name" in r.stderr, "revoke ../ca: %r" % r.stderr)
        for name in ("ca", "crl"):
            r = run(d, "revoke", name, rc=1)
            check("no certificate named" in r.stderr, "revoke %s: %r" % (name, r.stderr))
        r = run(d, "issue", "station", "crl", rc=1)
        check("uses for its own files" in r.stderr, "issue station crl: %r" % r.stderr)
        r = run(d, "issue", "broker", "ca", rc=1)
        check("uses for its own files" in r.stderr, "issue broker ca: %r" % r.stderr)
        check(text_of(ca) and os.path.exists(cakey), "the CA survived")
        saved = os.path.join(tmp, "st-1.pem")
        with open(saved, "w") as f:
            f.write(st1)
        serial = openssl("x509", "-in", saved, "-noout", "-serial")[1].strip().split("=")[1]
        run(d, "revoke", "st-1")
        check(not os.path.exists(pem) and not os.path.exists(key),
              "revoke removes the certificate and key")
        check(os.path.exists(os.path.join(d, "revoked", "st-1-%s.pem" % serial)),
              "revoked/st-1-SERIAL.pem kept")
        crl = os.path.join(d, "crl.pem")
        rc, out = openssl("crl", "-in", crl, "-noout", "-text")
        check(rc == 0 and "Serial Number: " + serial in out, "the CRL lists %s:\n%s" % (serial,
                                                                                      out))
        bundle = os.path.join(tmp, "ca+crl.pem")
        with open(bundle, "w") as f:
            f.write(ca_before + open(crl).read())
        rc, out = openssl("verify", "-crl_check", "-CAfile", bundle, saved)
        check(rc != 0 and "revoked" in out, "openssl refuses the revoked certificate: " + out)
        rc, out = openssl("verify", "-crl_check", "-CAfile", bundle,
                          os.path.join(d, "cradle-dashboard.pem"))
        check(rc == 0, "the others stay valid under the CRL: " + out)
        r = run(d, "list")
        check(re.search(r"^R %s st-1$" % serial, r.stdout, re.M) and
              re.search(r"^V \S+ cradle-dashboard$", r.stdout, re.M), "list:\n" + r.stdout)
        run(d, "issue", "station", "st-1")
        check(os.path.exists(pem), "a revoked name can be issued again")

        # crl: a fresh one, numbered on
        n1 = openssl("crl", "-in", crl, "-noout", "-crlnumber")[1]
        run(d, "crl")
        n2 = openssl("crl", "-in", crl, "-noout", "-crlnumber")[1]
        check(n1 != n2, "crl writes a new CRL (%s -> %s)" % (n1.strip(), n2.strip()))

        # no key was ever printed
        secrets = []
        for f in os.listdir(os.path.join(d, "private")):
            with open(os.path.join(d, "private", f)) as k:
                secrets += [ln.strip() for ln in k if ln.strip() and "-----" not in ln]
        for out in OUTPUTS:
            check("PRIVATE KEY" not in out, "a key was printed:\n" + out)
            for s in secrets:
                check(s not in out, "key material was printed")
    print("PASS")


if __name__ == "__main__":
    main()
