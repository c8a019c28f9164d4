#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
# t42: a deleted branch's data waits for GC, which a crash does not make
# it forget.  branchd runs with gc_interval=0.
#  - 300 branches of main (half with a file of their own, one branch
#    `kept` made among them) are made and removed by mkdir and rmdir, as
#    CI scripts do; `branchctl status` counts 300 deleted branches pending;
#  - branchd is killed with SIGKILL and mounted again: still 300 pending
#    (the "D" notes are in the deletes' batches);
#  - `branchctl gc` reports 300 branches_dropped, status then counts none,
#    and main and kept read what they read before.
# No Postgres: mkdir and rmdir are what CI scripts do.
source "$(dirname "$0")/lib.sh"
it_init

BRANCHCTL=${BRANCHCTL:-$IT_ROOT/bin/branchctl}
[ -x "$BRANCHCTL" ] || fail "$BRANCHCTL not built: run 'make all' first"
bctl() { tmo 120 "$BRANCHCTL" --mount "$MNT" "$@"; }
pending() { jq_ "$(bctl --json status)" 'd["deleted_pending"]'; }

bfs_mount "$STORE" "$MNT" gc_interval=0
mkdir "$MNT/main" || fail "mkdir main"
head -c $((1 << 20)) /dev/urandom >"$MNT/main/base"
SUM=$(md5sum <"$MNT/main/base")
[ "$(pending)" = 0 ] || fail "a new store counts $(pending) deleted branches"

python3 - "$MNT" <<'EOF2' || fail "mkdir/rmdir churn failed"
import os, sys
m = sys.argv[1]
for i in range(300):
    b = f"{m}/c{i}"
    os.mkdir(b)
    if i % 2:
        with open(f"{b}/own", "wb") as f:
            f.write(os.urandom(3 * 8192))
    if i == 150:
        os.mkdir(f"{m}/kept")
        with open(f"{m}/kept/own", "wb") as f:
            f.write(b"kept\n")
    os.rmdir(b)
EOF2
p=$(pending)
[ "$p" = 300 ] || fail "after 300 rmdirs status counts $p deleted branches pending"
log "300 branches made and removed: 300 pending"

pid=${IT_MNTPID[$MNT]}
kill -KILL "$pid"
_it_wait_gone "$pid" 10 || fail "branchd $pid survived SIGKILL?"
tmo 20 fusermount3 -u "$MNT" 2>/dev/null || tmo 20 fusermount3 -uz "$MNT" || fail "cannot unmount the dead mount"
bfs_mount "$STORE" "$MNT" gc_interval=0
p=$(pending)
[ "$p" = 300 ] || fail "after kill -9 and a remount status counts $p deleted branches pending, not 300"
log "after kill -9 and a remount: still 300 pending"

out=$(bctl --json gc) || fail "branchctl gc failed: $out"
log "gc: $out"
n=$(jq_ "$out" 'd["branches_dropped"]')
[ "$n" = 300 ] || fail "gc dropped $n deleted branches, not 300"
[ "$(pending)" = 0 ] || fail "after gc status counts $(pending) deleted branches pending"
[ "$(md5sum <"$MNT/main/base")" = "$SUM" ] || fail "main's file changed"
[ "$(md5sum <"$MNT/kept/base")" = "$SUM" ] || fail "kept's copy of main's file changed"
[ "$(cat "$MNT/kept/own")" = kept ] || fail "kept's own file changed"
[ "$(ls "$MNT" | sort | tr '\n' ' ')" = "kept main " ] || fail "branches left: $(ls "$MNT")"
out=$(bctl gc) || fail "branchctl gc failed: $out"
grep -q "reclaimed [0-9]* unlinked files and 0 deleted branches" <<<"$out" || fail "a second gc: $out"
bfs_umount
log "PASS"
