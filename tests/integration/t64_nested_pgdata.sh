#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 150
# t64: a data directory below the branch root, as when a branch is mounted as
# /var/lib/postgresql (the official Postgres 18+ images keep PGDATA in
# 18/docker there, Debian's layout in 15/main).  A branch of the running
# cluster drops that directory's postmaster.pid and socket lock (rule 2), so
# a server starts on the branch while its parent runs; the pg_checkpoint
# policy checkpoints the parent's server first; the branch's own server
# makes it busy by its postmaster.pid (rule 7), for rmdir and for
# branchctl reset.  Before, each of these looked at the branch root only: the
# server on the branch refused to start ("lock file already exists").
# The tablespace rule reads 18/docker/pg_tblspc too: a tablespace outside the
# branch refuses mkdir and branchctl create (EXDEV, the link named), one
# inside it is branched (the link reads MNT/pr-2/ts on the branch, whose
# server writes its own copy), and main's tablespace in another branch makes
# that branch busy.  Before, all three read the root's pg_tblspc only.
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

bfs_mount
mk_branch main
$AS_PG mkdir "$MNT/main/18"
pg_initdb "$MNT/main/18/docker"
free_port P1
free_port P2
pg_start "$MNT/main/18/docker" "$P1"
q "$P1" "create table t(v text); insert into t values ('before')"
lsn=$(q "$P1" "select pg_current_wal_insert_lsn()")
mk_child pr-1
q "$P1" "insert into t values ('after')"
[ -e "$MNT/main/18/docker/postmaster.pid" ] || fail "main lost its postmaster.pid"
[ ! -e "$MNT/pr-1/18/docker/postmaster.pid" ] ||
	fail "the branch carried the running parent's 18/docker/postmaster.pid over"
[ -f "$MNT/pr-1/18/docker/PG_VERSION" ] || fail "pr-1 is not a branch of main"
grep -q "pg_checkpoint: checkpointed the server on 'main'" "$T"/log/branchd-mnt-*.log ||
	fail "mkdir did not checkpoint main's server: $(grep pg_checkpoint "$T"/log/branchd-mnt-*.log | tail -n 2)"
redo=$(redo_of "$MNT/pr-1/18/docker")
[ "$(lsn_cmp "$redo" "$lsn")" -ge 0 ] || fail "pr-1's REDO $redo is before $lsn, read before the mkdir"
log "pr-1's REDO $redo, at or past $lsn"

pg_start "$MNT/pr-1/18/docker" "$P2"
[ "$(q "$P2" "select string_agg(v, ',' order by v) from t")" = before ] ||
	fail "pr-1 has $(q "$P2" "select string_agg(v, ',') from t"), want the row committed before the mkdir only"
q "$P2" "insert into t values ('pr-1')"
[ "$(q "$P1" "select string_agg(v, ',' order by v) from t")" = after,before ] || fail "pr-1's write reached main"
amcheck "$P2"

pid=${IT_PGPID[$MNT/pr-1/18/docker]}
expect_op EBUSY rmdir "$MNT/pr-1"
grep -q "cannot delete branch 'pr-1': postmaster (pid $pid) is running on branch 'pr-1'" "$T"/log/branchd-mnt-*.log ||
	fail "rmdir pr-1 was not refused for its postmaster $pid: $(grep "pr-1" "$T"/log/branchd-mnt-*.log | tail -n 2)"
expect_ctl 6 reset pr-1
[ "$(q "$P2" "select count(*) from t where v = 'pr-1'")" = 1 ] || fail "pr-1's server lost its row after the refused reset"
pg_stop "$MNT/pr-1/18/docker"
# once stopped: a reset is a new crash image of the running main
expect_ctl 0 reset pr-1
[ ! -e "$MNT/pr-1/18/docker/postmaster.pid" ] || fail "the reset carried main's postmaster.pid over"
pg_start "$MNT/pr-1/18/docker" "$P2"
[ "$(q "$P2" "select string_agg(v, ',' order by v) from t")" = after,before ] ||
	fail "pr-1 after reset has $(q "$P2" "select string_agg(v, ',') from t")"
pg_stop "$MNT/pr-1/18/docker"
expect_op_eventually OK rmdir "$MNT/pr-1"

log "a tablespace outside the branch, linked in 18/docker/pg_tblspc, refuses new branches"
install -d -o postgres -g postgres -m 0700 "$T/ext"
q "$P1" "create tablespace ext location '$T/ext'"
OIDX=$(q "$P1" "select oid from pg_tablespace where spcname = 'ext'")
expect_op EXDEV mkdir "$MNT/pr-2"
grep -q "cannot create branch 'pr-2' of 'main': its link 18/docker/pg_tblspc/$OIDX leads out of the branch, to '$T/ext'" "$T"/log/branchd-mnt-*.log ||
	fail "branchd did not log why mkdir pr-2 was refused: $(grep "pr-2" "$T"/log/branchd-mnt-*.log | tail -n 2)"
expect_ctl 1 create pr-2
grep -q "its link 18/docker/pg_tblspc/$OIDX leads out of the branch" <<<"$CTL_ERR" ||
	fail "branchctl create pr-2 gave no reason naming the link: $CTL_ERR"
[ ! -e "$MNT/pr-2" ] || fail "a refused branch pr-2 exists"
q "$P1" "drop tablespace ext"

log "a tablespace inside the branch (LOCATION MNT/main/ts) is branched with it"
install -d -o postgres -g postgres -m 0700 "$MNT/main/ts"
q "$P1" "create tablespace ts location '$MNT/main/ts'"
q "$P1" "create table tt(v int) tablespace ts; insert into tt select generate_series(1, 100)"
OID=$(q "$P1" "select oid from pg_tablespace where spcname = 'ts'")
mk_child pr-2
[ "$(readlink "$MNT/pr-2/18/docker/pg_tblspc/$OID")" = "$MNT/pr-2/ts" ] ||
	fail "pr-2's 18/docker/pg_tblspc/$OID reads '$(readlink "$MNT/pr-2/18/docker/pg_tblspc/$OID")', expected '$MNT/pr-2/ts'"
[ "$(readlink "$MNT/main/18/docker/pg_tblspc/$OID")" = "$MNT/main/ts" ] || fail "main's tablespace link changed with pr-2"
pg_start "$MNT/pr-2/18/docker" "$P2"
[ "$(q "$P2" "select pg_tablespace_location($OID)")" = "$MNT/pr-2/ts" ] || fail "pg_tablespace_location on pr-2 is wrong"
q "$P2" "insert into tt select generate_series(101, 5000)"
q "$P2" checkpoint
rel=$(q "$P1" "select pg_relation_filepath('tt')")
[ "$(q "$P2" "select count(*) from tt")" = 5000 ] || fail "pr-2 lost its rows in the tablespace"
[ "$(q "$P1" "select count(*) from tt")" = 100 ] || fail "pr-2's rows reached main's table"
msz=$(stat -c %s "$MNT/main/18/docker/$rel") psz=$(stat -c %s "$MNT/pr-2/18/docker/$rel")
[ "$msz" = 8192 ] && [ "$psz" -gt 8192 ] ||
	fail "$rel is $msz bytes in main (want 8192, one page of 100 rows), $psz in pr-2 (want more)"
log "pr-2 wrote its own tablespace file $rel: $psz bytes, main's $msz"
pg_stop "$MNT/pr-2/18/docker"
expect_op_eventually OK rmdir "$MNT/pr-2"

log "a tablespace of main's in another branch makes that branch busy"
mk_branch tsb
install -d -o postgres -g postgres -m 0700 "$MNT/tsb/tsb"
q "$P1" "create tablespace tsb location '$MNT/tsb/tsb'"
expect_op EBUSY rmdir "$MNT/tsb"
grep -q "cannot delete branch 'tsb': the server of branch 'main' (pid [0-9]*) keeps its tablespace files in it (18/docker/pg_tblspc/[0-9]* -> $MNT/tsb/tsb)" "$T"/log/branchd-mnt-*.log ||
	fail "rmdir tsb was not refused for main's tablespace: $(grep "tsb" "$T"/log/branchd-mnt-*.log | tail -n 2)"
q "$P1" "drop tablespace tsb"
expect_op_eventually OK rmdir "$MNT/tsb"
pg_stop "$MNT/main/18/docker"
bfs_umount
