#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""kill_rename.py DIR [N] - reproducer of an open issue; not part of `make check`.

A child loops: create an empty DIR/cur.tmp, close it, rename it over
DIR/cur.  The parent SIGKILLs the child at a random moment, waits for it,
then opens DIR/cur, reads it and closes it.  On a branchd mount (Linux
6.18, libfuse 3.14, writeback cache) about 1 close(2) in 5 fails with EIO;
a second open, read and close of the same file right after succeed.  The
parent's fstat(2) just before that close succeeds too.

What is known: no data needs to be written; without the rename nothing
fails; the listing of DIR (READDIRPLUS) plays no part; opening cur
read-write changes nothing.  branchd answers no request with an error
(uprobe on fuse_reply_err), and no FUSE request ends with one (tracepoint
fuse:fuse_request_end), so the EIO is made in the kernel, at close: a
writeback error latched on the file's mapping, or the inode marked bad.
This is what t20_crash_short's "pg" rounds hit once in a while.

Exit status: 0 if no close failed, 1 otherwise.  Run it as root on a
scratch branch: python3 tests/stress/kill_rename.py /mnt/b/scratch/d 300
"""
import errno
import os
import random
import signal
import sys
import time


def child(d):
    tmp, cur = os.path.join(d, "cur.tmp"), os.path.join(d, "cur")
    while True:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.rename(tmp, cur)


def main():
    d = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    os.makedirs(d, exist_ok=True)
    bad = 0
    for k in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                child(d)
            finally:
                os._exit(0)
        time.sleep(random.uniform(0.005, 0.08))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        try:
            fd = os.open(os.path.join(d, "cur"), os.O_RDONLY)
        except FileNotFoundError:
            continue
        os.read(fd, 1 << 16)
        os.fstat(fd)
        try:
            os.close(fd)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            bad += 1
            print("round %d: close(cur) failed: %s" % (k, e.strerror), flush=True)
    print("kill_rename: %d rounds, %d failed close(2)" % (n, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
