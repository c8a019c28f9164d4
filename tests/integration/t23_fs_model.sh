#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
# t23: random operations against a model (fs_model.py).  Seeded random
# sequences of file operations run in lockstep in branches and in reference
# trees on ext4, every result and errno compared, with branches made
# (mkdir, branchctl create --from, --at seq:N), written to over inherited
# data, reset, renamed and deleted along the way, and the page cache
# dropped now and then so that reads go through branchd.  Then, with
# everything fsynced: the same trees after dropping the caches, after a
# clean remount, after a second run on the same store, after a third run
# by 4 processes at once (each in a subtree of its own, so that branchd
# serves them concurrently; branches are made between their rounds), and
# after SIGKILL of branchd and a remount (rule 3: what was fsynced is
# there).  Last, a canary:
# one byte changed behind the model's back must be found.
# FS_MODEL_SEED (default 1) and FS_MODEL_OPS (default 15000 per run).
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

SEED=${FS_MODEL_SEED:-1}
OPS=${FS_MODEL_OPS:-15000}
PROG=$T/fs_model.py
cp "$IT_ROOT/tests/integration/fs_model.py" "$PROG"
REF=$T/ref
STATE=$T/model.json
mkdir -p "$REF/main"
fstype=$(stat -f -c %T "$REF")
[ "$fstype" = ext2/ext3 ] || log "note: the reference trees are on $fstype, not ext4"

model() { tmo 200 python3 "$PROG" "$REF" "$MNT" "$BRANCHCTL" "$STATE" "$@"; }
verify() { # what
	local out
	out=$(tmo 120 python3 "$PROG" --verify "$REF" "$MNT" "$STATE") ||
		fail "$1: the branches differ from the model (see above)"
	log "$1: $out"
}
drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }

bfs_mount
tmo 60 mkdir "$MNT/main"
log "run 1: seed $SEED, $OPS operations"
out=$(model "$SEED" "$OPS") || fail "run 1 (seed $SEED) found a difference (see above)"
log "$out"
drop_caches
verify "with the page cache dropped"
bfs_umount
bfs_mount
verify "after a remount"

log "run 2: seed $((SEED + 1)), $OPS operations, on the remounted store"
out=$(model "$((SEED + 1))" "$OPS") || fail "run 2 (seed $((SEED + 1))) found a difference (see above)"
log "$out"
log "run 3: seed $((SEED + 2)), $OPS operations by 4 processes at once"
out=$(model "$((SEED + 2))" "$OPS" 4) || fail "run 3 (seed $((SEED + 2)), 4 processes) found a difference (see above)"
log "$out"
pid=${IT_MNTPID[$MNT]}
kill -KILL "$pid"
_it_wait_gone "$pid" 20 || fail "branchd $pid still there after SIGKILL"
tmo 30 fusermount3 -u "$MNT" 2>/dev/null || tmo 30 fusermount3 -uz "$MNT" || fail "cannot unmount $MNT after SIGKILL of branchd"
log "branchd killed with SIGKILL after the run's fsyncs"
bfs_mount
verify "after SIGKILL and a remount"
[ "$(ls "$MNT" | wc -l)" -ge 2 ] || fail "the model made no branches: $(ls "$MNT")"

# canary: the comparison must see a change made behind the model's back
f=$(cd "$MNT" && find . -mindepth 2 -type f -size +0 | sort | head -n 1)
[ -n "$f" ] || fail "no non-empty file in any branch to use as a canary"
f=${f#./}
w=${f%%/*} rel=${f#*/}
printf '\x5a' | dd of="$MNT/$f" bs=1 seek=0 conv=notrunc status=none
cmp -s "$MNT/$f" "$REF/$f" && printf '\xa5' | dd of="$MNT/$f" bs=1 seek=0 conv=notrunc status=none
if tmo 120 python3 "$PROG" --verify "$REF" "$MNT" "$STATE" >"$T/canary.out" 2>&1; then
	fail "a byte changed in $f was not found by the model's comparison"
fi
grep -q "MISMATCH: .*world $w: $rel differs" "$T/canary.out" ||
	fail "the canary was found, but not as $f: $(head -n 2 "$T/canary.out")"
log "canary: a byte changed in $f is found"
bfs_umount
