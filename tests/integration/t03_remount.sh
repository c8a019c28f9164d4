#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
# t03: stop both servers, unmount, mount again (this time letting branchd
# daemonize): both branches and all their committed rows are still there,
# byte for byte, and both clusters start and pass pg_amcheck.
source "$(dirname "$0")/lib.sh"
it_init

bfs_mount
mk_branch main
pg_initdb "$MNT/main"
free_port P1
free_port P2
pg_start "$MNT/main" "$P1"
run_pgbench "$P1" -i -s 2 -q
q "$P1" "create table t(id int primary key, note text)"
q "$P1" "insert into t values (1, 'main-1')"
mk_child pr-1
mk_child pr-2  # never started: must stay without postmaster.pid across remounts
pg_start "$MNT/pr-1" "$P2"
q "$P1" "insert into t values (2, 'main-2')"
q "$P2" "insert into t values (3, 'pr-1')"
run_pgbench "$P1" -c 2 -T 5
run_pgbench "$P2" -c 2 -T 5

digest_pair t "$P1" "$P2"

pg_stop "$MNT/pr-1"
pg_stop "$MNT/main"
ls_before=$(ls "$MNT")
bfs_umount

bfs_mount_daemon
ls_after=$(ls "$MNT")
[ "$ls_before" = "$ls_after" ] || fail "branches before remount: [$ls_before], after: [$ls_after]"
[ "$(echo "$ls_after" | tr '\n' ' ')" = "main pr-1 pr-2 " ] || fail "unexpected branch list after remount: $ls_after"
[ "$(stat -c %U "$MNT/main")" = postgres ] || fail "main lost its owner across remount"
for f in postmaster.pid postmaster.opts; do
	if [ -e "$MNT/pr-2/$f" ]; then
		fail "after remount, pr-2/$f exists again (lookup finds it: '$(head -n 1 "$MNT/pr-2/$f")'; readdir lists it $(ls "$MNT/pr-2" | grep -c "^$f\$" || true) times): the drop at branch creation did not survive the remount"
	fi
done

pg_start "$MNT/main" "$P1"
pg_start "$MNT/pr-1" "$P2"
[ "$(q "$P1" "$DIGEST")" = "$D1" ] || fail "main contents changed across unmount/mount"
[ "$(q "$P2" "$DIGEST")" = "$D2" ] || fail "pr-1 contents changed across unmount/mount"
[ "$(q "$P1" "select string_agg(note, ',' order by id) from t")" = main-1,main-2 ] || fail "main rows wrong after remount"
[ "$(q "$P2" "select string_agg(note, ',' order by id) from t")" = main-1,pr-1 ] || fail "pr-1 rows wrong after remount"
log "both branches identical after remount"
amcheck "$P1"
amcheck "$P2"
pg_stop "$MNT/pr-1"
pg_stop "$MNT/main"
bfs_umount
