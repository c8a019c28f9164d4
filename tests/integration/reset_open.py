#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# reset_open.py BRANCHCTL MNT ROUNDS: appenders that open, append and close
# a file of branch x in a loop race `branchctl reset x` (x a branch of p,
# whose f holds PARENT).  Before each reset x/f grows far past the parent's
# size.  After every reset that succeeded, x/f must be p/f followed only by
# appended "Z" bytes: the state of some serial order of the reset and the
# appends.  Prints one line per bad round and a summary; exit 1 if a round
# was bad, 2 if no reset succeeded (the race was not run).
import os
import subprocess
import sys
import threading
import time

bctl, mnt, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
PARENT = b"PARENT-CONTENT\n"
f = os.path.join(mnt, "x", "f")
stop = threading.Event()


def appender():
    while not stop.is_set():
        try:
            fd = os.open(f, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, b"Z")
            finally:
                os.close(fd)
        except OSError:
            pass  # refused while the branch changes: no write happened
        time.sleep(0.002)


bad = ok = 0
for r in range(rounds):
    with open(f, "ab") as fh:
        fh.write(b"C" * 200000)
    os.stat(f)
    stop.clear()
    ts = [threading.Thread(target=appender) for _ in range(2)]
    for t in ts:
        t.start()
    time.sleep(0.05)
    rc = subprocess.run([bctl, "--mount", mnt, "reset", "x"],
                        capture_output=True).returncode
    time.sleep(0.05)
    stop.set()
    for t in ts:
        t.join()
    if rc != 0:
        continue
    ok += 1
    with open(f, "rb") as fh:
        data = fh.read()
    tail = data[len(PARENT):]
    if not data.startswith(PARENT) or tail.strip(b"Z") != b"":
        bad += 1
        print("round %d: x/f is %d bytes after the reset: %d Z, %d NUL, "
              "%d C after the parent's content" %
              (r, len(data), tail.count(b"Z"), tail.count(b"\0"),
               tail.count(b"C")), flush=True)
print("resets %d of %d succeeded, %d bad" % (ok, rounds, bad))
sys.exit(1 if bad else (2 if ok == 0 else 0))
