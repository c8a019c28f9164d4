#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""reset_race.py BRANCHCTL MOUNT PARENT BRANCH SECONDS [MIN_RESETS] - resets racing changes.

A reset must never land between the store reading a branch for a change
(create, link, unlink, rename, mkdir, rmdir, chmod, truncate) and
committing it: the change would be committed over the reset tree, leaving
a file whose link count does not match its names, or a file no name leads
to that takes space for ever.

Rounds, for SECONDS: two threads change the branch's copy of directory d
(each makes a new file, renames it over its own fW, links fW under a new
name, makes and removes a directory, chmods, truncates gW by path; no
file stays open long), and while they run the main thread resets the
branch with `branchctl reset`.  Then the threads pause and every file's
st_nlink is checked against the names it has in the branch.

The pause is a handshake: the main thread reads the tree only once each
thread has said, under one lock, that it parked for this very pause.
With an event per thread that it set when it parked and cleared when it
went on, a thread that was woken for a round but not yet run (a loaded
machine: it waited for a CPU all through the reset) still had its event
set from the pause before; the main thread took that for parked and read
the tree while the thread made its changes, and a link made between the
read of d and the stat of fW was reported as a link count with one name.
RESET_RACE_WAKE_DELAY (seconds) holds each thread that long between being
let go after a pause and its first change, as such a thread is held; t30
runs the test with it too.

Checks: the threads met no error other than the ones a reset explains
(ENOENT, EEXIST, ENOTEMPTY, ESTALE); every reset exited 0 or 6 (busy), and
at least MIN_RESETS (20) succeeded; no link count ever disagreed with the names, and no
change started while they were read; after one more reset the branch's d
is exactly the parent's.  Prints one summary line; exit status 0 or 1.
"""
import errno
import os
import subprocess
import sys
import threading
import time

OK_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.ESTALE}


def tree(root):
    """{relative path: (type, bytes or None)} and {inode: [names]}."""
    out, names, nlink = {}, {}, {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if os.path.isdir(p) and not os.path.islink(p):
                out[rel] = ("dir", None)
                continue
            with open(p, "rb") as f:
                out[rel] = ("file", f.read())
            names.setdefault(st.st_ino, []).append(rel)
            nlink[st.st_ino] = st.st_nlink
    return out, names, nlink


def main():
    ctl, mnt, parent, branch, secs = sys.argv[1:6]
    min_resets = int(sys.argv[6]) if len(sys.argv) > 6 else 20
    pd = os.path.join(mnt, parent, "d")
    bd = os.path.join(mnt, branch, "d")
    wake_delay = float(os.environ.get("RESET_RACE_WAKE_DELAY", "0"))
    # state["go"]: the threads may change d; state["pause"]: how many times
    # the main thread stopped them; parked[w]: the pause thread w last
    # parked for.  All under cv.
    cv = threading.Condition()
    state = {"go": False, "quit": False, "pause": 0}
    parked = [-1, -1]
    checking = threading.Event()
    errors, counts = [], {"ops": 0, "during_check": 0}
    lock = threading.Lock()

    def may_go(w):
        """Wait while paused, saying once per pause that w is parked.
        Returns (whether to go on, whether it waited)."""
        waited = False
        with cv:
            while not state["go"] and not state["quit"]:
                if parked[w] != state["pause"]:
                    parked[w] = state["pause"]
                    cv.notify_all()
                cv.wait()
                waited = True
            return not state["quit"], waited

    def worker(w):
        i = 0
        tmp, f = os.path.join(bd, "t%d" % w), os.path.join(bd, "f%d" % w)
        while True:
            go, waited = may_go(w)
            if not go:
                return
            if waited and wake_delay:
                time.sleep(wake_delay)
            i += 1
            steps = (
                lambda: os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)),
                lambda: os.rename(tmp, f),
                lambda: os.link(f, os.path.join(bd, "h%d.%d" % (w, i))),
                lambda: os.mkdir(os.path.join(bd, "s%d" % w)),
                lambda: os.rmdir(os.path.join(bd, "s%d" % w)),
                lambda: os.chmod(f, 0o600 if i % 2 else 0o644),
                lambda: os.truncate(os.path.join(bd, "g%d" % w), i % 100),
            )
            for step in steps:
                if checking.is_set():
                    with lock:
                        counts["during_check"] += 1
                try:
                    step()
                except OSError as e:
                    if e.errno not in OK_ERRNOS:
                        with lock:
                            errors.append("%s: %s" % (e.filename, e.strerror))
                with lock:
                    counts["ops"] += 1

    def resume():
        with cv:
            state["go"] = True
            cv.notify_all()

    def pause():
        """Stop the threads: True once each has finished its round of
        changes and parked for this pause."""
        with cv:
            state["go"] = False
            state["pause"] += 1
            cv.notify_all()
            return cv.wait_for(lambda: all(p == state["pause"] for p in parked), 60)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    resets = {0: 0, 6: 0}
    bad, fails = [], []
    rounds = 0
    end = time.monotonic() + float(secs)
    try:
        while time.monotonic() < end and len(fails) < 5:
            rounds += 1
            resume()
            time.sleep(0.002)
            r = subprocess.run([ctl, "--mount", mnt, "reset", branch],
                               capture_output=True, text=True, timeout=60)
            if r.returncode in resets:
                resets[r.returncode] += 1
            else:
                bad.append("reset exited %d: %s" % (r.returncode, r.stderr.strip()))
            time.sleep(0.002)
            if not pause():
                fails.append("round %d: the threads did not stop within 60 s" % rounds)
                break
            checking.set()
            _, names, nlink = tree(bd)
            checking.clear()
            for ino, ns in names.items():
                if nlink[ino] != len(ns):
                    fails.append("round %d: inode %d has st_nlink %d but %d names %s" %
                                 (rounds, ino, nlink[ino], len(ns), sorted(ns)[:3]))
    finally:
        with cv:
            state["quit"] = True
            cv.notify_all()
        for t in threads:
            t.join()
    if counts["during_check"]:
        fails.append("%d changes started while the tree was read" % counts["during_check"])
    fails += errors[:5] + bad[:5]
    if resets[0] < min_resets:
        fails.append("only %d of %d resets succeeded" % (resets[0], resets[0] + resets[6]))
    r = subprocess.run([ctl, "--mount", mnt, "reset", branch],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fails.append("final reset exited %d: %s" % (r.returncode, r.stderr.strip()))
    want, _, _ = tree(pd)
    got, _, _ = tree(bd)
    if got != want:
        extra = sorted(set(got) - set(want))
        missing = sorted(set(want) - set(got))
        diff = sorted(k for k in set(got) & set(want) if got[k] != want[k])
        fails.append("after the final reset d differs from the parent's: extra %s, "
                     "missing %s, different %s" % (extra[:5], missing[:5], diff[:5]))
    print("reset race: %d rounds, %d changes, %d resets done, %d refused busy, %d errors%s" %
          (rounds, counts["ops"], resets[0], resets[6], len(errors) + len(bad),
           "" if not fails else "; " + "; ".join(fails)))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
