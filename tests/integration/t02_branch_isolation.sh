#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 240
# t02: branch a running cluster under pgbench load.  A row committed before
# `mkdir pr-1` is in the branch, one committed after is not; a second
# postmaster starts on pr-1 while the parent keeps running (no stale
# postmaster.pid, distinct st_ino); writes on either side stay on that side;
# pg_amcheck --heapallindexed is clean on both.
source "$(dirname "$0")/lib.sh"
it_init

SCALE=${IT_SCALE2:-4}
bfs_mount
mk_branch main
pg_initdb "$MNT/main"
free_port P1
free_port P2
pg_start "$MNT/main" "$P1"
run_pgbench "$P1" -i -s "$SCALE" -q
q "$P1" "create table marker(id int primary key, note text not null)"
q "$P1" "insert into marker values (1, 'before-branch')"

log "starting background pgbench on main"
bg_pgbench "$P1" 3 25

before_hist=$(q "$P1" 'select count(*) from pgbench_history')
mk_child pr-1
q "$P1" "insert into marker values (2, 'after-branch')"

# rule 2: no lock file carried over from the running parent
[ ! -e "$MNT/pr-1/postmaster.pid" ] || fail "pr-1 carries postmaster.pid from its running parent"
[ ! -e "$MNT/pr-1/postmaster.opts" ] || fail "pr-1 carries postmaster.opts from its running parent"
[ -e "$MNT/main/postmaster.pid" ] || fail "main lost its own postmaster.pid"
[ -f "$MNT/pr-1/PG_VERSION" ] || fail "pr-1 has no PG_VERSION"
# rule 1: distinct identity
[ "$(ino "$MNT/main")" != "$(ino "$MNT/pr-1")" ] ||
	fail "branch roots main and pr-1 have the same st_ino $(ino "$MNT/main")"
[ "$(ino "$MNT/main/PG_VERSION")" != "$(ino "$MNT/pr-1/PG_VERSION")" ] ||
	fail "main/PG_VERSION and pr-1/PG_VERSION have the same st_ino"
[ "$(ino "$MNT/main/global/pg_control")" != "$(ino "$MNT/pr-1/global/pg_control")" ] ||
	fail "main and pr-1 global/pg_control have the same st_ino"
log "st_ino: main=$(ino "$MNT/main") pr-1=$(ino "$MNT/pr-1")"

pg_start "$MNT/pr-1" "$P2"  # parent still running, under load
kill -0 "$BG" 2>/dev/null || log "note: background pgbench finished before pr-1 started"

got=$(q "$P2" "select string_agg(note, ',' order by id) from marker")
[ "$got" = before-branch ] || fail "pr-1 marker rows are '$got', expected 'before-branch'"
h2=$(q "$P2" 'select count(*) from pgbench_history')
[ "$h2" -ge "$before_hist" ] || fail "pr-1 has $h2 history rows, fewer than the $before_hist committed before mkdir"

q "$P2" "insert into marker values (3, 'branch-only')"
q "$P1" "insert into marker values (4, 'main-only')"
q "$P2" "delete from pgbench_accounts where aid <= 1000"

bg_pgbench_wait

got=$(q "$P1" "select string_agg(note, ',' order by id) from marker")
[ "$got" = before-branch,after-branch,main-only ] || fail "main marker rows are '$got'"
got=$(q "$P2" "select string_agg(note, ',' order by id) from marker")
[ "$got" = before-branch,branch-only ] || fail "pr-1 marker rows are '$got'"
a1=$(q "$P1" 'select count(*) from pgbench_accounts')
a2=$(q "$P2" 'select count(*) from pgbench_accounts')
[ "$a1" -eq $((SCALE * 100000)) ] || fail "main has $a1 accounts, expected $((SCALE * 100000))"
[ "$a2" -eq $((SCALE * 100000 - 1000)) ] || fail "pr-1 has $a2 accounts, expected $((SCALE * 100000 - 1000))"
log "isolation ok: main accounts=$a1, pr-1 accounts=$a2"

# rewrite, truncate and unlink inherited files on the branch only
q "$P2" "vacuum full pgbench_accounts"
q "$P2" "create database brdb"
q "$P2" "drop database brdb"
q "$P2" "create database brdb2"
q "$P2" "truncate pgbench_history"
[ "$(q "$P1" "select count(*) from pg_database where datname like 'brdb%'")" = 0 ] ||
	fail "a database created on pr-1 shows up on main"
[ "$(q "$P2" "select count(*) from pg_database where datname like 'brdb%'")" = 1 ] ||
	fail "pr-1 does not see its own database brdb2"
[ "$(q "$P1" 'select count(*) from pgbench_accounts')" -eq "$a1" ] || fail "vacuum full on pr-1 changed main"
[ "$(q "$P2" 'select count(*) from pgbench_accounts')" -eq "$a2" ] || fail "vacuum full on pr-1 lost rows"
log "vacuum full / create+drop database / truncate on pr-1 left main untouched"

log "pgbench on the branch while main keeps running"
run_pgbench "$P2" -c 2 -j 2 -T 8
hm=$(q "$P1" 'select count(*) from pgbench_history')
hb=$(q "$P2" 'select count(*) from pgbench_history')
log "pgbench_history rows: main=$hm pr-1=$hb"

q "$P1" checkpoint >/dev/null
q "$P2" checkpoint >/dev/null
amcheck "$P1"
amcheck "$P2"
pg_stop "$MNT/pr-1"
pg_stop "$MNT/main"
bfs_umount
