#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
# t09: FUSE over io_uring (-o io_uring).  With the fuse module's
# enable_uring parameter on (Linux 6.14+; the test turns it on and puts the
# old value back), requests go through the ring: the POSIX checks of t05
# match the reference filesystem, and so do t23's random operations (fs_model.py,
# 4 processes at once, branches made, reset and deleted); stock Postgres runs (initdb, pgbench, a
# branch of the running cluster under load that recovers from its WAL,
# pg_amcheck), the log counts the requests the ring served, and what was
# written through the ring reads back the same through /dev/fuse after a
# remount.  branchd killed with SIGKILL while commits flow through the ring
# loses none that Postgres acknowledged.  With the parameter off,
# -o io_uring says so in its log and serves through /dev/fuse.  On a kernel without the parameter only that
# fallback can be checked, and the test says so.
source "$(dirname "$0")/lib.sh"
it_init

PARAM=/sys/module/fuse/parameters/enable_uring
# the log of the newest mount of MNT
mount_log() { ls -t "$T"/log/branchd-"$(basename "$MNT")"-*.log | head -n 1; }

# ---- fallback: the kernel does not offer the ring ----------------------------
if [ -e "$PARAM" ]; then
	it_set_param "$PARAM" N
fi
bfs_mount "$T/fbstore" "$MNT" io_uring
tmo 60 mkdir "$MNT/fb"
echo through-dev-fuse >"$MNT/fb/f"
[ "$(cat "$MNT/fb/f")" = through-dev-fuse ] || fail "read back through /dev/fuse failed"
bfs_umount
grep -q 'the kernel does not offer FUSE over io_uring' "$(mount_log)" ||
	fail "with enable_uring off, -o io_uring did not log its fallback: $(cat "$(mount_log)")"
! grep -q 'FUSE over io_uring:' "$(mount_log)" || fail "the ring was set up although the kernel did not offer it"
log "fallback: -o io_uring serves through /dev/fuse when the kernel does not offer the ring"
if [ ! -e "$PARAM" ]; then
	log "this kernel ($(uname -r)) has no $PARAM (Linux < 6.14): only the fallback was checkable"
	exit 0
fi

# ---- through the ring -------------------------------------------------------------
it_set_param "$PARAM" Y
bfs_mount "$STORE" "$MNT" io_uring
grep -q 'FUSE over io_uring: [0-9]* queues' "$(mount_log)" ||
	fail "the ring was not set up: $(cat "$(mount_log)")"

PROG=$T/posix_ops.py
cp "$IT_ROOT/tests/integration/posix_ops.py" "$PROG"
mkdir "$T/ref"
tmo 120 python3 "$PROG" "$T/ref" >"$T/ref.out" 2>"$T/log/ref.err" ||
	fail "posix_ops.py failed on the reference fs: $(cat "$T/log/ref.err")"
mk_branch main
mkdir "$MNT/main/w"
tmo 120 python3 "$PROG" "$MNT/main/w" >"$T/ring.out" 2>"$T/log/ring.err" ||
	fail "posix_ops.py crashed over the ring: $(tail -n 20 "$T/log/ring.err")"
if ! diff -u "$T/ref.out" "$T/ring.out" >"$T/ring.diff"; then
	cat "$T/ring.diff" >&2
	fail "POSIX results over the ring differ from $(stat -f -c %T "$T/ref") (diff above)"
fi
log "POSIX checks over the ring match $(stat -f -c %T "$T/ref") ($(wc -l <"$T/ref.out") checks)"

# t23's random model over the ring, on a store of its own, 4 processes at once
mkdir -p "$T/mref/main"
cp "$IT_ROOT/tests/integration/fs_model.py" "$T/fs_model.py"
bfs_mount "$T/mstore" "$T/mmnt" io_uring
tmo 60 mkdir "$T/mmnt/main"
out=$(tmo 200 python3 "$T/fs_model.py" "$T/mref" "$T/mmnt" "$BRANCHCTL" "$T/model.json" 9 8000 4) ||
	fail "the random model (fs_model.py, seed 9, 4 processes) found a difference over the ring (see above)"
log "over the ring: $out"
bfs_umount "$T/mmnt"

rm -rf "$MNT/main/w"
free_port P1
free_port P2
pg_initdb "$MNT/main"
pg_start "$MNT/main" "$P1"
run_pgbench "$P1" -i -s 5 -q
q "$P1" "create table marker(id int primary key, note text not null)"
q "$P1" "insert into marker values (1, 'before-branch')"
bg_pgbench "$P1" 4 20 8
mk_child pr-1
q "$P1" "insert into marker values (2, 'after-branch')"
pg_start "$MNT/pr-1" "$P2"
[ "$(q "$P2" "select string_agg(note, ',' order by id) from marker")" = before-branch ] ||
	fail "pr-1 (a branch of main under load) does not hold exactly the rows committed before mkdir"
q "$P2" "insert into marker values (3, 'pr-1')"
bg_pgbench_wait
run_pgbench "$P2" -c 2 -T 5
amcheck "$P1"
amcheck "$P2"

digest_pair marker "$P1" "$P2"
pg_stop "$MNT/pr-1"
pg_stop "$MNT/main"
bfs_umount
served=$(sed -n 's/.*io_uring: \([0-9]*\) requests served through the ring.*/\1/p' "$(mount_log)")
[ -n "$served" ] || fail "no count of requests served through the ring in the log: $(tail -n 20 "$(mount_log)")"
[ "$served" -ge 10000 ] || fail "only $served requests went through the ring: the workload went elsewhere"
! grep -qE 'io_uring: (malformed|no reply|entry of queue|cannot set up)' "$(mount_log)" ||
	fail "the ring logged a fault: $(grep -E 'io_uring:' "$(mount_log)")"
log "the ring served $served requests"

# ---- the same data through /dev/fuse ----------------------------------------------
bfs_mount "$STORE" "$MNT"
! grep -q 'FUSE over io_uring:' "$(mount_log)" || fail "the ring was set up without -o io_uring"
pg_start "$MNT/main" "$P1"
pg_start "$MNT/pr-1" "$P2"
[ "$(q "$P1" "$DIGEST")" = "$D1" ] || fail "main reads back differently through /dev/fuse"
[ "$(q "$P2" "$DIGEST")" = "$D2" ] || fail "pr-1 reads back differently through /dev/fuse"
[ "$(q "$P2" "select string_agg(note, ',' order by id) from marker")" = before-branch,pr-1 ] ||
	fail "pr-1 rows wrong after remount"
log "both branches read back the same through /dev/fuse"
pg_stop "$MNT/pr-1"
pg_stop "$MNT/main"
bfs_umount

# ---- SIGKILL while commits go through the ring ------------------------------------
bfs_mount "$STORE" "$MNT" io_uring
grep -q 'FUSE over io_uring: [0-9]* queues' "$(mount_log)" || fail "the ring was not set up for the kill"
pg_start "$MNT/main" "$P1"
q "$P1" "create table acked(id int primary key)"
"$PGBIN/pgbench" -n -h "$SOCK" -p "$P1" -U postgres -c 2 -j 2 -T 60 postgres >"$T/log/bg-pgbench2.out" 2>&1 &
IT_BG+=("$!")
# (-n: no truncation of pgbench_history, whose deltas must keep adding up
# to the balances over all runs)
acked_loop "$P1" "$T/acked"
sleep 6
n_acked=$(wc -l <"$T/acked")
[ "$n_acked" -gt 10 ] || fail "only $n_acked commits acknowledged before the kill"
pid=${IT_MNTPID[$MNT]}
kill -KILL "$pid"
_it_wait_gone "$pid" 10 || fail "branchd $pid survived SIGKILL"
n_acked=$(wc -l <"$T/acked") # one may have been acknowledged as the kill landed
log "killed branchd $pid (serving through the ring) after $n_acked acknowledged commits"
for bg in "${IT_BG[@]}"; do kill -TERM "$bg" 2>/dev/null || true; done
pm=${IT_PGPID[$MNT/main]}
kill -QUIT "$pm" 2>/dev/null || true
_it_wait_gone "$pm" 30 || kill -KILL "$pm" 2>/dev/null || true
_it_wait_gone "$pm" 10 || fail "postmaster $pm does not exit after its filesystem died"
tmo 20 fusermount3 -u "$MNT" 2>/dev/null || tmo 20 fusermount3 -uz "$MNT" || fail "cannot unmount the dead mount"
! is_mounted "$MNT" || fail "$MNT still mounted after fusermount3"
bfs_mount "$STORE" "$MNT"
pg_start "$MNT/main" "$P1"
got=$(q "$P1" "select count(*) from acked where id <= $n_acked")
[ "$got" -eq "$n_acked" ] || fail "lost acknowledged commits: $got of 1..$n_acked present"
[ "$(q "$P1" "$PGBENCH_SUMS")" = t ] || fail "balances disagree with pgbench_history after recovery"
# amcheck's extension is there since the first part (amcheck() would print
# its "already exists" notice)
out=$(tmo 300 "$PGBIN/pg_amcheck" -h "$SOCK" -p "$P1" -U postgres --all --heapallindexed 2>&1) ||
	fail "pg_amcheck after the kill failed: $out"
[ -z "$out" ] || fail "pg_amcheck after the kill reported: $out"
log "all $n_acked acknowledged commits survived kill -9 of branchd serving through the ring; balances add up, pg_amcheck clean"
pg_stop "$MNT/main"
bfs_umount
