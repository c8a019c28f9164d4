#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# reset_stress.py BRANCHCTL MNT SECONDS: `branchctl reset x` in a loop (x a
# branch of p, whose files f0..f3 hold PARENT) while threads open the files
# of x by path, append, read and close them, and other threads stat them
# (which keeps the kernel's inodes of the files cached across each reset).
# An open may see the file from before a reset (the reset then waits or is
# refused as busy) or the reset tree's file, and nothing else: every
# ESTALE, EIO or other error of an open, write, read or close is counted.
# Prints the counts; exit 1 if an operation failed, 2 if fewer than 20
# resets succeeded (the race was not run).
import errno
import os
import subprocess
import sys
import threading
import time

bctl, mnt, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
files = [os.path.join(mnt, "x", "f%d" % i) for i in range(4)]
stop = threading.Event()
lock = threading.Lock()
errs = {}
ops = [0]


def count(what, e):
    key = "%s %s" % (what, errno.errorcode.get(e.errno, str(e.errno)))
    with lock:
        errs[key] = errs.get(key, 0) + 1


def opener(k):
    n = 0
    while not stop.is_set():
        f = files[(k + n) % len(files)]
        n += 1
        try:
            fd = os.open(f, os.O_RDWR | os.O_APPEND)
        except OSError as e:
            count("open", e)
            continue
        try:
            if k == 0:
                os.write(fd, b"Z")
            os.pread(fd, 16, 0)
        except OSError as e:
            count("io", e)
        finally:
            try:
                os.close(fd)
            except OSError as e:
                count("close", e)
        with lock:
            ops[0] += 1
        time.sleep(0.003)  # a file stays closed a while: resets get in


def statter(k):
    n = 0
    while not stop.is_set():
        try:
            os.stat(files[(k + n) % len(files)])
        except OSError as e:
            count("stat", e)
        n += 1
        time.sleep(0.0005)


ts = [threading.Thread(target=opener, args=(i,)) for i in range(3)]
ts += [threading.Thread(target=statter, args=(i,)) for i in range(2)]
for t in ts:
    t.start()
resets = {}
end = time.monotonic() + secs
try:
    while time.monotonic() < end:
        r = subprocess.run([bctl, "--mount", mnt, "reset", "x"],
                           capture_output=True)
        resets[r.returncode] = resets.get(r.returncode, 0) + 1
finally:
    stop.set()
    for t in ts:
        t.join()
bad = sum(errs.values())
print("%d resets (exit codes %s), %d opens served, %d failed: %s" %
      (resets.get(0, 0), sorted(resets.items()), ops[0], bad,
       ", ".join("%s %d" % kv for kv in sorted(errs.items())) or "none"))
if set(resets) - {0, 6}:
    sys.exit(1)
sys.exit(1 if bad else (2 if resets.get(0, 0) < 20 else 0))
