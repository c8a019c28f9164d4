#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
# t54: making room on a full small disk (a store on a 128 MiB tmpfs filled
# until ENOSPC).  Files removed in a branch and the retention shortened:
# `branchctl gc` deletes their versions but cannot return the space (that
# takes a rewrite of RocksDB's files, which needs room it does not have), so
# it must not try the whole compaction (which used to fill the filesystem to
# its last MiB, a failed compaction away from RocksDB stopping its writes),
# and it must say what to do.  Then a branch deleted: its files go whole,
# and writes work again.
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

FS=$T/fs
it_mount_tmpfs "$FS" 128m
free_mib() { df -Pm "$FS" | awk 'NR == 2 { print $4 }'; }
bfs_mount "$FS/store" "$MNT"
mkdir "$MNT/main" "$MNT/main/d" "$MNT/b"
# fill: the branch b's own files, then main's, until ENOSPC
fill() { # DIR PREFIX MAXFILES: 4 MiB files, each synced, until one fails
	local i
	for ((i = 1; i <= $3; i++)); do
		head -c 4M /dev/urandom >"$1/$2$i" 2>/dev/null && sync "$1/$2$i" 2>/dev/null || return 0
	done
}
fill "$MNT/b" f 8
fill "$MNT/main/d" f 60
python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644); os.write(fd, b"x" * 8192); os.fsync(fd)' "$MNT/main/probe" 2>/dev/null &&
	fail "the store still takes writes after the fill: nothing was tested"
before=$(free_mib)
log "full: $before MiB free on the tmpfs, $(ls "$MNT/main/d" | wc -l) files of 4 MiB in main/d"

rm -f "$MNT"/main/d/f1*
expect_ctl 0 retention 1
sleep 2
expect_ctl 0 --json gc
after=$(free_mib)
log "rm main/d/f1*, retention 1 s, gc: $before -> $after MiB free; $(jq_ "$CTL_OUT" "d['keys_deleted']") versions deleted"
[ "$(jq_ "$CTL_OUT" "d['keys_deleted'] > 0")" = true ] || fail "gc deleted no versions of the removed files: $CTL_OUT"
# (the free space itself moves with RocksDB's flushes of what the fill left
# in its memtables: the whole compaction, which took all but one MiB, is
# checked by what gc reports)
jassert "$CTL_OUT" "d['space_low'] and d['compaction_no_room'] and not d['compacted']" "gc on a full disk"
expect_ctl 0 gc
grep -q "delete a branch" <<<"$CTL_OUT" || fail "gc on a full disk does not say how to make room: $CTL_OUT"

expect_ctl 0 delete b
expect_ctl 0 --json gc
jassert "$CTL_OUT" "d['branches_dropped'] == 1" "gc after deleting b"
ok=0
for ((i = 0; i < 10; i++)); do
	if python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644); os.write(fd, b"x" * 8192); os.fsync(fd)' "$MNT/main/probe"; then
		ok=1
		break
	fi
	sleep 1
done
[ $ok = 1 ] || fail "writes still fail after deleting branch b and gc ($(free_mib) MiB free)"
log "deleted b: writes work again, $(free_mib) MiB free"
bfs_umount
