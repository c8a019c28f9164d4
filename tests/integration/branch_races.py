#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""branch_races.py BRANCHCTL MNT CASE SECONDS - races between branch
changes made through the mount and through the control socket.

Cases:
  mkdir-delete  one process makes branch b with mkdir(2) in a tight loop
                while another deletes it over the control socket as fast
                as it can.  Every mkdir must return 0 or EEXIST (the name
                is taken until the delete): a mkdir that made the branch
                has succeeded, whatever a delete does after it, as on
                ext4.  (The delete used to land between the create and
                the read of the new root's attributes for the reply, and
                mkdir failed with ENOENT.)

Prints one summary line; exit status 0, or 1 with the failures listed.
"""
import errno
import json
import os
import socket
import subprocess
import sys
import time


def ctl_socket(bctl, mnt):
    out = subprocess.run([bctl, "--mount", mnt, "--json", "status"],
                         capture_output=True, check=True).stdout
    return json.loads(out)["socket"]


class Ctl:
    """One control connection: call(cmd, **args) -> reply dict."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")

    def call(self, cmd, **args):
        args["cmd"] = cmd
        self.f.write(json.dumps(args).encode() + b"\n")
        self.f.flush()
        line = self.f.readline()
        if not line:
            raise OSError("the daemon closed the control connection")
        return json.loads(line)


def errname(e):
    return errno.errorcode.get(e, str(e))


def case_mkdir_delete(bctl, mnt, secs):
    sock = ctl_socket(bctl, mnt)
    path = os.path.join(mnt, "b")
    pid = os.fork()
    if pid == 0:
        try:
            c = Ctl(sock)
            end = time.monotonic() + secs
            while time.monotonic() < end:
                r = c.call("delete", name="b")
                if not r.get("ok") and r.get("error") != "not_found":
                    print("delete: %s" % r.get("message"), flush=True)
                    os._exit(1)
            os._exit(0)
        except Exception as e:  # noqa: BLE001 - reported, then exit 1
            print("deleter: %r" % e, flush=True)
            os._exit(1)
    made, errs = 0, {}
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            os.mkdir(path)
            made += 1
        except OSError as e:
            errs[e.errno] = errs.get(e.errno, 0) + 1
    _, st = os.waitpid(pid, 0)
    bad = {errname(k): v for k, v in errs.items() if k != errno.EEXIST}
    print("mkdir-delete: %d mkdirs made the branch, %d met EEXIST; "
          "other errors: %s" % (made, errs.get(errno.EEXIST, 0), bad or "none"))
    fails = []
    if bad:
        fails.append("mkdir failed with %s" % bad)
    if made == 0:
        fails.append("no mkdir made the branch")
    if os.waitstatus_to_exitcode(st) != 0:
        fails.append("the deleter failed")
    return fails


CASES = {"mkdir-delete": case_mkdir_delete}


def main():
    bctl, mnt, case, secs = sys.argv[1], sys.argv[2], sys.argv[3], \
        float(sys.argv[4])
    fails = CASES[case](bctl, mnt, secs)
    for f in fails:
        print("FAIL: %s" % f)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
