#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
# t31: time travel with a running Postgres.  Three batches of rows are
# committed on main a few seconds apart (a checkpoint in the middle); a
# branch made with `branchctl create --at WHEN` for a moment before, between
# and after the batches is the crash image of main at that moment: Postgres
# recovers it from WAL and it holds exactly the batches committed before
# the moment.  `--at seq:N` with the seq read at that moment gives the same
# result.  Moments are given as ISO 8601 UTC and as local wall-clock time.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

ROWS=${IT_T31_ROWS:-20000}
iso_of() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.%3NZ; }
local_of() { date -d "@$1" '+%Y-%m-%d %H:%M:%S.%3N'; }

bfs_mount
expect_ctl 0 create main
chown postgres: "$MNT/main"
chmod 0700 "$MNT/main"
pg_initdb "$MNT/main"
free_port P0
pg_start "$MNT/main" "$P0"
q "$P0" "create table rows_(batch int not null, id int not null, pad text, primary key (batch, id))"
q "$P0" "create table state(k int primary key, v int not null)"
q "$P0" "insert into state values (1, 0)"

# moments[i] = wall-clock time (epoch.frac) after i batches; seqs[i] = store seq then
declare -a moments=() seqs=()
mark() {
	sleep 2
	moments+=("$(date +%s.%N)")
	seqs+=("$(ctl_seq)")
	log "moment ${#moments[@]}: $(iso_of "${moments[-1]}") seq ${seqs[-1]}"
	sleep 2
}
mark # 0 batches
for b in 1 2 3; do
	q "$P0" "begin; insert into rows_ select $b, g, md5(g::text) from generate_series(1, $ROWS) g;
		update state set v = $b where k = 1; commit;"
	[ $b -eq 2 ] && q "$P0" checkpoint
	log "batch $b committed"
	mark
done
[ "$(q "$P0" 'select count(*) from rows_')" -eq $((3 * ROWS)) ] || fail "main does not hold 3 batches"

# check_branch NAME NBATCHES: Postgres on the branch holds exactly the first NBATCHES
check_branch() {
	local name=$1 k=$2 port got want i
	[ "$(stat -c %U "$MNT/$name")" = postgres ] || fail "branch $name root is not owned by postgres"
	[ ! -e "$MNT/$name/postmaster.pid" ] || fail "branch $name carries main's postmaster.pid"
	free_port port
	pg_start "$MNT/$name" "$port"
	grep -qE 'database system was interrupted|redo starts|redo done|crash recovery|automatic recovery' \
		"$T/log/pg-$name-$port.log" || fail "postgres on $name did not run crash recovery: $(head -n 20 "$T/log/pg-$name-$port.log")"
	got=$(q "$port" "select coalesce(string_agg(batch || ':' || n, ',' order by batch), '') from
		(select batch, count(*) n from rows_ group by batch) s")
	want=""
	for ((i = 1; i <= k; i++)); do want+="${want:+,}$i:$ROWS"; done
	[ "$got" = "$want" ] || fail "branch $name (expected $k batches) holds '$got', expected '$want'"
	[ "$(q "$port" "select v from state where k = 1")" = "$k" ] || fail "branch $name state is not $k"
	# the branch is writable and its writes stay there
	q "$port" "insert into rows_ values (99, 1, 'branch-only')"
	[ "$(q "$P0" 'select count(*) from rows_ where batch = 99')" = 0 ] || fail "a write on $name reached main"
	[ "$k" -ne 2 ] || amcheck "$port"
	pg_stop "$MNT/$name" immediate
	log "branch $name: rows per batch '$got' (expected $k batches) ok"
}

for i in 0 1 2 3; do
	if [ $((i % 2)) -eq 0 ]; then
		expect_ctl 0 --json create "t$i" --at "$(iso_of "${moments[$i]}")"
	else
		expect_ctl 0 --json create "t$i" --at "$(local_of "${moments[$i]}")"
	fi
	jassert "$CTL_OUT" "d['branch']['parent'] == 'main' and $([ $i -gt 0 ] && echo "${seqs[$((i - 1))]}" || echo 0) <= d['branch']['fork_seq'] <= ${seqs[$i]}" \
		"fork seq of t$i within [seq of the previous moment, seq of moment $i]"
	expect_ctl 0 --json create "s$i" --at "seq:${seqs[$i]}"
	jassert "$CTL_OUT" "d['branch']['fork_seq'] == ${seqs[$i]}" "fork seq of s$i"
done
for i in 0 1 2 3; do
	check_branch "t$i" "$i"
	check_branch "s$i" "$i"
done

# main is untouched by all of this
[ "$(q "$P0" 'select count(*) from rows_')" -eq $((3 * ROWS)) ] || fail "main changed"
[ "$(q "$P0" 'select v from state')" = 3 ] || fail "main state changed"
pg_stop "$MNT/main"
bfs_umount
