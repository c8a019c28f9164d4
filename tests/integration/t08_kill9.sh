#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
# t08: fsync means durable.  While pgbench and a loop of single-row commits
# run, branchd is killed with SIGKILL (as a power cut would take it).  After
# a remount, Postgres recovers and every commit it acknowledged is there;
# the pgbench balances still add up and pg_amcheck is clean, on main and on
# a branch made just before the kill; a branch made by mkdir right before
# the kill, with no fsync of its own, is there too.
source "$(dirname "$0")/lib.sh"
it_init

bfs_mount
mk_branch main
pg_initdb "$MNT/main"
free_port P1
free_port P2
pg_start "$MNT/main" "$P1"
run_pgbench "$P1" -i -s 2 -q
q "$P1" "create table acked(id int primary key)"

"$PGBIN/pgbench" -h "$SOCK" -p "$P1" -U postgres -c 2 -j 2 -T 60 postgres >"$T/log/bg-pgbench.out" 2>&1 &
IT_BG+=("$!")
acked_loop "$P1" "$T/acked"
sleep 4
mk_child pr-1
[ ! -e "$MNT/pr-1/postmaster.pid" ] || fail "pr-1 has a postmaster.pid right after mkdir"
sleep 3
[ ! -e "$MNT/pr-1/postmaster.pid" ] || fail "pr-1 has a postmaster.pid 3 s after mkdir"
n_acked=$(wc -l <"$T/acked")
[ "$n_acked" -gt 10 ] || fail "only $n_acked commits acknowledged before the kill"

# mkdir(2) does not sync (POSIX promises nothing before an fsync), but a
# kill of the daemon must not lose the branch: it is in the store's WAL
mkdir "$MNT/pr-2" || fail "mkdir pr-2"
pid=${IT_MNTPID[$MNT]}
log "kill -9 branchd $pid after $n_acked acknowledged commits"
kill -KILL "$pid"
_it_wait_gone "$pid" 10 || fail "branchd $pid survived SIGKILL?"
n_acked=$(wc -l <"$T/acked") # a commit may have been acked just before the kill landed
for bg in "${IT_BG[@]}"; do kill -TERM "$bg" 2>/dev/null || true; done
pm=${IT_PGPID[$MNT/main]}
kill -QUIT "$pm" 2>/dev/null || true
_it_wait_gone "$pm" 30 || kill -KILL "$pm" 2>/dev/null || true
_it_wait_gone "$pm" 10 || fail "postmaster $pm does not exit after its filesystem died"
sleep 1
tmo 20 fusermount3 -u "$MNT" 2>/dev/null || tmo 20 fusermount3 -uz "$MNT" || fail "cannot unmount the dead mount"
! is_mounted "$MNT" || fail "$MNT still mounted after fusermount3"

bfs_mount
[ "$(ls "$MNT" | tr '\n' ' ')" = "main pr-1 pr-2 " ] || fail "branches after the crash: $(ls "$MNT")"
pg_start "$MNT/main" "$P1"
got=$(q "$P1" "select count(*) from acked where id <= $n_acked")
[ "$got" -eq "$n_acked" ] || fail "main lost acknowledged commits: $got of 1..$n_acked present"
log "all $n_acked acknowledged commits survived kill -9 (table has $(q "$P1" 'select count(*) from acked'))"
[ "$(q "$P1" "$PGBENCH_SUMS")" = t ] || fail "main: balances disagree with pgbench_history after recovery"
amcheck "$P1"
if [ -e "$MNT/pr-1/postmaster.pid" ]; then
	ls -la "$MNT/pr-1" >&2
	fail "after kill -9 and remount, pr-1 has a postmaster.pid (absent before the kill): $(head -n 1 "$MNT/pr-1/postmaster.pid"), main's postmaster was $pm"
fi
pg_start "$MNT/pr-1" "$P2"
[ "$(q "$P2" "$PGBENCH_SUMS")" = t ] || fail "pr-1: balances disagree with pgbench_history after recovery"
b=$(q "$P2" 'select count(*) from acked')
[ "$b" -gt 0 ] && [ "$b" -le "$n_acked" ] || fail "pr-1 has $b acked rows, expected 1..$n_acked"
amcheck "$P2"
pg_stop "$MNT/pr-1"
pg_stop "$MNT/main"
bfs_umount
