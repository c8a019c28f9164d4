#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 150
# t05: every POSIX call Postgres makes (posix_ops.py) gives the same
# results and errnos in a branch as on ext4: once in a fresh branch, once in
# a child branch whose parent already holds the first run's files (COW
# path).  The child must also show the parent's files exactly.
source "$(dirname "$0")/lib.sh"
it_init

# A copy in the test's own (world-readable) temp dir: the checkout may sit
# in a directory the postgres user cannot enter (a mktemp -d clone).
PROG=$T/posix_ops.py
cp "$IT_ROOT/tests/integration/posix_ops.py" "$PROG"
chmod 0644 "$PROG"
mkdir "$T/ref"
fstype=$(stat -f -c %T "$T/ref")
log "reference run on $T/ref ($fstype)"
[ "$fstype" = ext2/ext3 ] || log "note: reference dir is $fstype, not ext4"
tmo 120 python3 "$PROG" "$T/ref" >"$T/ref.out" 2>"$T/log/ref.err" || fail "posix_ops.py failed on the reference fs: $(cat "$T/log/ref.err")"
grep -q ASSERT "$T/ref.out" && fail "posix_ops.py asserts on the reference fs: $(grep ASSERT "$T/ref.out")"

bfs_mount
tmo 60 mkdir "$MNT/main"
mkdir "$MNT/main/w"
log "run in branch main"
tmo 120 python3 "$PROG" "$MNT/main/w" >"$T/main.out" 2>"$T/log/main.err" ||
	fail "posix_ops.py crashed in branch main: $(tail -n 20 "$T/log/main.err")"
rc=0
diff -u "$T/ref.out" "$T/main.out" >"$T/main.diff" || rc=1
if [ $rc -ne 0 ]; then
	cat "$T/main.diff" >&2
	fail "POSIX results in a branch differ from $fstype (diff above: - $fstype, + branchfs)"
fi
log "branch main matches $fstype ($(wc -l <"$T/ref.out") checks)"

tmo 60 mkdir "$MNT/child"
diff -r --no-dereference "$MNT/main/w" "$MNT/child/w" >"$T/tree.diff" 2>&1 ||
	fail "child branch differs from its parent right after mkdir: $(head -n 20 "$T/tree.diff")"
[ "$(cd "$MNT/main/w" && find . -printf '%p %y %m %U %G %s\n' | sort | md5sum)" = \
  "$(cd "$MNT/child/w" && find . -printf '%p %y %m %U %G %s\n' | sort | md5sum)" ] ||
	fail "child branch metadata differs from its parent"
log "child branch shows the parent's files exactly"

mkdir "$MNT/child/w2"
log "run in child branch (over inherited data)"
tmo 120 python3 "$PROG" "$MNT/child/w2" >"$T/child.out" 2>"$T/log/child.err" ||
	fail "posix_ops.py crashed in branch child: $(tail -n 20 "$T/log/child.err")"
if ! diff -u "$T/ref.out" "$T/child.out" >"$T/child.diff"; then
	cat "$T/child.diff" >&2
	fail "POSIX results in a child branch differ from $fstype"
fi
# the same calls as the postgres user (no privileges), in a dir it owns
AS_PGU="setpriv --reuid=postgres --regid=postgres --init-groups"
mkdir "$T/refpg" "$MNT/main/wpg"
chown postgres: "$T/refpg" "$MNT/main/wpg"
(cd "$T" && tmo 120 $AS_PGU /usr/bin/python3 "$PROG" "$T/refpg" >"$T/refpg.out" 2>"$T/log/refpg.err") ||
	fail "posix_ops.py as postgres failed on the reference fs: $(tail -n 20 "$T/log/refpg.err")"
(cd "$T" && tmo 120 $AS_PGU /usr/bin/python3 "$PROG" "$MNT/main/wpg" >"$T/pg.out" 2>"$T/log/pg.err") ||
	fail "posix_ops.py as postgres crashed in branch main: $(tail -n 20 "$T/log/pg.err")"
if ! diff -u "$T/refpg.out" "$T/pg.out" >"$T/pg.diff"; then
	cat "$T/pg.diff" >&2
	fail "POSIX results as user postgres in a branch differ from $fstype"
fi
log "as user postgres: branch main matches $fstype"

# overwrite inherited files in the child: parent must not change
sum_parent=$(cd "$MNT/main/w" && find . -type f -exec md5sum {} + | sort | md5sum)
find "$MNT/child/w" -type f -size -2M -exec sh -c 'printf X | dd of="$1" bs=1 seek=3 conv=notrunc status=none' _ {} \;
rm -rf "$MNT/child/w/rdir"
[ "$(cd "$MNT/main/w" && find . -type f -exec md5sum {} + | sort | md5sum)" = "$sum_parent" ] ||
	fail "writes in the child branch changed files in its parent"
[ -d "$MNT/main/w/rdir" ] || fail "rm -rf in the child removed the parent's directory"
log "child writes did not leak into the parent"
bfs_umount
