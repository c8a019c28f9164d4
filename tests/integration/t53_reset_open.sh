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
bfs_umount
log "reset racing opens: every reset left the parent's content plus appends"
