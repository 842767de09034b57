"""Start the `storage-emulator` binary and call its control API, with the
standard library only. Copy this file into your own tests.

    with Emulator() as emu:                      # emu: the announcement (a dict)
        grant = control(emu, "POST", "grants", {"provider": "gdrive"})

The binary is $STORAGE_EMULATOR, or `storage-emulator` on PATH.
"""

import json
import os
import subprocess
import urllib.request


class Emulator:
    """The binary on free ports; entering gives its announcement."""

    def __init__(self, *args):
        self.args = list(args)

    def __enter__(self):
        exe = os.environ.get("STORAGE_EMULATOR", "storage-emulator")
        self.proc = subprocess.Popen(
            [exe, *self.args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise RuntimeError(f"{exe} printed no announcement (exit {self.proc.returncode})")
        return json.loads(line)

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def control(announcement, method, verb, payload=None):
    """One control API call (`verb` is the path under /__emulator/): JSON in, JSON out.
    An error answer raises urllib.error.HTTPError, whose body is {"error": {"code", "message"}}."""
    body = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        announcement["control"] + verb,
        data=body,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())
