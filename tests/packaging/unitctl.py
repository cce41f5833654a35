"""The client half of deploy_test.py's systemctl and journalctl: the shell that runs
docs/deploy.md defines `systemctl() { python3 unitctl.py systemctl "$@"; }` (and journalctl), and
this sends the arguments to the test process, which owns the daemons it starts (there is no
systemd as PID 1 where the suite runs), prints its answer and exits with its status."""
import json
import os
import socket
import sys


def main():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.environ["CRADLE_UNITCTL"])
    s.sendall(json.dumps(sys.argv[1:]).encode() + b"\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    reply = json.loads(data.decode())
    sys.stdout.write(reply["out"])
    sys.stdout.flush()
    return reply["status"]


if __name__ == "__main__":
    sys.exit(main())
