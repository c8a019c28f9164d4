#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
# t59: a store of more table files than the limit on open files allows
# keeps serving Postgres.  branchd lifts its soft limit to the hard one, but
# under a hard limit (LimitNOFILE= of a systemd unit, docker's --ulimit)
# RocksDB kept every table file open (max_open_files -1): a store that grew
# past the limit failed its flushes and reads with "Too many open files",
# after which every write was EIO, and the next start failed to open the
# store at all.  Now branchd sets aside what FUSE, the control socket and
# its own files may hold and lets RocksDB keep the rest open, closing the
# least recently read table file past it.  The store is made of small table
# files (the test seam BRANCHFS_TEST_SST_KIB), so that some 100 MB of
# pgbench data make several hundred of them.  A limit below what branchd
# needs is refused with one line.
source "$(dirname "$0")/lib.sh"
it_init

LIMIT=320
# Everything from here on, branchd, Postgres and psql, runs under it: soft
# and hard (branchd can lift neither).
ulimit -n "$LIMIT"
IT_BD_ENV=(BRANCHFS_TEST_SST_KIB=64)
# Unmount and wait for branchd to exit, longer than bfs_umount does: with
# table files this small RocksDB's last compaction, which its close waits
# for, syncs hundreds of them, which took more than 30 s on a busy disk.
umount_wait() {
	local pid=${IT_MNTPID[$MNT]} n
	tmo 30 fusermount3 -u "$MNT" || fail "fusermount3 -u $MNT failed"
	for ((n = 0; n < 240; n++)); do
		_it_alive "$pid" || break
		sleep 0.5
	done
	! _it_alive "$pid" || fail "branchd $pid still running 120 s after unmount"
	log "unmounted $MNT after $((n / 2)) s"
}
free_port port

# a limit that leaves too few for the store's table files is refused
out=$( (ulimit -n 200 && tmo 30 "$BRANCHD" -f "$T/store-low" "$T/mnt-low") 2>&1) &&
	fail "branchd started under ulimit -n 200"
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "refusal of ulimit -n 200 is not one line: $out"
[[ "$out" == *"limit on open files is 200"*"raise it"* ]] ||
	fail "refusal of ulimit -n 200 does not say what to raise: $out"
[ ! -e "$T/store-low" ] || fail "branchd refused to run but made a store"
log "ulimit -n 200 refused: $out"

bfs_mount
grep -q "limit on open files $LIMIT: at most [0-9]* of the store's table files open" "$T"/log/branchd-mnt-*.log ||
	fail "branchd did not log its budget of table files: $(cat "$T"/log/branchd-mnt-*.log)"
mk_branch main postgres
pg_initdb "$MNT/main"
pg_start "$MNT/main" "$port"
run_pgbench "$port" -i -s 6 -q
run_pgbench "$port" -t 200 -c 4 -j 2
q "$port" "CHECKPOINT" >/dev/null
nsst=$(find "$STORE/db" -name '*.sst' | wc -l)
[ "$nsst" -gt "$LIMIT" ] ||
	fail "the store has $nsst table files, not more than the limit $LIMIT: the test checks nothing"
log "store has $nsst table files under a limit of $LIMIT"
want=$(q "$port" "SELECT sum(abalance) FROM pgbench_accounts")
amcheck "$port"
pg_stop "$MNT/main"
umount_wait

# opened again under the same limit: every table file is there at open
bfs_mount
pg_start "$MNT/main" "$port"
[ "$(q "$port" "SELECT sum(abalance) FROM pgbench_accounts")" = "$want" ] ||
	fail "pgbench_accounts' sum changed across the remount"
run_pgbench "$port" -t 200 -c 4 -j 2
amcheck "$port"
pg_stop "$MNT/main"
nfd=$(find "/proc/${IT_MNTPID[$MNT]}/fd" -mindepth 1 | wc -l)
log "branchd holds $nfd descriptors"
umount_wait
# --check of the store under the same limit reads every table file
out=$(tmo 120 "$BRANCHD" --check "$STORE" 2>&1) || fail "branchd --check under ulimit -n $LIMIT failed: $out"
log "$out"
# and a limit too low for a check is refused, where RocksDB's iterators
# could end early without an error and the check say clean
out=$( (ulimit -n 100 && tmo 60 "$BRANCHD" --check "$STORE") 2>&1) &&
	fail "branchd --check ran under ulimit -n 100: $out"
[[ "$out" == *"limit on open files is 100"* ]] || fail "--check under ulimit -n 100 says: $out"
log "$out"
if grep -il "too many open files\|EMFILE" "$T"/log/*.log; then
	fail "a log says 'Too many open files': $(grep -ih "too many open files\|EMFILE" "$T"/log/*.log | head -n 5)"
fi
log "PASS"
