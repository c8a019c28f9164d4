#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
# t42: a deleted branch's data is compacted away in the background, GC or
# no GC, and a crash does not forget it.  branchd runs with gc_interval=0.
#  - 300 branches of main (half with a file of their own) are made and
#    removed by mkdir/rmdir; within 15 s `branchctl status` counts no
#    deleted branch still pending, the log's "compacted away N deleted
#    branches' data" lines add up to 300, and main and a branch made among
#    them (kept) read what they read before;
#  - 5 more are removed and branchd is killed with SIGKILL at once (before
#    its 2 s delay): after a remount status counts 5 pending (or the new
#    daemon has already compacted them and says so in its log), then 0,
#    and the new daemon's log says it compacted those 5.
# No Postgres: mkdir and rmdir are what CI scripts do.
source "$(dirname "$0")/lib.sh"
it_init

BRANCHCTL=${BRANCHCTL:-$IT_ROOT/bin/branchctl}
[ -x "$BRANCHCTL" ] || fail "$BRANCHCTL not built: run 'make all' first"
bctl() { tmo 60 "$BRANCHCTL" --mount "$MNT" "$@"; }
pending() {
	bctl --json status | python3 -c 'import json, sys; print(json.load(sys.stdin)["deleted_pending"])'
}
daemon_log() { ls -t "$T"/log/branchd-"$(basename "$MNT")"-*.log | head -n 1; }
# compacted LOG: the branches the log says were compacted away, summed
compacted() {
	sed -n "s/.*compacted away \([0-9]*\) deleted branches' data.*/\1/p" "$1" |
		awk '{ n += $1 } END { print n + 0 }'
}
# wait_drained SECONDS: until status counts no pending deleted branch
wait_drained() {
	local n
	for ((n = 0; n < $1 * 10; n++)); do
		[ "$(pending)" = 0 ] && return 0
		sleep 0.1
	done
	fail "deleted branches still pending after $1 s: $(pending)"
}

bfs_mount "$STORE" "$MNT" gc_interval=0
LOG1=$(daemon_log)
mkdir "$MNT/main" || fail "mkdir main"
head -c $((1 << 20)) /dev/urandom >"$MNT/main/base"
SUM=$(md5sum <"$MNT/main/base")

python3 - "$MNT" <<'EOF' || fail "mkdir/rmdir churn failed"
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
EOF
log "300 branches made and removed; pending right after: $(pending)"
wait_drained 15
n=$(compacted "$LOG1")
[ "$n" = 300 ] || fail "the log says $n deleted branches were compacted away, not 300: $(grep 'compacted away' "$LOG1")"
[ "$(md5sum <"$MNT/main/base")" = "$SUM" ] || fail "main's file changed"
[ "$(md5sum <"$MNT/kept/base")" = "$SUM" ] || fail "kept's copy of main's file changed"
[ "$(cat "$MNT/kept/own")" = kept ] || fail "kept's own file changed"
[ "$(ls "$MNT" | sort | tr '\n' ' ')" = "kept main " ] || fail "branches left: $(ls "$MNT")"
log "all 300 compacted away: $(grep 'compacted away' "$LOG1" | tr '\n' ';')"

# Five more, then a crash before the 2 s delay is up.
for i in 1 2 3 4 5; do
	mkdir "$MNT/d$i" && rmdir "$MNT/d$i" || fail "mkdir/rmdir d$i"
done
pid=${IT_MNTPID[$MNT]}
kill -KILL "$pid"
_it_wait_gone "$pid" 10 || fail "branchd $pid survived SIGKILL?"
tmo 20 fusermount3 -u "$MNT" 2>/dev/null || tmo 20 fusermount3 -uz "$MNT" || fail "cannot unmount the dead mount"
n=$(compacted "$LOG1")
[ "$n" = 300 ] || fail "the killed daemon compacted the last 5 before its delay was up (log: $n)"

sleep 0.01 # a distinct log file name
bfs_mount "$STORE" "$MNT" gc_interval=0
LOG2=$(daemon_log)
[ "$LOG2" != "$LOG1" ] || fail "no new daemon log"
p=$(pending)
log "after the crash and remount: $p pending"
[ "$p" = 5 ] || [ "$p" = 0 ] || fail "after the remount $p deleted branches are pending, not 5"
wait_drained 15
n=$(compacted "$LOG2")
[ "$n" = 5 ] || fail "after the remount the log says $n were compacted away, not 5: $(cat "$LOG2")"
[ "$(md5sum <"$MNT/main/base")" = "$SUM" ] || fail "main's file changed after the remount"
bfs_umount
log "PASS"
