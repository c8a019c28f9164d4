#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
# t43: a store on a small filesystem (a 64 MiB tmpfs) that Postgres fills.
#  - when the disk is full, RocksDB's WAL files take a small part of it:
#    a WAL file goes only once every column family with writes in it has
#    flushed, and with RocksDB's max_total_wal_size at 256 MiB the META
#    family's few small writes kept nearly every WAL file (20 of 55 MiB
#    when the disk ran full, and about 40% fewer rows fitted);
#  - writes fail (Postgres stops at an ENOSPC), branchd stays up;
#  - the filesystem is grown (to 1 GiB); branchd takes writes again (or, if it does
#    not within 30 s, a restart of it must), Postgres recovers with every
#    acknowledged batch, pg_amcheck is clean and new writes work.
source "$(dirname "$0")/lib.sh"
it_init


SMALL=$T/small
it_mount_tmpfs "$SMALL" 64m
ST=$SMALL/store
M=$T/mnt
bfs_mount "$ST" "$M"
bpid=${IT_MNTPID[$M]}
D=$M/main
mkdir "$D"
chown postgres: "$D"
chmod 0700 "$D"
pg_initdb "$D"
free_port P
pg_start "$D" "$P"
q "$P" "create table fill(batch int, n int, pad text)" >/dev/null
log "tmpfs after initdb: $(df -m --output=used,avail "$SMALL" | tail -n 1 | tr -s ' ') MiB used/free"

: >"$T/acked"
err=""
for ((i = 1; i <= 3000; i++)); do
	if out=$(tmo 120 "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$P" -U postgres -d postgres \
		-c "insert into fill select $i, g, repeat(md5(g::text), 4) from generate_series(1, 2000) g" 2>&1); then
		echo "$i" >>"$T/acked"
	else
		err=$out
		break
	fi
done
nacked=$(wc -l <"$T/acked")
[ -n "$err" ] || fail "3000 batches fit: the filesystem never filled up"
grep -qiE "No space left on device|could not (extend|write)|terminat|server closed|PANIC" <<<"$err" ||
	fail "Postgres failed with an unexpected error: $err"
wal=$(find "$ST/db" -maxdepth 1 -name '*.log' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
sst=$(find "$ST/db" -maxdepth 1 -name '*.sst' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
log "full after $nacked acknowledged batches: WAL files $((wal >> 20)) MiB, tables $((sst >> 20)) MiB, $(df -m --output=avail "$SMALL" | tail -n 1 | tr -d ' ') MiB free"
# max_total_wal_size is 1/16 of the filesystem (4 MiB here), at least two
# block memtables (2 MiB each); a flush may still be on its way
[ "$wal" -le $((10 << 20)) ] ||
	fail "RocksDB's WAL files take $((wal >> 20)) MiB of the full 64 MiB filesystem (at most 10 expected)"
_it_alive "$bpid" || fail "branchd died when the disk filled up"
[ "$(cat "$D/PG_VERSION")" = 15 ] || fail "cannot read PG_VERSION on the full store"

# grow the filesystem: writes must work again, without a restart if RocksDB
# took no background error while the disk was full, and otherwise once
# branchd, which says so in its log, is restarted
_it_pg_kill "$D"
# to 1 GiB: each crash recovery rewrites every page it replays, and the
# store keeps the old versions inside the retention window (an hour), so
# a recovery or two after a PANIC take tens of MiB each
mount -o remount,size=1g "$SMALL"
bdlog() { cat "$T"/log/branchd-mnt-*.log; }
used() { df -m --output=used,avail "$SMALL" | tail -n 1 | tr -s ' '; }
restart_bd() {
	log "tmpfs used/free MiB before the restart: $(used)"
	grep -q "unmount and mount the store again" < <(bdlog) ||
		fail "writes fail after the filesystem grew, and branchd's log does not say what to do: $(bdlog | tail -n 5)"
	log "branchd says RocksDB stopped on a background error: restarting it"
	_it_pg_kill "$D"
	tmo 30 fusermount3 -u "$M" || fail "cannot unmount the store after the disk-full episode"
	_it_wait_gone "$bpid" 30 || fail "branchd did not exit after unmount"
	bfs_mount "$ST" "$M"
	bpid=${IT_MNTPID[$M]}
	restarted=1
}
restarted=0
ok=0
for ((n = 0; n < 30; n++)); do
	if tmo 30 python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644); os.write(fd, b"x" * 8192); os.fsync(fd)' "$D/probe" 2>/dev/null; then
		ok=1
		break
	fi
	sleep 1
done
[ $ok = 1 ] && log "writes work again $n s after the filesystem grew (tmpfs used/free MiB: $(used))" || restart_bd
rm -f "$D/probe" "$D/postmaster.pid"
pg_start "$D" "$P"
if ! q "$P" "insert into fill select -1, g, 'after' from generate_series(1, 1000) g; checkpoint" >/dev/null 2>&1; then
	[ $restarted = 0 ] || fail "Postgres cannot write after the filesystem grew and branchd was restarted"
	restart_bd
	rm -f "$D/postmaster.pid"
	pg_start "$D" "$P"
	q "$P" "insert into fill select -1, g, 'after' from generate_series(1, 1000) g; checkpoint" >/dev/null ||
		fail "Postgres cannot write after the filesystem grew and branchd was restarted"
fi
got=$(q "$P" "select count(distinct batch) from fill where batch between 1 and $nacked")
[ "$got" -eq "$nacked" ] || fail "after the disk-full episode only $got of $nacked acknowledged batches are present"
bad=$(q "$P" "select count(*) from (select batch from fill where batch > 0 group by batch having count(*) <> 2000) s")
[ "$bad" -eq 0 ] || fail "$bad batches are partially present"
amcheck "$P"
pg_stop "$D"
bfs_umount "$M"
log "small disk: WAL $((wal >> 20)) MiB at full, $nacked batches all present after growing the filesystem (branchd restarted: $restarted)"
