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
pg_stop "$MNT/main/18/docker"
bfs_umount
