#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 240
# t62: pgbench (and a loop of acknowledged single-row commits) on main while
# the store's filesystem (a 128 MiB tmpfs) fills up; a second branch holds
# 24 MiB of its own.
#  - Postgres stops with a clean "No space left on device" (a PANIC at a
#    WAL fsync is its normal way), never an I/O error; branchd stays up and
#    branchctl answers;
#  - at full disk, rmdir of the other branch works and branchctl gc drops
#    it (the store shrank by 23-24 MiB in 7 of 13 runs, by 4-5 in 3 and not
#    at all in 3: what RocksDB's files share with main's keys waits for a
#    compaction, which gc skips without room for it);
#  - with the filesystem grown, Postgres restarts: every acknowledged
#    commit is there, pgbench's balances add up, pg_amcheck is clean, and
#    pgbench commits again.
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

SMALL=$T/small
it_mount_tmpfs "$SMALL" 128m
MNT=$T/mnt
bfs_mount "$SMALL/store" "$MNT"
bpid=${IT_MNTPID[$MNT]}
D=$MNT/main
mk_branch main
pg_initdb "$D"
free_port P
pg_start "$D" "$P"
tmo 300 "$PGBIN/pgbench" -h "$SOCK" -p "$P" -U postgres -i -s 2 -q postgres >"$T/log/pgbench-init.out" 2>&1 ||
	fail "pgbench -i failed: $(tail -n 5 "$T/log/pgbench-init.out")"
q "$P" "create table acked(id int primary key)" >/dev/null
mkdir "$MNT/other"
head -c $((24 << 20)) /dev/urandom >"$MNT/other/big"
sync -f "$MNT/other/big"
free_mib() { df -m --output=avail "$SMALL" | tail -n 1 | tr -d ' '; }
log "before the load: $(free_mib) MiB free"

: >"$T/acked"
acked_loop "$P" "$T/acked"
rc=0
tmo 200 "$PGBIN/pgbench" -h "$SOCK" -p "$P" -U postgres -c 4 -j 2 -T 150 -n postgres >"$T/log/pgb.out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "pgbench ran 150 s without meeting the full disk: the test proves nothing"
grep -q "No space left on device" "$T"/log/pg-main-*.log ||
	fail "Postgres did not stop on a full disk: $(grep -hiE 'error|fatal|panic' "$T/log/pgb.out" "$T"/log/pg-main-*.log | head -n 3)"
! grep -qi "input/output error" "$T/log/pgb.out" "$T"/log/pg-main-*.log ||
	fail "Postgres met an I/O error: $(grep -hi 'input/output error' "$T/log/pgb.out" "$T"/log/pg-main-*.log | head -n 2)"
log "Postgres stopped: $(grep -h -m 1 'No space left on device' "$T"/log/pg-main-*.log | cut -c1-160)"
_it_alive "$bpid" || fail "branchd died when the disk filled up"
expect_ctl 0 status

# make room: the other branch and its 24 MiB
_it_pg_kill "$D"
expect_op OK rmdir "$MNT/other"
ctl --json gc
[ "$CTL_RC" -eq 0 ] || fail "branchctl gc at full disk failed: $CTL_ERR"
jassert "$CTL_OUT" 'd["branches_dropped"] == 1' "gc after rmdir at full disk"
log "rmdir other + gc at full disk: store $(jq_ "$CTL_OUT" 'd["disk_before"] >> 20') -> $(jq_ "$CTL_OUT" 'd["disk_after"] >> 20') MiB, $(free_mib) MiB free"
# Postgres's crash recovery rewrites every page it replays, and the store
# keeps the old versions for the retention window (an hour): room for it,
# so that what is checked next is the data, not a second full disk
mount -o remount,size=512m "$SMALL"

rm -f "$D/postmaster.pid"
pg_start "$D" "$P"
nacked=$(wc -l <"$T/acked")
got=$(q "$P" "select count(*) from acked where id <= $nacked")
[ "$got" -eq "$nacked" ] || fail "only $got of $nacked acknowledged commits survived the full disk"
sums=$(q "$P" "$PGBENCH_SUMS") || fail "the query of pgbench's balances failed: $sums"
[ "$sums" = t ] || fail "pgbench's balances do not add up after the full disk"
amcheck "$P"
run_pgbench "$P" -c 1 -t 50 -n
pg_stop "$D"
bfs_umount "$MNT"
log "full disk under pgbench: $nacked acknowledged commits kept"
