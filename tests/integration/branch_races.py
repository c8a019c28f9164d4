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
  reset-open    branch x of p, whose f and d/g hold p's bytes: each round
                appends to both, takes an O_PATH descriptor of each (the
                kernel keeps their dentries and inodes), resets x over the
                control socket and, once the reset has replied, opens them
                from 8 threads at once (4 each) while 2 threads stat them
                in a loop.  Every open must succeed and read p's bytes.  (The dentry from before the
                reset stayed valid: opens through it got ESTALE from the
                daemon, or EIO from the kernel once another thread's
                lookup had made the old inode bad, 76-110 of 800; and a
                lookup that read the branch before the reset could hand
                out the old generation after a newer one.)
  mkdir-rename-parent
                mkdir(2) and rmdir(2) of new branches in a loop while
                another process renames the default parent main to main2
                and back over the control socket.  Every mkdir must make
                its branch: the default parent follows the rename, so
                either order of a mkdir and a rename succeeds.  (A mkdir
                that read the default's name before the rename and looked
                it up after failed with ENOENT, "default parent 'main' does
                not exist", 366 of 568.)

Prints one summary line; exit status 0, or 1 with the failures listed.
"""
import errno
import json
import os
import socket
import subprocess
import sys
import threading
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


def case_reset_open(bctl, mnt, secs):
    c = Ctl(ctl_socket(bctl, mnt))
    rels = ("f", os.path.join("d", "g"))  # in the branch root and below
    files = [os.path.join(mnt, "x", r) for r in rels]
    parent = {}
    for r, f in zip(rels, files):
        with open(os.path.join(mnt, "p", r), "rb") as fh:
            parent[f] = fh.read()
    stop = threading.Event()
    lock = threading.Lock()
    errs, wrong = {}, []

    def statter():
        while not stop.is_set():
            for f in files:
                try:
                    os.stat(f)
                except OSError:
                    pass  # racing the reset: any answer

    def opener(go, f):
        go.wait()
        try:
            with open(f, "rb") as fh:
                data = fh.read()
            e = None
        except OSError as ex:
            e, data = errname(ex.errno), None
        with lock:
            if e:
                errs[e] = errs.get(e, 0) + 1
            elif data != parent[f]:
                wrong.append(len(data))

    stats = [threading.Thread(target=statter) for _ in range(2)]
    for t in stats:
        t.start()
    rounds = opens = 0
    end = time.monotonic() + secs
    fails = []
    while time.monotonic() < end:
        held = []
        for f in files:
            with open(f, "ab") as fh:
                fh.write(b"OLD" * 1000)
            held.append(os.open(f, os.O_PATH))
        r = c.call("reset", name="x")
        if not r.get("ok"):
            for h in held:
                os.close(h)
            if r.get("error") == "busy":
                continue  # an append's RELEASE came late: not a failure
            fails.append("reset: %s" % r.get("message"))
            break
        rounds += 1
        go = threading.Barrier(8)
        ts = [threading.Thread(target=opener, args=(go, files[i % 2]))
              for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        opens += 8
        for h in held:
            os.close(h)
    stop.set()
    for t in stats:
        t.join()
    print("reset-open: %d resets, %d opens after them: errors %s, %d read "
          "other bytes than the parent's%s" %
          (rounds, opens, errs or "none", len(wrong),
           " (sizes %s)" % sorted(set(wrong))[:5] if wrong else ""))
    if errs:
        fails.append("opens after a reset failed: %s" % errs)
    if wrong:
        fails.append("%d opens after a reset read other bytes" % len(wrong))
    if rounds < 20:
        fails.append("only %d resets succeeded" % rounds)
    return fails


def case_mkdir_rename_parent(bctl, mnt, secs):
    sock = ctl_socket(bctl, mnt)
    pid = os.fork()
    if pid == 0:
        try:
            c = Ctl(sock)
            cur, n = "main", 0
            end = time.monotonic() + secs
            while time.monotonic() < end:
                new = "main2" if cur == "main" else "main"
                r = c.call("rename", name=cur, new_name=new)
                if not r.get("ok"):
                    print("rename: %s" % r.get("message"), flush=True)
                    os._exit(1)
                cur, n = new, n + 1
            if cur != "main" and not c.call("rename", name=cur,
                                            new_name="main").get("ok"):
                os._exit(1)
            os._exit(0 if n else 1)
        except Exception as e:  # noqa: BLE001 - reported, then exit 1
            print("renamer: %r" % e, flush=True)
            os._exit(1)
    made, errs, i = 0, {}, 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        path = os.path.join(mnt, "k%d" % (i % 20))
        i += 1
        try:
            os.mkdir(path)
            made += 1
            os.rmdir(path)
        except OSError as e:
            k = errname(e.errno)
            errs[k] = errs.get(k, 0) + 1
    _, st = os.waitpid(pid, 0)
    print("mkdir-rename-parent: %d branches made and removed while the "
          "default parent was renamed; errors %s" % (made, errs or "none"))
    fails = []
    if errs:
        fails.append("mkdir or rmdir failed: %s" % errs)
    if os.waitstatus_to_exitcode(st) != 0:
        fails.append("the renamer failed")
    return fails


CASES = {
    "mkdir-delete": case_mkdir_delete,
    "reset-open": case_reset_open,
    "mkdir-rename-parent": case_mkdir_rename_parent,
}


def main():
    bctl, mnt, case, secs = sys.argv[1], sys.argv[2], sys.argv[3], \
        float(sys.argv[4])
    fails = CASES[case](bctl, mnt, secs)
    for f in fails:
        print("FAIL: %s" % f)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
