"""Shared setup for the agent's integration tests: paths from the environment (set by CMake),
scenario building, and the checks every test repeats."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402

AGENT = os.environ["CRADLE_AGENT"]
SIM = os.environ["CRADLE_SIM"]
SRC = os.environ["CRADLE_SRC"]
SCHEMAS = os.path.join(SRC, "proto", "schema")
VALIDATE = os.path.join(SRC, "tests", "proto", "validate.py")


def udid(n):
    return "00008110-0000A1B2C3D4%04X" % n


def device(n, pairing="paired", backup_ago=3600, cloud=True, external=True, version="17.5.1",
           attached=True, **extra):
    backup = {"CloudBackupEnabled": cloud, "WillEncrypt": False, "RequiresEncryption": 0,
              "Version": "2.0"}
    if backup_ago is not None:
        backup["LastCloudBackupDate"] = {"$ago": backup_ago}
    d = {
        "udid": udid(n),
        "pairing": pairing,
        "attached": attached,
        "values": {
            "": {"ProductType": "iPhone14,5", "ProductVersion": version, "BuildVersion": "21F90",
                 "DeviceName": "Cart 1 slot %d" % n, "SerialNumber": "F2LTEST%05d" % n,
                 "PasswordProtected": True},
            "com.apple.mobile.backup": backup,
            "com.apple.mobile.battery": {"BatteryCurrentCapacity": 80, "BatteryIsCharging": False,
                                         "ExternalConnected": external, "FullyCharged": False},
            "com.apple.disk_usage": {"TotalDiskCapacity": 128000000000,
                                     "TotalDataCapacity": 110000000000,
                                     "AmountDataAvailable": 40000000000},
        },
    }
    d.update(extra)
    return d


def write_scenario(devices):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, prefix="cradle-scn-")
    json.dump({"devices": devices}, f)
    f.close()
    return f.name


def states(col, agent_id, u):
    return [m for t, m, r, ts in col.json("cradle/v1/agent/%s/device/%s/state" % (agent_id, u))]


def events(col, agent_id, u=None):
    topic = "cradle/v1/agent/%s/device/%s/event" % (agent_id, u or "+")
    return [m for t, m, r, ts in col.json(topic)]


def validate_all(col):
    """Every message the agent published (commands on .../cmd are the test's own)."""
    msgs = [json.loads(p) for t, p, r, ts in col.all("cradle/v1/#")
            if p and not t.endswith("/cmd")]
    if not msgs:
        harness.fail("no messages to validate")
    harness.validate_messages(VALIDATE, SCHEMAS, msgs)
    return len(msgs)
