#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
# t61: a store on a 64 MiB ext4 (a loop device) with 10% of its blocks
# reserved for root, which an ordinary user then fills: statvfs's f_bavail
# is 0, f_bfree still the reserved blocks.
#  - branchd --check as that user, on a store of its own, checks it (exit
#    0): it opens the store read-only and writes nothing (it was refused,
#    "KiB free, and opening it needs", when its open wrote RocksDB's files);
#  - root's branchd --check and mount open the store, since root may write
#    the reserved blocks (branchd used to count f_bavail for root too and
#    refuse: "has 0 KiB free"); reads work, new data is refused (ENOSPC:
#    the store's reserve leaves root's blocks alone), a branch deletes;
#  - once the user's file goes, writes work again.
source "$(dirname "$0")/lib.sh"
it_init

img=$T/ext4.img
E=$T/ext4
truncate -s 64M "$img"
mkfs.ext4 -q -F -m 10 -b 4096 "$img" || fail "mkfs.ext4 failed"
mkdir -p "$E"
mount -o loop "$img" "$E" || fail "cannot mount $img on a loop device"
IT_TMPFS+=("$E") # unmounted by the cleanup, after the daemons
chmod 1777 "$E"

ST=$E/store
M=$T/mnt
bfs_mount "$ST" "$M"
mkdir "$M/main" "$M/b1"
head -c $((2 << 20)) /dev/urandom >"$T/data"
cp "$T/data" "$M/main/data"
sync -f "$M/main/data"
bfs_umount "$M"
# a second store, for the ordinary user's --check
cp -a "$ST" "$E/store2"
chown -R nobody: "$E/store2"

AS_NOBODY="setpriv --reuid=nobody --regid=nogroup --clear-groups"
# shellcheck disable=SC2086
$AS_NOBODY sh -c "cat /dev/zero >'$E/fill'" 2>/dev/null || true
read -r bavail bfree < <(python3 -c 'import os, sys; v = os.statvfs(sys.argv[1]); print(v.f_bavail * v.f_frsize, v.f_bfree * v.f_frsize)' "$E")
log "after the user's fill: f_bavail $((bavail >> 10)) KiB, f_bfree $((bfree >> 10)) KiB"
[ "$bavail" -lt $((1 << 20)) ] || fail "the user's fill left $((bavail >> 10)) KiB for users"
[ "$bfree" -gt $((2 << 20)) ] || fail "only $((bfree >> 10)) KiB reserved for root: the test proves nothing"

rc=0
# shellcheck disable=SC2086
out=$(tmo 60 $AS_NOBODY "$BRANCHD" --check "$E/store2" 2>&1) || rc=$?
[ $rc -eq 0 ] || fail "branchd --check as an ordinary user on the full filesystem exited $rc (it writes nothing): $out"
grep -q "0 damaged records, 0 damaged blocks" <<<"$out" || fail "branchd --check as an ordinary user: $out"
log "ordinary user's --check on the full filesystem: $(tail -n 1 <<<"$out")"

out=$(tmo 60 "$BRANCHD" --check "$ST" 2>&1) || fail "root's branchd --check refused the store with root's blocks free: $out"
bfs_mount "$ST" "$M"
[ "$(md5sum <"$M/main/data")" = "$(md5sum <"$T/data")" ] || fail "main/data reads back different"
expect_op ENOSPC mkdir "$M/main/newdir"
expect_op OK rmdir "$M/b1" # deletes may use root's blocks
rm -f "$E/fill"
n=0
until mkdir "$M/main/newdir" 2>/dev/null; do
	n=$((n + 1))
	[ $n -lt 100 ] || fail "mkdir still fails 1 s after the user's file was deleted"
	sleep 0.01
done
bfs_umount "$M"
log "root opens a store on a filesystem users filled; writes resume after $((n * 10)) ms"
