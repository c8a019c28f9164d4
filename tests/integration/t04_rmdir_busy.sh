#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 150
# t04: a branch in use is busy.  rmdir (and mv) of a branch with a running
# postmaster, or with an open file or directory, fails with EBUSY ("Device or resource
# busy"); once idle it succeeds.  rmdir of a branch that has children is
# refused with EBUSY too; mv of an idle branch renames it.  A branch that
# holds another branch's running server's WAL (initdb --waldir) or a
# tablespace of it is busy too, though that server holds no file open there
# while idle.  So is a branch, or a directory of it, mounted elsewhere
# (mount --bind, in this or another mount namespace) until that mount goes.
# branchctl list and info say in_use of each such branch by the same rules,
# with the reason delete gives.  When the daemon cannot look at every
# process's mounts (out of memory: build/procfail.so, tests/shims/, makes
# its fopen of /proc/PID/mountinfo fail with ENOMEM while $T/procfail
# exists), delete, rename and rmdir are refused (exit 1, ENOMEM) and list
# says the branch is in use, as it cannot tell.
source "$(dirname "$0")/lib.sh"
it_init

PFLIB=$IT_ROOT/build/procfail.so
[ -f "$PFLIB" ] || fail "$PFLIB is missing: make build/procfail.so (make check-integration builds it)"
IT_BD_ENV=(LD_PRELOAD="$PFLIB" PROCFAIL_FLAG="$T/procfail")

# expect_in_use NAME WANT [TEXT]: branchctl --json list says in_use WANT
# (true or false) of branch NAME, with TEXT in its in_use_reason, and
# branchctl --json info NAME says the same
IN_USE_PY='import json, sys
d = json.load(sys.stdin)
bs = d["branches"] if sys.argv[1] == "list" else [d["branch"]]
b = [x for x in bs if x["name"] == sys.argv[2]]
print("%s|%s" % (str(b[0]["in_use"]).lower(), b[0].get("in_use_reason", "")) if b else "missing|")'
expect_in_use() {
	local l i
	ctl --json list
	[ "$CTL_RC" -eq 0 ] || fail "branchctl --json list exited $CTL_RC: $CTL_ERR"
	l=$(python3 -c "$IN_USE_PY" list "$1" <<<"$CTL_OUT") || fail "cannot read branchctl --json list: $CTL_OUT"
	ctl --json info "$1"
	[ "$CTL_RC" -eq 0 ] || fail "branchctl --json info $1 exited $CTL_RC: $CTL_ERR"
	i=$(python3 -c "$IN_USE_PY" info "$1" <<<"$CTL_OUT") || fail "cannot read branchctl --json info: $CTL_OUT"
	[ "$l" = "$i" ] || fail "branchctl list and info disagree on $1: '$l' and '$i'"
	[[ "$l" == "$2|"*"${3:-}"* ]] ||
		fail "branchctl list says of $1: in_use ${l%%|*} (${l#*|}), expected $2${3:+ ($3)}"
	log "branchctl list: $1 in_use ${l%%|*} ${l#*|}"
}

bfs_mount
mk_branch main
pg_initdb "$MNT/main"
free_port P1
free_port P2
pg_start "$MNT/main" "$P1"
q "$P1" "create table t(v text); insert into t values ('main')"
mk_child pr-1
pg_start "$MNT/pr-1" "$P2"

# the exact message the brief promises, from rmdir(1) itself
msg=$(tmo 60 rmdir "$MNT/pr-1" 2>&1) && fail "rmdir of pr-1 with a running postmaster succeeded"
[[ "$msg" == *"Device or resource busy"* ]] || fail "rmdir pr-1 (postmaster running) said: $msg"
log "rmdir pr-1 while its postmaster runs: $msg"
expect_op EBUSY rmdir "$MNT/pr-1"
expect_op EBUSY rename "$MNT/pr-1" "$MNT/pr-1-renamed"
# a bad new name is refused as such, busy or not (it was EBUSY)
expect_op EINVAL rename "$MNT/pr-1" "$MNT/pr"$'\t'"1"
[ -d "$MNT/pr-1" ] && [ ! -e "$MNT/pr-1-renamed" ] || fail "pr-1 changed after refused rmdir/mv"
[ "$(q "$P2" 'select count(*) from t')" = 1 ] || fail "pr-1 server unhappy after refused rmdir"

echo "pr-1 only" >"$MNT/pr-1/branch_marker"
cat "$MNT/pr-1/branch_marker" >/dev/null
old_ino=$(ino "$MNT/pr-1")
pg_stop "$MNT/pr-1"

# FUSE release is asynchronous: give the last close a few seconds to land
expect_op_eventually OK rmdir "$MNT/pr-1"
[ ! -e "$MNT/pr-1" ] || fail "pr-1 still visible after rmdir"
[ "$(ls "$MNT")" = main ] || fail "branch list after rmdir pr-1: $(ls "$MNT")"
[ "$(q "$P1" 'select v from t')" = main ] || fail "main unhappy after rmdir of its child"

# the name can be reused: a fresh branch of main, nothing of the old pr-1
mk_child pr-1
[ ! -e "$MNT/pr-1/branch_marker" ] || fail "re-created pr-1 shows a file of the deleted pr-1"
[ -f "$MNT/pr-1/PG_VERSION" ] || fail "re-created pr-1 is not a branch of main"
[ "$(ino "$MNT/pr-1")" != "$old_ino" ] || fail "re-created pr-1 reuses the deleted branch's st_ino $old_ino"
expect_op OK rmdir "$MNT/pr-1"

# an open file makes a branch busy (pr-2 never ran a server)
mk_child pr-2
exec 7<"$MNT/pr-2/PG_VERSION"
expect_op EBUSY rmdir "$MNT/pr-2"
expect_op EBUSY rename "$MNT/pr-2" "$MNT/pr-2-renamed"
exec 7<&-
# so does an open directory (open(2) of one, or opendir: a postmaster
# fsyncing a directory, find or ls walking one), the branch root or one
# below it; branchctl's delete, rename and reset are refused as busy too
# (an open directory did not count: all of them went on under it)
ctl_require
exec 7<"$MNT/pr-2"
expect_op EBUSY rmdir "$MNT/pr-2"
expect_ctl 6 reset pr-2
expect_ctl 10 rename pr-2 "pr"$'\t'"2" # the name's fault, not the busy branch's
exec 7<&-
exec 7<"$MNT/pr-2/base"
expect_ctl 6 delete pr-2
exec 7<&-
# a working directory in the branch is no open file (as on ext4, where
# rmdir removes a directory that is some process's working directory)
mkdir "$MNT/pr-w"
(cd "$MNT/pr-w" && exec sleep 300) &
CWDP=$!
IT_BG+=("$CWDP")
sleep 0.2
expect_op OK rmdir "$MNT/pr-w"
kill "$CWDP"
wait "$CWDP" 2>/dev/null || true

# a branch with children cannot be deleted
pg_stop "$MNT/main"
expect_op EBUSY rmdir "$MNT/main"
log "rmdir main while pr-2 exists -> EBUSY (refused, as expected)"
[ -f "$MNT/main/PG_VERSION" ] || fail "main damaged by refused rmdir"
pg_start "$MNT/main" "$P1"
[ "$(q "$P1" 'select v from t')" = main ] || fail "main data gone after refused rmdir"
expect_op EBUSY rmdir "$MNT/main"
pg_stop "$MNT/main"

# mv renames an idle branch
expect_op_eventually OK rename "$MNT/pr-2" "$MNT/pr-3"
[ ! -e "$MNT/pr-2" ] && [ -f "$MNT/pr-3/PG_VERSION" ] || fail "mv pr-2 pr-3 did not rename the branch"
[ "$(ls "$MNT" | tr '\n' ' ')" = "main pr-3 " ] || fail "branch list after mv: $(ls "$MNT")"
pg_start "$MNT/pr-3" "$P2"
[ "$(q "$P2" 'select v from t')" = main ] || fail "renamed branch pr-3 lost its data"
pg_stop "$MNT/pr-3"
# a postmaster.pid left by a server killed long ago, or written in a
# container, names a pid that is alive here but is no postmaster of the
# branch (a process working elsewhere): it does not keep the branch busy
mkdir "$MNT/pr-s"
(cd "$T" && exec sleep 300) &
OTHER=$!
IT_BG+=("$OTHER")
printf '%s\n/var/lib/postgresql/data\n' "$OTHER" >"$MNT/pr-s/postmaster.pid"
# and list does not call it in use (it did, and the delete then went on)
ctl_require
expect_in_use pr-s false
expect_op OK rmdir "$MNT/pr-s"
kill "$OTHER"
wait "$OTHER" 2>/dev/null || true
# a postgres process working in the branch keeps it busy even when the
# branch's postmaster.pid names another pid (a container's server: the pid
# it wrote is of its own namespace); a copy of sleep named postgres stands in
mkdir "$MNT/pr-c"
cp /bin/sleep "$T/postgres"
(cd "$MNT/pr-c" && exec "$T/postgres" 300) &
PGLIKE=$!
IT_BG+=("$PGLIKE")
printf '%s\n/var/lib/postgresql/data\n' "$OTHER" >"$MNT/pr-c/postmaster.pid"
sleep 0.5
expect_op EBUSY rmdir "$MNT/pr-c"
expect_in_use pr-c true "a postgres process (pid $PGLIKE) is running in branch 'pr-c'"
# refused for the postgres process itself, not for the (dead) pid named
grep -q "cannot delete branch 'pr-c': a postgres process (pid $PGLIKE) is running" "$T"/log/branchd-mnt-*.log ||
	fail "rmdir pr-c was not refused for the postgres process $PGLIKE: $(grep "pr-c" "$T"/log/branchd-mnt-*.log | tail -n 2)"
kill "$PGLIKE"
wait "$PGLIKE" 2>/dev/null || true
expect_op_eventually OK rmdir "$MNT/pr-c"

# a branch mounted elsewhere (mount --bind, a container's data directory
# before its server starts or after it stopped) is busy until that mount
# goes, also a directory below its root bound in another mount namespace
# (rmdir, mv and branchctl went on: the bind mount then showed nothing,
# ENOENT, under whatever ran there)
ctl_require
# (at a long path, as a container's is: the reason quotes it whole; it
# was cut at 255 bytes)
BIND=$T/bind-$(printf 'x%.0s' {1..200})
mkdir "$MNT/pr-b" "$MNT/pr-n" "$MNT/pr-n/sub" "$BIND"
mount --bind "$MNT/pr-b" "$BIND" || fail "mount --bind of a branch failed"
IT_TMPFS+=("$BIND")
expect_op EBUSY rmdir "$MNT/pr-b"
expect_op EBUSY rename "$MNT/pr-b" "$MNT/pr-b2"
grep -qF "cannot delete branch 'pr-b': branch 'pr-b' is mounted at '$BIND' (a bind mount)" "$T"/log/branchd-mnt-*.log ||
	fail "rmdir pr-b was not refused for its bind mount: $(grep "pr-b" "$T"/log/branchd-mnt-*.log | tail -n 2)"
expect_ctl 6 delete pr-b
expect_ctl 6 rename pr-b pr-b2
expect_ctl 6 reset pr-b
[[ "$CTL_ERR" == *"is mounted at '$BIND'"* ]] || fail "branchctl reset pr-b said: $CTL_ERR"
# branchctl's refusals are in the log too (only the caller saw them)
grep -qF "ctl: cannot reset branch 'pr-b': branch 'pr-b' is mounted at '$BIND'" "$T"/log/branchd-mnt-*.log ||
	fail "branchctl reset pr-b's refusal is not in the log: $(grep "pr-b" "$T"/log/branchd-mnt-*.log | tail -n 2)"
# list and info say so (they said "in_use": false)
expect_in_use pr-b true "branch 'pr-b' is mounted at '$BIND' (a bind mount)"
unshare --mount --propagation private --fork sh -c 'mount --bind "$1" /mnt && exec sleep 300' sh "$MNT/pr-n/sub" &
NSP=$!
IT_BG+=("$NSP")
for ((n = 0; n < 100; n++)); do
	NSC=$(pgrep -P "$NSP" || true)
	[ -n "$NSC" ] && awk '$5 == "/mnt" { f = 1 } END { exit !f }' "/proc/$NSC/mountinfo" 2>/dev/null && break
	sleep 0.1
done
[ $n -lt 100 ] || fail "the bind mount in another mount namespace did not come up"
IT_BG+=("$NSC")
expect_op EBUSY rmdir "$MNT/pr-n"
expect_in_use pr-n true "branch 'pr-n' is mounted at '/mnt' in the mount namespace of pid"
grep -q "cannot delete branch 'pr-n': branch 'pr-n' is mounted at '/mnt' in the mount namespace of pid [0-9]" "$T"/log/branchd-mnt-*.log ||
	fail "rmdir pr-n was not refused for its mount in another namespace: $(grep "pr-n" "$T"/log/branchd-mnt-*.log | tail -n 2)"
kill "$NSC"
wait "$NSP" 2>/dev/null || true
expect_op OK rmdir "$MNT/pr-n"
umount "$BIND" || fail "cannot unmount the bind mount of pr-b"
expect_in_use pr-b false
# out of memory while looking at the mounts: refused, never deleted
# unchecked (it was taken for "not mounted elsewhere"), and listed as in
# use since it cannot be told
touch "$T/procfail"
expect_ctl 1 delete pr-b
[[ "$CTL_ERR" == *"cannot delete branch 'pr-b': cannot tell whether branch 'pr-b' is in use: out of memory"* ]] ||
	fail "branchctl delete pr-b, out of memory, said: $CTL_ERR"
ctl --json rename pr-b pr-b2
[ "$CTL_RC" -eq 1 ] && [[ "$CTL_OUT" == *'"error":"error"'* ]] ||
	fail "branchctl --json rename pr-b, out of memory, exited $CTL_RC: $CTL_OUT"
expect_op ENOMEM rmdir "$MNT/pr-b"
expect_op ENOMEM rename "$MNT/pr-b" "$MNT/pr-b2"
expect_in_use pr-b true "cannot tell whether branch 'pr-b' is in use: out of memory"
grep -qF "cannot delete branch 'pr-b': cannot tell whether branch 'pr-b' is in use: out of memory" "$T"/log/branchd-mnt-*.log ||
	fail "the refused rmdir of pr-b is not in the log: $(grep "pr-b" "$T"/log/branchd-mnt-*.log | tail -n 2)"
[ -d "$MNT/pr-b" ] || fail "pr-b went away while its mounts could not be looked at"
rm "$T/procfail"
expect_op OK rename "$MNT/pr-b" "$MNT/pr-b2"
expect_ctl 0 delete pr-b2
log "a branch bound elsewhere is busy until that mount is gone"

# WAL and a tablespace in other branches: busy while that server runs
for b in wl walbr tsbr; do
	expect_ctl 0 create "$b" --empty
	chown postgres: "$MNT/$b"
	chmod 0700 "$MNT/$b"
done
$AS_PG mkdir "$MNT/tsbr/ts"
(cd "$T" && tmo 300 $AS_PG "$PGBIN/initdb" -D "$MNT/wl" --waldir="$MNT/walbr/wal" -A trust -U postgres \
	>"$T/log/initdb-wl.log" 2>&1) || fail "initdb --waldir failed: $(tail -n 5 "$T/log/initdb-wl.log")"
free_port P4
pg_start "$MNT/wl" "$P4"
# wl's links are read now, before its tablespace exists, and kept while wl
# is not written: the tablespace made next must still be seen
expect_op EBUSY rmdir "$MNT/walbr"
q "$P4" "create tablespace ts location '$MNT/tsbr/ts'" >/dev/null
q "$P4" "create table tt(v int) tablespace ts; insert into tt values (1)" >/dev/null
for b in walbr tsbr; do
	expect_op EBUSY rmdir "$MNT/$b"
	expect_op EBUSY rename "$MNT/$b" "$MNT/$b-renamed"
done
grep -q "cannot delete branch 'walbr': the server of branch 'wl' (pid [0-9]*) keeps its WAL in it (pg_wal -> $MNT/walbr/wal)" "$T"/log/branchd-mnt-*.log ||
	fail "rmdir walbr was not refused for wl's WAL: $(grep walbr "$T"/log/branchd-mnt-*.log | tail -n 2)"
grep -q "cannot delete branch 'tsbr': the server of branch 'wl' (pid [0-9]*) keeps its tablespace files in it (pg_tblspc/[0-9]* -> $MNT/tsbr/ts)" "$T"/log/branchd-mnt-*.log ||
	fail "rmdir tsbr was not refused for wl's tablespace: $(grep tsbr "$T"/log/branchd-mnt-*.log | tail -n 2)"
expect_ctl 6 delete walbr
expect_in_use walbr true "the server of branch 'wl' (pid "
expect_in_use tsbr true "keeps its tablespace files in it"
[ "$(q "$P4" "insert into tt values (2); select sum(v) from tt")" = 3 ] || fail "wl's server unhappy after the refused deletes"
log "branches holding a running server's WAL and tablespace are busy"
pg_stop "$MNT/wl"
for b in wl walbr tsbr; do expect_op_eventually OK rmdir "$MNT/$b"; done
expect_op_eventually OK rmdir "$MNT/pr-3"
expect_op_eventually OK rmdir "$MNT/main"
[ -z "$(ls "$MNT")" ] || fail "store not empty after deleting every branch: $(ls "$MNT")"
bfs_umount
