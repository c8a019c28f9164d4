#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""reset_race.py BRANCHCTL MOUNT PARENT BRANCH SECONDS - resets racing changes.

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

Checks: the threads met no error other than the ones a reset explains
(ENOENT, EEXIST, ENOTEMPTY, ESTALE); every reset exited 0 or 6 (busy), and
at least 20 succeeded; no link count ever disagreed with the names; after
one more reset the branch's d is exactly the parent's.  Prints one summary
line; exit status 0 or 1.
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
    pd = os.path.join(mnt, parent, "d")
    bd = os.path.join(mnt, branch, "d")
    run, quit_ = threading.Event(), threading.Event()
    idle = [threading.Event(), threading.Event()]
    errors, counts = [], {"ops": 0}
    lock = threading.Lock()

    def worker(w):
        i = 0
        tmp, f = os.path.join(bd, "t%d" % w), os.path.join(bd, "f%d" % w)
        while True:
            if not run.is_set():
                idle[w].set()
                run.wait()
                if quit_.is_set():
                    return
                idle[w].clear()
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
                try:
                    step()
                except OSError as e:
                    if e.errno not in OK_ERRNOS:
                        with lock:
                            errors.append("%s: %s" % (e.filename, e.strerror))
                with lock:
                    counts["ops"] += 1

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
            run.set()
            time.sleep(0.002)
            r = subprocess.run([ctl, "--mount", mnt, "reset", branch],
                               capture_output=True, text=True, timeout=60)
            if r.returncode in resets:
                resets[r.returncode] += 1
            else:
                bad.append("reset exited %d: %s" % (r.returncode, r.stderr.strip()))
            time.sleep(0.002)
            run.clear()
            for ev in idle:
                ev.wait(60)
            _, names, nlink = tree(bd)
            for ino, ns in names.items():
                if nlink[ino] != len(ns):
                    fails.append("round %d: inode %d has st_nlink %d but %d names %s" %
                                 (rounds, ino, nlink[ino], len(ns), sorted(ns)[:3]))
    finally:
        quit_.set()
        run.set()
        for t in threads:
            t.join()
    fails += errors[:5] + bad[:5]
    if resets[0] < 20:
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
