#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
# t66: `branchctl reset` in a loop while threads open, append to, read and
# close the branch's files by path and others stat them
# (reset_stress.py).  Every open must get the file from before a reset
# (which then waits or is refused as busy) or the reset tree's: none may
# fail with ESTALE, nor its reads and writes with EIO.  When a file node
# had one node id across resets, an open whose path was looked up before a
# reset came to the kernel's old inode: it was refused with ESTALE (and the
# kernel's one retry could be refused again), or let through and then the
# old inode was marked bad by the reset tree's entry (EIO).
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

bfs_mount
mkdir "$MNT/p"
for i in 0 1 2 3; do printf 'PARENT-CONTENT\n' >"$MNT/p/f$i"; done
expect_ctl 0 create x --from p
out=$(tmo 90 python3 "$IT_ROOT/tests/integration/reset_stress.py" "$BRANCHCTL" "$MNT" "${RESET_SECS:-6}") ||
	fail "resets racing opens: $out"
log "$out"
bfs_umount
log "resets racing opens: no open, read or write failed"
