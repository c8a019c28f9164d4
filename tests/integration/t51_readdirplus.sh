#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 90
# t51: a directory listing is a snapshot (taken at opendir), but readdirplus
# hands the kernel a dentry for every entry it fills in: an entry renamed
# away or unlinked between opendir and the first readdir must not come back
# as a name the kernel believes in (a file found under its old name, a
# directory in two places, later ESTALE on paths through it).  After
# opendir, another process moves a directory and renames a file (in a
# branch), and renames a branch (at the branch root); the first getdents of
# the old descriptor must leave the old names absent, as on the local disk.
source "$(dirname "$0")/lib.sh"
it_init

BRANCHCTL=${BRANCHCTL:-$IT_ROOT/bin/branchctl}

# stale DIR MOVES: opendir DIR, run the "mv OLD NEW" pairs of MOVES (one
# per line) from another process, one getdents on the old descriptor, then
# print "NAME ok" or "NAME ENOENT" for every old and new name, in order
STALE_PY='
import ctypes, os, subprocess, sys
d, moves = sys.argv[1], [m.split() for m in sys.argv[2].strip().splitlines()]
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
for old, new in moves:
    subprocess.run(["mv", os.path.join(d, old), os.path.join(d, new)], check=True)
buf = ctypes.create_string_buffer(65536)
if libc.syscall(217, fd, buf, len(buf)) < 0:
    sys.exit("getdents64: " + os.strerror(ctypes.get_errno()))
os.close(fd)
for old, new in moves:
    for n in (old, new):
        print(n, "ok" if os.path.lexists(os.path.join(d, n)) else "ENOENT")
'
stale() { tmo 30 python3 -c "$STALE_PY" "$@"; }

bfs_mount
mkdir "$MNT/main"
mkdir "$MNT/b1"
REF=$T/ref
for top in "$MNT/main/d" "$REF"; do
	mkdir -p "$top/sub" "$top/a"
	touch "$top/a/inside" "$top/f"
done
want=$(stale "$REF" "a sub/a
f g")
got=$(stale "$MNT/main/d" "a sub/a
f g")
[ "$got" = "$want" ] ||
	fail "names after a readdirplus of a listing older than two renames: got
$got
expected (as on the local disk)
$want"
log "a file and a directory renamed after opendir: old names gone, as on the local disk"
# the directory is in one place only (no alias left at its old name)
[ "$(ino "$MNT/main/d/sub/a")" = "$(ino "$MNT/main/d/sub/a/.")" ] || fail "sub/a is not itself"
[ -e "$MNT/main/d/sub/a/inside" ] || fail "sub/a/inside is missing"

got=$(stale "$MNT" "b1 b2")
[ "$got" = "b1 ENOENT
b2 ok" ] || fail "branch renamed after opendir of the root: got $got"
log "a branch renamed after opendir of the root: its old name is gone"
