#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
# t12: tablespaces.  A tablespace inside a branch (LOCATION MNT/main/ts) is
# branched with it: the branch's pg_tblspc link reads MNT/pr-1/ts, its
# server writes its own copy while main's runs, and neither sees the
# other's rows.  The link follows a rename of the branch (mv and branchctl)
# and a mount elsewhere, and reads the grandchild's name in a branch of
# the branch, also after the middle one is renamed; a branch made without
# a checkpoint right after CREATE TABLESPACE replays it into its own tree.
# A tablespace outside the branch refuses mkdir, branchctl create and reset
# with EXDEV and a reason, and branching works again once it is dropped;
# so does one made while the parent is checkpointed for the branch, or
# while a reset waits for a file open in the branch.  pg_wal as a link into the
# branch (initdb --waldir) is branched, and the WAL segments written there
# are direct I/O as in pg_wal; one out of it refuses the branch.
# A symlink whose target
# begins with the byte the store uses for such links reads back unchanged.
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

bfs_mount
mk_branch main
pg_initdb "$MNT/main"
free_port P1
free_port P2
free_port P3
pg_start "$MNT/main" "$P1"

# readlink and st_size of every link in pg_tblspc must agree
links_consistent() { # BRANCHDIR
	local l t
	for l in "$1"/pg_tblspc/*; do
		[ -L "$l" ] || continue
		t=$(readlink "$l")
		[ "$(stat -c %s "$l")" = "${#t}" ] || fail "$l: st_size $(stat -c %s "$l") but its target '$t' has ${#t} bytes"
	done
}

install -d -o postgres -g postgres -m 0700 "$MNT/main/ts"
q "$P1" "create tablespace ts location '$MNT/main/ts'" 2>/dev/null
q "$P1" "create table tt(id int primary key, note text) tablespace ts"
q "$P1" "insert into tt select i, 'main-' || i from generate_series(1, 20000) i"
q "$P1" "create index tt_note on tt(note) tablespace ts"
OID=$(q "$P1" "select oid from pg_tablespace where spcname = 'ts'")
[ "$(readlink "$MNT/main/pg_tblspc/$OID")" = "$MNT/main/ts" ] ||
	fail "main's pg_tblspc/$OID reads '$(readlink "$MNT/main/pg_tblspc/$OID")', expected '$MNT/main/ts'"
[ "$(q "$P1" "select pg_tablespace_location($OID)")" = "$MNT/main/ts" ] || fail "pg_tablespace_location on main is wrong"
links_consistent "$MNT/main"

log "branch main while it runs"
mk_child pr-1
[ "$(readlink "$MNT/pr-1/pg_tblspc/$OID")" = "$MNT/pr-1/ts" ] ||
	fail "pr-1's pg_tblspc/$OID reads '$(readlink "$MNT/pr-1/pg_tblspc/$OID")', expected '$MNT/pr-1/ts'"
[ "$(readlink "$MNT/main/pg_tblspc/$OID")" = "$MNT/main/ts" ] || fail "main's link changed when pr-1 was made"
links_consistent "$MNT/pr-1"
pg_start "$MNT/pr-1" "$P2"
[ "$(q "$P2" "select pg_tablespace_location($OID)")" = "$MNT/pr-1/ts" ] || fail "pg_tablespace_location on pr-1 is wrong"
q "$P2" "update tt set note = 'pr-1-' || id"
q "$P2" "insert into tt select i, 'pr-1-' || i from generate_series(20001, 30000) i"
q "$P1" "update tt set note = 'main2-' || id where id <= 100"
q "$P1" checkpoint
q "$P2" checkpoint
[ "$(q "$P1" "select count(*) || ':' || count(*) filter (where note like 'main%') from tt")" = 20000:20000 ] ||
	fail "main's table in the tablespace changed with pr-1's writes: $(q "$P1" "select count(*), min(note), max(note) from tt")"
[ "$(q "$P2" "select count(*) || ':' || count(*) filter (where note like 'pr-1-%') from tt")" = 30000:30000 ] ||
	fail "pr-1's table in the tablespace lost its writes: $(q "$P2" "select count(*), min(note), max(note) from tt")"
rel=$(q "$P1" "select pg_relation_filepath('tt')")
[ -f "$MNT/pr-1/$rel" ] && [ -f "$MNT/main/$rel" ] || fail "no file $rel in main or pr-1"
! cmp -s "$MNT/main/$rel" "$MNT/pr-1/$rel" || fail "main and pr-1 hold the same bytes in $rel after different writes"
log "pr-1 writes its own tablespace ($rel): main 20000 rows as before, pr-1 30000"
amcheck "$P1"
amcheck "$P2"
pg_stop "$MNT/pr-1"

log "the link follows renames"
mv "$MNT/pr-1" "$MNT/pr-moved"
[ "$(readlink "$MNT/pr-moved/pg_tblspc/$OID")" = "$MNT/pr-moved/ts" ] ||
	fail "after mv, the link reads '$(readlink "$MNT/pr-moved/pg_tblspc/$OID")', expected '$MNT/pr-moved/ts'"
links_consistent "$MNT/pr-moved"
expect_ctl 0 rename pr-moved pr-2nd
[ "$(readlink "$MNT/pr-2nd/pg_tblspc/$OID")" = "$MNT/pr-2nd/ts" ] ||
	fail "after branchctl rename, the link reads '$(readlink "$MNT/pr-2nd/pg_tblspc/$OID")'"
pg_start "$MNT/pr-2nd" "$P2"
[ "$(q "$P2" "select count(*) from tt where note like 'pr-1-%'")" = 30000 ] || fail "pr-2nd lost its rows after the renames"
pg_stop "$MNT/pr-2nd"
# a branch of the branch reads its own name; so do both after a rename of
# the middle one
expect_ctl 0 create pr-gc --from pr-2nd
mv "$MNT/pr-2nd" "$MNT/pr-mid"
for b in pr-gc pr-mid; do
	[ "$(readlink "$MNT/$b/pg_tblspc/$OID")" = "$MNT/$b/ts" ] ||
		fail "$b's link reads '$(readlink "$MNT/$b/pg_tblspc/$OID")', expected '$MNT/$b/ts'"
	links_consistent "$MNT/$b"
done

log "a branch made without a checkpoint replays CREATE TABLESPACE into its own tree"
install -d -o postgres -g postgres -m 0700 "$MNT/main/ts2"
before_ts2=$(q "$P1" "select pg_current_wal_insert_lsn()")
q "$P1" "create tablespace ts2 location '$MNT/main/ts2'" 2>/dev/null
q "$P1" "create table t2(id int) tablespace ts2"
q "$P1" "insert into t2 select generate_series(1, 1000)"
OID2=$(q "$P1" "select oid from pg_tablespace where spcname = 'ts2'")
expect_ctl 0 create pr-3 --no-checkpoint
# the replay must cover CREATE TABLESPACE, which drops the inherited link
# and makes it again with main's LOCATION
redo=$(redo_of "$MNT/pr-3")
[ "$(lsn_cmp "$redo" "$before_ts2")" -le 0 ] ||
	fail "pr-3 starts its redo at $redo, after CREATE TABLESPACE ts2 ($before_ts2): the case is not tested"
pg_start "$MNT/pr-3" "$P3"
grep -q "redo starts" "$T"/log/pg-pr-3-*.log || fail "pr-3 did not replay WAL; the case is not tested"
[ "$(readlink "$MNT/pr-3/pg_tblspc/$OID2")" = "$MNT/pr-3/ts2" ] ||
	fail "after recovery, pr-3's pg_tblspc/$OID2 reads '$(readlink "$MNT/pr-3/pg_tblspc/$OID2")', expected '$MNT/pr-3/ts2'"
q "$P3" "insert into t2 select generate_series(1, 5000)"
q "$P3" checkpoint
[ "$(q "$P1" "select count(*) from t2")" = 1000 ] || fail "pr-3's writes reached main's tablespace ts2"
[ "$(q "$P3" "select count(*) from t2")" = 6000 ] || fail "pr-3 lost its writes to ts2"
pg_stop "$MNT/pr-3"
log "pr-3 replayed ts2 into its own tree"

log "a tablespace outside the branch refuses new branches"
install -d -o postgres -g postgres -m 0700 "$T/ext"
q "$P1" "create tablespace ext location '$T/ext'"
OIDX=$(q "$P1" "select oid from pg_tablespace where spcname = 'ext'")
expect_op EXDEV mkdir "$MNT/pr-4"
grep -q "cannot create branch 'pr-4' of 'main': its link pg_tblspc/$OIDX leads out of the branch, to '$T/ext'" "$T"/log/branchd-*.log ||
	fail "branchd did not log why mkdir pr-4 was refused"
expect_ctl 1 create pr-4
grep -q "pg_tblspc/$OIDX leads out of the branch" <<<"$CTL_ERR" || fail "branchctl create gave no reason: $CTL_ERR"
expect_ctl 1 reset pr-3
grep -q "cannot reset branch 'pr-3' of 'main'" <<<"$CTL_ERR" || fail "branchctl reset gave no reason: $CTL_ERR"
[ ! -e "$MNT/pr-4" ] || fail "a refused branch pr-4 exists"
q "$P1" "drop tablespace ext"
mk_child pr-4
log "branching works again once the outside tablespace is dropped"

# race_link LINK CMD...: run CMD in the background with main's postmaster
# stopped, so that branchd's checkpoint helper waits on it; once the helper
# is there (so the first link check is behind), make LINK lead out of the
# tree, then let the postmaster go on.  RACE_RC: CMD's exit status.
race_link() {
	local link=$1 pm=${IT_PGPID[$MNT/main]} bd=${IT_MNTPID[$MNT]} pid i
	shift
	kill -STOP "$pm"
	("$@") >"$T/race.out" 2>"$T/race.err" &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		pgrep -P "$bd" >/dev/null && break
		sleep 0.1
	done
	ln -s "$T/ext2" "$link" || { kill -CONT "$pm"; fail "cannot make $link"; }
	kill -CONT "$pm"
	((i < 100)) || fail "branchd started no checkpoint helper for: $*"
	RACE_RC=0
	wait "$pid" || RACE_RC=$?
}
log "a link made out of the tree while the parent is checkpointed refuses the branch"
install -d -o postgres -g postgres -m 0700 "$T/ext2"
RL=$MNT/main/pg_tblspc/99999
race_link "$RL" try_op mkdir "$MNT/pr-5"
[ "$(cat "$T/race.out")" = EXDEV ] || fail "mkdir pr-5 with a link made during its checkpoint gave '$(cat "$T/race.out")', expected EXDEV"
[ ! -e "$MNT/pr-5" ] || fail "the refused branch pr-5 exists"
grep -q "cannot create branch 'pr-5' of 'main': its link pg_tblspc/99999 leads out of the branch, to '$T/ext2'.*(a link made while the branch was being made; the new branch is dropped)" "$T"/log/branchd-*.log ||
	fail "branchd did not log that it dropped pr-5 for the link made meanwhile"
rm "$RL"
race_link "$RL" "$BRANCHCTL" --mount "$MNT" create pr-6
[ "$RACE_RC" = 1 ] || fail "branchctl create pr-6 with a link made during its checkpoint exited $RACE_RC: $(cat "$T/race.out" "$T/race.err")"
grep -q "cannot create branch 'pr-6' of 'main': its link pg_tblspc/99999 leads out" "$T/race.err" ||
	fail "branchctl create pr-6 gave no reason: $(cat "$T/race.err")"
expect_ctl 4 info pr-6
rm "$RL"
echo kept >"$MNT/pr-3/race-marker"
race_link "$RL" "$BRANCHCTL" --mount "$MNT" reset pr-3
[ "$RACE_RC" = 1 ] || fail "branchctl reset pr-3 with a link made during its checkpoint exited $RACE_RC: $(cat "$T/race.out" "$T/race.err")"
grep -q "cannot reset branch 'pr-3' of 'main': its link pg_tblspc/99999 leads out" "$T/race.err" ||
	fail "branchctl reset pr-3 gave no reason: $(cat "$T/race.err")"
[ "$(cat "$MNT/pr-3/race-marker")" = kept ] || fail "the refused reset changed pr-3"
rm "$RL"
# The same while reset waits for pr-3 to be let go (a file open in it),
# after the check that follows the checkpoint: the rule is applied with
# the branch held, to the very state it is reset to (the build before
# reset pr-3 and gave it main's link out of the tree).  Exit 6: the hold
# gave up before the file was closed (a slow machine), so again.
log "a link made out of the tree while reset waits for an open file refuses the reset"
pm=${IT_PGPID[$MNT/main]} bd=${IT_MNTPID[$MNT]}
for ((try = 0; try < 3; try++)); do
	kill -STOP "$pm"
	"$BRANCHCTL" --mount "$MNT" reset pr-3 >"$T/race.out" 2>"$T/race.err" &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		pgrep -P "$bd" >/dev/null && break
		sleep 0.1
	done
	exec {hold}<"$MNT/pr-3/race-marker"
	kill -CONT "$pm"
	((i < 100)) || fail "branchd started no checkpoint helper for reset pr-3"
	for ((i = 0; i < 100; i++)); do
		pgrep -P "$bd" >/dev/null || break
		sleep 0.05
	done
	sleep 0.3
	ln -s "$T/ext2" "$RL"
	exec {hold}<&-
	RACE_RC=0
	wait "$pid" || RACE_RC=$?
	[ "$RACE_RC" = 6 ] || break
	rm "$RL"
done
[ "$RACE_RC" = 1 ] || fail "branchctl reset pr-3 with a link made while it waited for an open file exited $RACE_RC: $(cat "$T/race.out" "$T/race.err")"
grep -q "cannot reset branch 'pr-3' of 'main': its link pg_tblspc/99999 leads out" "$T/race.err" ||
	fail "branchctl reset pr-3 gave no reason: $(cat "$T/race.err")"
[ "$(cat "$MNT/pr-3/race-marker")" = kept ] || fail "the refused reset changed pr-3"
[ ! -L "$MNT/pr-3/pg_tblspc/99999" ] || fail "pr-3 got main's link out of the tree"
rm "$RL" "$MNT/pr-3/race-marker"
mk_child pr-5
log "mkdir, branchctl create and reset check the links again after the checkpoint"

log "pg_wal as a link (initdb --waldir): inside the branch it is branched, outside it refuses"
expect_ctl 0 create w1 --from pr-3
mv "$MNT/w1/pg_wal" "$MNT/w1/wal-real"
ln -s "$MNT/w1/wal-real" "$MNT/w1/pg_wal"
[ "$(readlink "$MNT/w1/pg_wal")" = "$MNT/w1/wal-real" ] || fail "w1/pg_wal reads '$(readlink "$MNT/w1/pg_wal")'"
expect_ctl 0 create w2 --from w1
[ "$(readlink "$MNT/w2/pg_wal")" = "$MNT/w2/wal-real" ] ||
	fail "w2/pg_wal reads '$(readlink "$MNT/w2/pg_wal")', expected '$MNT/w2/wal-real'"
w1_wal=$(cd "$MNT/w1/wal-real" && find . -type f -exec md5sum {} + | sort)
pg_start "$MNT/w2" "$P3"
q "$P3" "insert into t2 select generate_series(1, 20000)"
# Its WAL segments are direct I/O, as in a directory named pg_wal: the
# segment written now holds no page in the kernel's cache after an open
# for reading (fincore's own open drops the cache of a WAL file; a file
# cached as any other keeps the pages it was written through).  The first
# is w1's, looked up by name; the next one the server makes as xlogtemp.PID
# and renames, and opens through the dentry of the rename.
wal_uncached() { # port
	local seg res
	seg=$(q "$1" "select pg_walfile_name(pg_current_wal_lsn())")
	res=$(fincore --bytes --noheadings --output RES "$MNT/w2/wal-real/$seg") ||
		fail "fincore of w2/wal-real/$seg failed"
	res=${res// /}
	[ "$res" = 0 ] ||
		fail "WAL segment $seg in w2/wal-real (pg_wal a link to it) went through the page cache: $res bytes resident"
}
wal_uncached "$P3"
q "$P3" "select pg_switch_wal()" >/dev/null
q "$P3" "insert into t2 select generate_series(1, 20000)"
wal_uncached "$P3"
q "$P3" checkpoint
pg_stop "$MNT/w2"
[ "$(cd "$MNT/w1/wal-real" && find . -type f -exec md5sum {} + | sort)" = "$w1_wal" ] ||
	fail "the server on w2 changed the WAL files of w1"
[ "$(cd "$MNT/w2/wal-real" && find . -type f -exec md5sum {} + | sort)" != "$w1_wal" ] ||
	fail "the server on w2 wrote no WAL of its own into w2/wal-real"
install -d -o postgres -g postgres -m 0700 "$T/extwal"
rm "$MNT/w1/pg_wal"
ln -s "$T/extwal" "$MNT/w1/pg_wal"
expect_ctl 1 create w3 --from w1
grep -q "cannot create branch 'w3' of 'w1': its link pg_wal leads out of the branch, to '$T/extwal'" <<<"$CTL_ERR" ||
	fail "branchctl create w3 gave no reason naming pg_wal: $CTL_ERR"
log "w2 wrote its own WAL through its pg_wal link; a pg_wal link out of w1 refuses w3"

log "a target that begins with the store's marker byte reads back unchanged"
tmo 30 python3 - "$MNT/main" <<'EOF' || fail "marker-byte symlink check failed"
import os, sys
d = sys.argv[1]
for name, target in (("m1", "\x01/etc"), ("m2", "\x01\x01x"), ("m3", "\x01")):
    p = os.path.join(d, name)
    os.symlink(target, p)
    got = os.readlink(p)
    assert got == target, (name, target, got)
    assert os.lstat(p).st_size == len(target.encode()), (name, os.lstat(p).st_size)
    os.unlink(p)
EOF

pg_stop "$MNT/main"
bfs_umount
log "mounted elsewhere, the link follows the mount point"
MNT2=$T/other-mnt
bfs_mount "$STORE" "$MNT2"
[ "$(readlink "$MNT2/main/pg_tblspc/$OID")" = "$MNT2/main/ts" ] ||
	fail "mounted at $MNT2, main's link reads '$(readlink "$MNT2/main/pg_tblspc/$OID")'"
pg_start "$MNT2/main" "$P1"
[ "$(q "$P1" "select count(*) from tt")" = 20000 ] || fail "main's tablespace table is not readable at $MNT2"
amcheck "$P1"
pg_stop "$MNT2/main"
bfs_umount "$MNT2"
