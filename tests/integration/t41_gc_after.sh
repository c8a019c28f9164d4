#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
# t41: GC takes nothing a branch still reads, and time travel ends exactly at
# the horizon.  main (pgbench) gets a child b1 with its own pgbench work and
# a grandchild b2; a branch tt-pre is made at a moment T1 that is already
# outside the retention window (allowed: no GC has run yet); main moves on.
# Every branch's content is fingerprinted (row counts, balance sums, an md5
# of every account row, marker rows), then `branchctl gc` runs while pgbench
# keeps writing to b1.  Afterwards, and again after a remount (cold kernel
# cache, everything read back from the store):
#  - each quiescent branch has exactly the fingerprint it had before, and
#    pg_amcheck --heapallindexed is clean on every branch;
#  - `branchctl create --at T2` (inside the window) works and sees exactly
#    what main held at T2;
#  - `branchctl create --at T1` (GC gave it up) exits 8 and names the
#    oldest moment still retained, the one `branchctl status` shows;
#  - that oldest moment is the same after the remount.
source "$(dirname "$0")/lib.sh"
it_init

SCALE=${IT_SCALE41:-2}
RETENTION=20
BRANCHCTL=${BRANCHCTL:-$IT_ROOT/bin/branchctl}
[ -x "$BRANCHCTL" ] || fail "$BRANCHCTL not built: run 'make all' first"

bctl() { tmo 300 "$BRANCHCTL" --mount "$MNT" "$@"; }
json_field() {
	python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# fingerprint PORT: one line that changes if any row of the branch does
fingerprint() {
	q "$1" "select (select count(*) from pgbench_accounts) || ' ' ||
		(select sum(abalance) from pgbench_accounts) || ' ' ||
		(select md5(string_agg(aid || ':' || bid || ':' || abalance, ',' order by aid)) from pgbench_accounts) || ' ' ||
		(select count(*) from pgbench_history) || ' ' ||
		coalesce((select sum(delta) from pgbench_history), 0) || ' ' ||
		(select sum(tbalance) from pgbench_tellers) || ' ' ||
		(select string_agg(note, ',' order by id) from marker)"
}

# consistent PORT: every balance change is in pgbench_history
consistent() {
	local r
	r=$(q "$1" "select (select coalesce(sum(abalance), 0) from pgbench_accounts) = (select coalesce(sum(delta), 0) from pgbench_history)
		and (select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta), 0) from pgbench_history)")
	[ "$r" = t ] || fail "balances on port $1 disagree with pgbench_history"
}

# create_at NAME WHEN: branchctl create NAME --from main --at WHEN; sets RC
# and ERR (stderr)
create_at() {
	RC=0
	ERR=$(bctl create "$1" --from main --at "$2" 2>&1 >/dev/null) || RC=$?
}

# expect_not_retained NAME WHEN: exit 8, and the message names the oldest
# moment that `branchctl status` reports
expect_not_retained() {
	local oldest
	create_at "$1" "$2"
	[ "$RC" -eq 8 ] || fail "create $1 --at $2 exited $RC (expected 8): $ERR"
	oldest=$(bctl --json status | json_field oldest)
	[ -n "$oldest" ] || fail "branchctl status names no oldest moment"
	[[ $ERR == *"$oldest"* ]] || fail "create $1 --at $2 failed without naming the oldest moment '$oldest': $ERR"
	[ ! -e "$MNT/$1" ] || fail "failed create left a branch $1 behind"
	log "create --at $2 -> exit 8: $ERR"
}

declare -A PORT=()
start_all() {
	local b
	for b in "$@"; do pg_start "$MNT/$b" "${PORT[$b]}"; done
}
stop_all() {
	local b
	for b in "$@"; do
		pg_stop "$MNT/$b"
		unset "IT_PGRUN[$MNT/$b]" "IT_PGPID[$MNT/$b]"
	done
}

bfs_mount "$STORE" "$MNT" "retention=$RETENTION,gc_interval=0"
mk_branch main
pg_initdb "$MNT/main"
for b in main b1 b2 tt-pre tt-in; do free_port "PORT[$b]"; done
start_all main
P=${PORT[main]}
run_pgbench "$P" -i -s "$SCALE" -q
q "$P" "create table marker(id int primary key, note text not null)"
q "$P" "insert into marker values (1, 'early')"
run_pgbench "$P" -n -c 2 -j 2 -t 200
sleep 1.2
T1=$(date +%s)
FP_T1=$(fingerprint "$P")
sleep 1.2
log "T1 = $(iso "$T1"): main has marker 'early'"

# work after T1, on main and on branches
q "$P" "insert into marker values (2, 'after-t1')"
run_pgbench "$P" -n -c 2 -j 2 -t 300
tmo 60 mkdir "$MNT/b1"
start_all b1
q "${PORT[b1]}" "insert into marker values (10, 'b1')"
run_pgbench "${PORT[b1]}" -n -c 2 -j 2 -t 300
q "${PORT[b1]}" checkpoint >/dev/null
bctl create b2 --from b1 >/dev/null
start_all b2
q "${PORT[b2]}" "insert into marker values (20, 'b2')"
q "${PORT[b2]}" "delete from pgbench_accounts where aid % 7 = 0"
q "${PORT[b2]}" "vacuum pgbench_accounts"
run_pgbench "$P" -n -c 2 -j 2 -t 300

# a moment outside the window: allowed while no GC has given it up
while (($(date +%s) <= T1 + RETENTION + 1)); do sleep 1; done
create_at tt-pre "$(iso "$T1")"
[ "$RC" -eq 0 ] || fail "create tt-pre --at T1 before any GC exited $RC: $ERR"
start_all tt-pre
[ "$(fingerprint "${PORT[tt-pre]}")" = "$FP_T1" ] || fail "tt-pre (main at T1) differs from main at T1"
log "tt-pre made at T1 before GC: matches main at T1"

q "$P" "insert into marker values (3, 'before-t2')"
sleep 1.2
T2=$(date +%s)
FP_T2=$(fingerprint "$P")
sleep 1.2
q "$P" "insert into marker values (4, 'after-t2')"
log "T2 = $(iso "$T2")"

QUIET=(main b2 tt-pre)
declare -A FP=()
for b in "${QUIET[@]}"; do
	q "${PORT[$b]}" checkpoint >/dev/null
	FP[$b]=$(fingerprint "${PORT[$b]}")
done

# GC while b1 is under load
"$PGBIN/pgbench" -h "$SOCK" -p "${PORT[b1]}" -U postgres -n -c 2 -j 2 -T 15 postgres \
	>"$T/log/bg-pgbench-b1.out" 2>&1 &
BG=$!
IT_BG+=("$BG")
sleep 3
out=$(bctl gc) || fail "branchctl gc failed: $out"
log "$out"
wait "$BG" || fail "pgbench on b1 during gc failed: $(tail -n 20 "$T/log/bg-pgbench-b1.out")"
grep -q 'number of failed transactions: 0 ' "$T/log/bg-pgbench-b1.out" ||
	fail "pgbench on b1 during gc had failures: $(grep -i fail "$T/log/bg-pgbench-b1.out")"
log "pgbench on b1 during gc: $(grep 'tps =' "$T/log/bg-pgbench-b1.out" | head -n 1)"
q "${PORT[b1]}" checkpoint >/dev/null
FP[b1]=$(fingerprint "${PORT[b1]}")
OLDEST=$(bctl --json status | json_field oldest)
log "oldest moment retained after gc: $OLDEST"

check_branches() { # WHEN
	local b
	for b in "${QUIET[@]}" b1; do
		[ "$(fingerprint "${PORT[$b]}")" = "${FP[$b]}" ] ||
			fail "$b reads differently $1: '$(fingerprint "${PORT[$b]}")' != '${FP[$b]}'"
	done
	consistent "${PORT[main]}"
	consistent "${PORT[b1]}"
	log "main, b1, b2, tt-pre read exactly what they read before gc ($1)"
}
check_branches "after gc"

# time travel: inside the window works, outside fails with exit 8
create_at tt-in "$(iso "$T2")"
[ "$RC" -eq 0 ] || fail "create tt-in --at T2 (inside the window) exited $RC: $ERR"
start_all tt-in
[ "$(fingerprint "${PORT[tt-in]}")" = "$FP_T2" ] || fail "tt-in (main at T2) differs from main at T2"
log "tt-in made at T2 after gc: matches main at T2"
expect_not_retained tt-old "$(iso "$T1")"
# an exact seq below the horizon: exit 8 as well
create_at tt-old seq:1
[ "$RC" -eq 8 ] || fail "create tt-old --at seq:1 exited $RC (expected 8): $ERR"
log "create --at seq:1 -> exit 8: $ERR"

# everything once more from a cold cache
stop_all tt-in tt-pre b2 b1 main
bfs_umount
bfs_mount "$STORE" "$MNT" "retention=$RETENTION,gc_interval=0"
start_all main b1 b2 tt-pre tt-in
check_branches "after gc and a remount"
[ "$(fingerprint "${PORT[tt-in]}")" = "$FP_T2" ] || fail "tt-in differs from main at T2 after the remount"
expect_not_retained tt-old "$(iso "$T1")"
for b in main b1 b2 tt-pre tt-in; do amcheck "${PORT[$b]}"; done
stop_all tt-in tt-pre b2 b1 main
# the horizon is durable: a restart does not give up more than GC did
OLDEST2=$(bctl --json status | json_field oldest)
[ "$OLDEST2" = "$OLDEST" ] ||
	fail "oldest moment retained moved from $OLDEST to $OLDEST2 across a remount (no gc ran)"
bfs_umount
