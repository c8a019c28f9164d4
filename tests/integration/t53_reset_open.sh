#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 240
# t53: `branchctl reset` racing processes that open, append to and close a
# file of the branch (reset_open.py).  An open that was on its way when the
# reset came (its path looked up before, its OPEN waiting for the reset or
# sent just after it) used to go on with the kernel's inode from before the
# reset: with the writeback cache the kernel keeps its own file size, so
# the append landed at the old end of file and the reset file held a hole
# of NULs and pages from before the reset.  Now every entry carries the
# branch's generation (new at each reset) and such an open gets ESTALE,
# which the kernel retries with a fresh lookup.
#
# That retry must then succeed: an open by path after the reset, while some
# process still holds the file's dentry from before it (an O_PATH
# descriptor here; a stat running during the reset does it too, 1 open in
# 100 under stat loops), is sent from the old inode and refused, and its
# retry's lookup hands out the new generation for a node the kernel knows,
# which also refused the retried OPEN: every such open failed with ESTALE.
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

bfs_mount
mkdir "$MNT/p"
printf 'PARENT-CONTENT\n' >"$MNT/p/f"
expect_ctl 0 create x --from p
out=$(tmo 200 python3 "$IT_ROOT/tests/integration/reset_open.py" "$BRANCHCTL" "$MNT" "${RESET_ROUNDS:-40}") ||
	fail "reset racing appenders: $out"
log "$(tail -n 1 <<<"$out")"

# An open after the reset, with the old dentry held (no OPEN: the reset
# goes on); the file then reads as the parent's.
out=$(tmo 60 python3 - "$BRANCHCTL" "$MNT" <<'EOF'
import os, subprocess, sys
bctl, mnt = sys.argv[1], sys.argv[2]
f = os.path.join(mnt, "x", "f")
bad = 0
for r in range(3):
    with open(f, "ab") as fh:
        fh.write(b"OLD")
    held = os.open(f, os.O_PATH)
    rc = subprocess.run([bctl, "--mount", mnt, "reset", "x"]).returncode
    try:
        if rc != 0:
            raise OSError("reset exited %d" % rc)
        with open(f, "rb") as fh:
            data = fh.read()
        if data != b"PARENT-CONTENT\n":
            raise OSError("read %r" % data)
    except OSError as e:
        bad += 1
        print("round %d: open after the reset: %s" % (r, e))
    os.close(held)
print("%d of 3 opens after a reset with the old dentry held failed" % bad)
sys.exit(1 if bad else 0)
EOF
) || fail "$out"
log "$out"

# A change of an open file while a reset waits for it to be closed (here
# ftruncate; the kernel's write-back of a written file's times at close(2)
# is one too): the change waited for the reset's hold while the hold waited
# for the file, until the reset gave up as busy (after 1.5 s).  Now the
# change of an open file does not wait for the hold, and the reset goes on
# once the file is closed.
out=$(tmo 60 python3 - "$BRANCHCTL" "$MNT" <<'EOF'
import os, subprocess, sys, time
bctl, mnt = sys.argv[1], sys.argv[2]
f = os.path.join(mnt, "x", "f")
bad = 0
for r in range(3):
    fd = os.open(f, os.O_WRONLY)
    p = subprocess.Popen([bctl, "--mount", mnt, "reset", "x"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.8)  # the reset waits for the open file
    t0 = time.monotonic()
    os.ftruncate(fd, 4)
    os.close(fd)
    took = time.monotonic() - t0
    _, err = p.communicate()
    if p.returncode != 0 or took > 0.5:
        bad += 1
        print("round %d: ftruncate and close took %.2f s, reset exited %d: %s"
              % (r, took, p.returncode, err.decode().strip()))
print("%d of 3 resets waiting for a file changed and closed failed" % bad)
sys.exit(1 if bad else 0)
EOF
) || fail "$out"
log "$out"
bfs_umount
log "reset racing opens: every reset left the parent's content plus appends"
