#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 90
# t07: distinct identity.  Every branch root, and every inherited file,
# reports an st_ino of its own (Postgres keys shared memory on the data
# directory's inode); inode numbers are stable while mounted; all branches
# share one st_dev.
source "$(dirname "$0")/lib.sh"
it_init

bfs_mount
tmo 60 mkdir "$MNT/main"
echo hello >"$MNT/main/f"
mkdir "$MNT/main/d"
echo x >"$MNT/main/d/g"
for b in b1 b2 b3; do tmo 60 mkdir "$MNT/$b"; done
mkdir "$MNT/b1/sub"
tmo 60 mv "$MNT/b3" "$MNT/b3r"

declare -A seen=()
for p in main b1 b2 b3r main/f b1/f b2/f b3r/f main/d b1/d b2/d main/d/g b1/d/g b2/d/g; do
	i=$(ino "$MNT/$p")
	[ -z "${seen[$i]:-}" ] || fail "st_ino $i is shared by $MNT/${seen[$i]} and $MNT/$p"
	seen[$i]=$p
	[ "$(ino "$MNT/$p")" = "$i" ] || fail "st_ino of $p is not stable"
done
log "st_ino of 4 roots and 10 inherited entries all distinct: ${!seen[*]}"
[ "$(ino "$MNT/b1/f")" = "$(ls -i "$MNT/b1" | awk '$2 == "f" {print $1}')" ] ||
	fail "readdir d_ino and stat st_ino of b1/f differ"
devs=$(stat -c %d "$MNT/main" "$MNT/b1" "$MNT/b2" "$MNT/b3r" | sort -u | wc -l)
[ "$devs" -eq 1 ] || fail "branches report different st_dev"
[ "$(cat "$MNT/b2/d/g")" = x ] || fail "inherited file content wrong"
[ "$(stat -c %h "$MNT/main/f")" = 1 ] || fail "main/f nlink != 1"
bfs_umount
