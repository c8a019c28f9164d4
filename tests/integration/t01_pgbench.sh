#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
# t01: a stock Postgres on branch `main`: initdb, start, pgbench -i -s 10,
# pgbench -c 4 -j 2 -T 20 with no errors, then pg_amcheck --heapallindexed.
source "$(dirname "$0")/lib.sh"
it_init

SCALE=${IT_SCALE:-10}
bfs_mount
mk_branch main
pg_initdb "$MNT/main"
free_port PORT
pg_start "$MNT/main" "$PORT"
[ "$(q "$PORT" 'select 1')" = 1 ] || fail "select 1 did not return 1"

log "pgbench -i -s $SCALE"
run_pgbench "$PORT" -i -s "$SCALE" -q
n=$(q "$PORT" 'select count(*) from pgbench_accounts')
[ "$n" -eq $((SCALE * 100000)) ] || fail "pgbench_accounts has $n rows, expected $((SCALE * 100000))"

log "pgbench -c 4 -j 2 -T 20"
run_pgbench "$PORT" -c 4 -j 2 -T 20 -P 5
h=$(q "$PORT" 'select count(*) from pgbench_history')
[ "$h" -gt 0 ] || fail "pgbench_history is empty after the run"
log "pgbench_history rows: $h"

# every balance change went through pgbench_history: sums must agree
sums=$(q "$PORT" "select (select sum(abalance) from pgbench_accounts) = (select sum(delta) from pgbench_history)
	and (select sum(bbalance) from pgbench_branches) = (select sum(delta) from pgbench_history)
	and (select sum(tbalance) from pgbench_tellers) = (select sum(delta) from pgbench_history)")
[ "$sums" = t ] || fail "account/branch/teller balances disagree with pgbench_history"

q "$PORT" 'checkpoint' >/dev/null
amcheck "$PORT"
pg_stop "$MNT/main"
bfs_umount
