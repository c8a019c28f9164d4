#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 150
# t33: point-in-time recovery while GC takes what leaves a short retention
# window.  pgbench runs on main, and a marker row (its number and now()) is
# committed every 0.5 s by a client that records the wall-clock time before
# and after each commit; background GC runs every second and `branchctl gc`
# in a loop, with a retention of 6 s.  Meanwhile branches are made with
# `branchctl create --at T` for moments T a few seconds back (ISO 8601 and
# local time) and at the very edge of the window (now - 6 s, give or take
# 0.4 s: made, or refused with exit 8, time not retained, nothing else).  Each
# branch, started after more GC, recovers as the crash image of T: its
# markers are exactly 1..k, with every marker whose commit returned before T
# and none whose commit began 10 ms (the time index's resolution) or more
# after T; pgbench's balances add up, and pg_amcheck is clean on the
# first.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

RET=6
bfs_mount "" "" "retention=$RET,gc_interval=1"
expect_ctl 0 create main
chown postgres: "$MNT/main"
chmod 0700 "$MNT/main"
pg_initdb "$MNT/main"
free_port P0
pg_start "$MNT/main" "$P0"
q "$P0" "create table markers(id int primary key, at timestamptz not null)"
tmo 120 "$PGBIN/pgbench" -h "$SOCK" -p "$P0" -U postgres -i -s 2 -q postgres >"$T/log/pgbench-init.out" 2>&1 ||
	fail "pgbench -i failed: $(tail -n 5 "$T/log/pgbench-init.out")"

# markers: "id before after" per line, epoch seconds with ns
MARKS=$T/markers
: >"$MARKS"
(
	trap - ERR
	set +e
	for ((i = 1; i <= 100; i++)); do
		b=$(date +%s.%N)
		"$PGBIN/psql" -X -q -h "$SOCK" -p "$P0" -U postgres -d postgres \
			-c "insert into markers values ($i, now())" >/dev/null 2>&1 || break
		a=$(date +%s.%N)
		echo "$i $b $a" >>"$MARKS"
		sleep 0.5
	done
) &
IT_BG+=("$!")
MPID=$!
(
	trap - ERR
	set +e
	while :; do
		"$BRANCHCTL" --mount "$MNT" gc >/dev/null 2>>"$T/log/gc-loop.err"
		sleep 0.3
	done
) &
IT_BG+=("$!")
GCPID=$!
bg_pgbench "$P0" 2 16 2

declare -a names=() whens=()
iso_of() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.%3NZ; }
local_of() { date -d "@$1" '+%Y-%m-%d %H:%M:%S.%3N'; }
for round in 1 2 3; do
	sleep 4
	now=$(date +%s.%N)
	# a moment well inside the window, and one at its edge
	for kind in in edge; do
		if [ $kind = in ]; then
			when=$(python3 -c "import random; print('%.3f' % ($now - random.uniform(1.5, 3.5)))")
		else
			when=$(python3 -c "import random; print('%.3f' % ($now - $RET + random.uniform(-0.3, 0.4)))")
		fi
		name=pit$round$kind
		if [ $((round % 2)) -eq 0 ]; then at=$(iso_of "$when"); else at=$(local_of "$when"); fi
		ctl create "$name" --at "$at"
		if [ "$CTL_RC" -eq 8 ] && [ $kind = edge ]; then
			log "$name at $at: refused at the edge (exit 8: $CTL_ERR)"
			continue
		fi
		[ "$CTL_RC" -eq 0 ] || fail "create $name --at '$at' exited $CTL_RC: $CTL_ERR"
		# the moment as the client's clock (epoch with ms) took it
		names+=("$name")
		whens+=("$when")
		log "$name at $at (epoch $when): $CTL_OUT"
	done
done
bg_pgbench_wait
kill "$MPID" "$GCPID" 2>/dev/null || true
wait "$MPID" "$GCPID" 2>/dev/null || true
[ "$(wc -l <"$MARKS")" -ge 12 ] || fail "only $(wc -l <"$MARKS") markers committed"
[ "${#names[@]}" -ge 3 ] || fail "only ${#names[@]} branches made"
# every version not read by a branch or inside the window goes now
expect_ctl 0 gc
grep -q 'gc: .*deleted [1-9]' "$T"/log/branchd-*.log || fail "GC deleted nothing: the test did not race it"

for idx in "${!names[@]}"; do
	name=${names[$idx]}
	when=${whens[$idx]}
	# k_min: markers whose commit returned before T; k_max: before those that
	# began 10 ms after it
	read -r kmin kmax < <(python3 - "$MARKS" "$when" <<'EOF'
import sys
t = float(sys.argv[2])
kmin, kmax = 0, None
for line in open(sys.argv[1]):
    i, b, a = line.split()
    i, b, a = int(i), float(b), float(a)
    if a <= t:
        kmin = i
    if kmax is None and b >= t + 0.010:
        kmax = i - 1
print(kmin, kmax if kmax is not None else 10**9)
EOF
	)
	free_port port
	pg_start "$MNT/$name" "$port"
	grep -qE 'redo starts|redo done|automatic recovery|was interrupted' "$T/log/pg-$name-$port.log" ||
		fail "postgres on $name did not run crash recovery"
	got=$(q "$port" "select count(*) || ' ' || coalesce(max(id), 0) || ' ' || coalesce(min(id), 1) from markers")
	read -r cnt mx mn <<<"$got"
	[ "$cnt" = "$mx" ] && [ "$mn" = 1 ] || fail "$name: markers are not 1..k: count $cnt, max $mx, min $mn"
	[ "$mx" -ge "$kmin" ] && [ "$mx" -le "$kmax" ] ||
		fail "$name (T = $when): holds markers 1..$mx, expected 1..k with $kmin <= k <= $kmax"
	[ "$(q "$port" "$PGBENCH_SUMS")" = t ] || fail "$name: pgbench balances do not add up"
	[ "$idx" -ne 0 ] || amcheck "$port"
	pg_stop "$MNT/$name" immediate
	log "$name: markers 1..$mx (allowed $kmin..$kmax) ok"
done
pg_stop "$MNT/main"
bfs_umount
