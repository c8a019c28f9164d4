#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# crash.sh - crash-safety harness (make crashtest; t20_crash_short.sh runs a
# short version inside make check).
#
# Setup: branchd on a fresh store, Postgres on branch `main` (checkpoints
# every 30 s, small max_wal_size), pgbench -i, a table `acked`, a branch
# `static` (a crash image of main, never written: its checksum must never
# change) and a branch `files` for a plain-file fsync workload.
#
# Each round:
#   load:   CRASH_CLIENTS ack clients (crash_clients.py ack: every COMMIT the
#           server acknowledged is appended to a local file outside the
#           mount), pgbench tpcb-like (-c 2), the file workload on `files`
#           (fsync of files and directories, renames, unlinks, fdatasync),
#           and on churn rounds a loop that creates and deletes branches
#           (mkdir/rmdir, branchctl create/delete) under load;
#   crash:  after a random delay, mkdir a snapshot branch of main, wait a
#           random fraction of a second and kill -9 branchd (kind bd),
#           every Postgres process (pg), both at once (both), or cut the
#           power (pwr: both killed, then the store is cut back to what a
#           power cut would leave, below); on +rec rounds branchd is killed
#           (or the power cut) once more while Postgres replays WAL;
#   recover: kill the orphaned Postgres, fusermount3 -uz, branchd --check
#           on the dead store (must be clean), start branchd on the same
#           store, start Postgres (WAL recovery);
#   verify: every acknowledged id of every round so far is in `acked`,
#           pg_amcheck --heapallindexed is clean, pgbench's sums agree
#           (abalance = bbalance = tbalance = history delta), every
#           acknowledged file operation of every round is visible, the
#           `static` branch is unchanged, and the snapshot branch starts
#           as a crash image (recovery, amcheck, sums, and every id acked
#           before its mkdir is in it).
# Power cuts: kill -9 leaves every byte branchd wrote in the kernel's page
# cache, synced or not, so it cannot show that an fsync was durable.  When
# any round may be a pwr round, every branchd of the run runs under
# build/powercut.so (tests/powercut/powercut.c), which keeps a copy of each
# store file as of its last fsync; after the kill, powercut_image.py rewrites
# the store as those copies plus a random part of what was written since
# (whole files kept as synced, or 512 B / 4 KiB units taken at random, torn
# records included).  In pwr rounds the snapshot's mkdir is followed by an
# fsync of the branch root, as a user who needs it durable would do.
# The snap column: ok, PIDF (the branch showed postmaster.pid, DESIGN rule 2
# broken, but once it was removed the crash image started and verified),
# BAD or MISSING.
# At the end: a per-round table and a summary (rounds, acknowledged
# transactions, lost, amcheck failures, ...).  Exit 1 if anything was lost
# or damaged.
#
# Environment: CRASH_ROUNDS (50), CRASH_SEED (random), CRASH_SCALE (pgbench
# scale, 2), CRASH_CLIENTS (3), CRASH_MIN/CRASH_MAX (seconds of load before
# the kill, 3/12), CRASH_CHECK_EVERY (run branchd --check after every Nth
# daemon crash, 1), CRASH_KINDS (cycle of kinds, default random),
# CRASH_KINDS of bd, pg, both, pwr with +churn and/or +rec,
# CRASH_BD_OPTS (branchd -o options, e.g. gc_interval=1,retention=10),
# CRASH_SELFTEST=1 (damage the recovered state on purpose: the run must then
# report lost ids, a sum mismatch and a missing file, and fail),
# CRASH_SELFTEST=power (after the setup, branchd runs on a disk whose fsync
# lies, POWERCUT_LIE: the first pwr round must report lost commits and fail).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init

ROUNDS=${CRASH_ROUNDS:-50}
SEED=${CRASH_SEED:-$(( $(date +%s) % 100000 ))}
SCALE=${CRASH_SCALE:-2}
NCLIENTS=${CRASH_CLIENTS:-3}
TMIN=${CRASH_MIN:-3}
TMAX=${CRASH_MAX:-12}
CHECK_EVERY=${CRASH_CHECK_EVERY:-1}
KINDS=${CRASH_KINDS:-}
CLIENTS=$IT_ROOT/tests/integration/crash_clients.py
RANDOM=$SEED
log "rounds=$ROUNDS seed=$SEED scale=$SCALE clients=$NCLIENTS load=${TMIN}-${TMAX}s kinds=${KINDS:-random}"

ACKS=$T/acks
PCLIB=$IT_ROOT/build/powercut.so
PCIMG=$IT_ROOT/tests/powercut/powercut_image.py
SHADOW=$T/shadow
POWER=0
[[ " ${KINDS:-pwr} " == *pwr* ]] && POWER=1 # the random kinds include pwr
if [ $POWER = 1 ] && [ ! -f "$PCLIB" ]; then
	fail "$PCLIB is missing: make build/powercut.so (make check-integration and make crashtest build it)"
fi
NCUT=0
mkdir -p "$ACKS"
PGD=$MNT/main
declare -a ROWS=()
TOT_ACK=0 TOT_LOST=0 TOT_AMCHECK=0 TOT_FSOPS=0 TOT_FSBAD=0 TOT_SNAPBAD=0 TOT_CHECKBAD=0
TOT_PGB=0 TOT_SNAPPID=0 TOT_STATICBAD=0 TOT_SUMBAD=0 TOT_CHURN=0 NCHECK=0
declare -a PROBLEMS=()

problem() {
	PROBLEMS+=("round $R: $*")
	printf '[%s %s] PROBLEM: round %s: %s\n' "$IT_NAME" "$(date +%H:%M:%S)" "$R" "$*" >&2
}

# kill -9 every process of the cluster on PGDATA $1 (postmaster + children)
pg_kill9() {
	local d=$1 pm=${IT_PGPID[$1]:-} kids
	[ -n "$pm" ] || return 0
	_it_alive "$pm" || return 0
	kids=$(pgrep -P "$pm" || true)
	# shellcheck disable=SC2086
	kill -KILL "$pm" $kids 2>/dev/null || true
	_it_wait_gone "$pm" 20 || fail "postmaster $pm survived kill -9"
	for k in $kids; do _it_wait_gone "$k" 20 || fail "backend $k survived kill -9"; done
}

# amcheck_count PORT: 0 if pg_amcheck --heapallindexed is clean, else 1
# (output kept in the log)
amcheck_count() {
	local out rc=0
	out=$(tmo 300 "$PGBIN/pg_amcheck" -h "$SOCK" -p "$1" -U postgres --all --install-missing \
		--heapallindexed 2>&1) || rc=$?
	# --install-missing says so when amcheck is already installed
	out=$(grep -v '^NOTICE:  extension "amcheck" already exists, skipping$' <<<"$out" || true)
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		printf '%s\n' "$out" >"$T/log/amcheck-r$R-$1.out"
		problem "pg_amcheck on port $1 (rc $rc): $(head -c 400 <<<"$out")"
		return 1
	fi
	return 0
}

# sums_ok PORT: pgbench balances agree
sums_ok() {
	local s
	s=$(q "$1" "select (select coalesce(sum(abalance),0) from pgbench_accounts) || ' ' ||
		(select coalesce(sum(bbalance),0) from pgbench_branches) || ' ' ||
		(select coalesce(sum(tbalance),0) from pgbench_tellers) || ' ' ||
		(select coalesce(sum(delta),0) from pgbench_history)") || { problem "balance query failed on port $1"; return 1; }
	read -r a b t h <<<"$s"
	if [ "$a" != "$h" ] || [ "$b" != "$h" ] || [ "$t" != "$h" ]; then
		problem "pgbench sums disagree on port $1: abalance=$a bbalance=$b tbalance=$t history=$h"
		return 1
	fi
	return 0
}

# lost_ids PORT ACKLIST: print how many ids in ACKLIST are not in table acked
lost_ids() {
	local port=$1 list=$2
	q "$port" "copy (select client || ' ' || id from acked) to stdout" | LC_ALL=C sort -u >"$T/dbids" ||
		fail "cannot read table acked on port $port"
	LC_ALL=C sort -u "$list" >"$T/ackids"
	LC_ALL=C comm -23 "$T/ackids" "$T/dbids" >"$T/lost-r$R-$port"
	wc -l <"$T/lost-r$R-$port"
}

tree_sum() { # DIR: checksum of every file's path, mode, owner and content
	(cd "$1" && find . -path ./postmaster.pid -prune -o -printf '%p %m %u %s\n' | LC_ALL=C sort &&
		find . -type f ! -name postmaster.pid -print0 | LC_ALL=C sort -z | xargs -0r sha256sum) | sha256sum | cut -c1-16
}

dirsync() { python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd)' "$1"; }

# churn_loop ROUND: create and delete branches until killed.  Log lines in
# $ACKS/churn-ROUND: "C name" once mkdir and an fsync of the branch root
# returned, "I name" before an rmdir, "D name" once rmdir and the fsync
# returned.
churn_loop() {
	local r=$1 n=0 b f=$ACKS/churn-$1
	trap - ERR
	set +eE
	while :; do
		n=$((n + 1))
		b=churn-$r-$n
		if mkdir "$MNT/$b" 2>/dev/null && dirsync "$MNT" 2>/dev/null; then
			echo "C $b" >>"$f"
			echo "x$n" >"$MNT/$b/churn-file" 2>/dev/null || true
			if ((n % 3 == 0)); then
				"$IT_ROOT/bin/branchctl" --mount "$MNT" create "c$b" --from "$b" >/dev/null 2>&1 || true
				"$IT_ROOT/bin/branchctl" --mount "$MNT" delete "c$b" >/dev/null 2>&1 || true
			fi
			if ((n % 4 != 0)); then
				echo "I $b" >>"$f"
				rmdir "$MNT/$b" 2>/dev/null && dirsync "$MNT" 2>/dev/null && echo "D $b" >>"$f"
			fi
		fi
		sleep 0.$((RANDOM % 3))
	done
}

start_load() {
	local c
	BG_PIDS=()
	for ((c = 1; c <= NCLIENTS; c++)); do
		python3 "$CLIENTS" ack "$SOCK" "$PORT" "$c" "$R" "$ACKS/pg-r$R-c$c" >/dev/null 2>&1 &
		BG_PIDS+=($!)
	done
	"$PGBIN/pgbench" -h "$SOCK" -p "$PORT" -U postgres -n -c 2 -j 1 -T 100000 postgres \
		>"$T/log/pgbench-r$R.out" 2>&1 &
	BG_PIDS+=($!)
	python3 "$CLIENTS" fs "$MNT/files/fsc/r$R" "$ACKS/fs-r$R" >"$T/log/fs-r$R.out" 2>&1 &
	BG_PIDS+=($!)
	if [ "$CHURN" = 1 ]; then
		churn_loop "$R" >/dev/null 2>&1 &
		BG_PIDS+=($!)
	fi
	IT_BG+=("${BG_PIDS[@]}")
}

stop_load() {
	local p
	for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	# the ack clients' psql children die with their pipes; wait for any stragglers
	sleep 0.2
}

start_main() {
	pg_start "$PGD" "$PORT"
}

# crash_mount: bfs_mount; under powercut.so, with a fresh shadow (the store
# as it is now counts as durable) when a round may cut the power
crash_mount() {
	if [ $POWER = 1 ]; then
		rm -rf "$SHADOW"
		IT_BD_ENV=(LD_PRELOAD="$PCLIB" POWERCUT_DIR="$STORE" POWERCUT_SHADOW="$SHADOW")
		[ "${CRASH_SELFTEST:-0}" != power ] || IT_BD_ENV+=(POWERCUT_LIE="$T/lie")
	fi
	bfs_mount "$STORE" "$MNT" "${CRASH_BD_OPTS:-}"
}

# power_cut: branchd is dead and unmounted; leave of its store what a power
# cut at the moment of its death would have left
power_cut() {
	local out=$T/log/powercut-r$R-$1.out
	NCUT=$((NCUT + 1))
	tmo 300 python3 "$PCIMG" "$STORE" "$SHADOW" "$((SEED * 100 + NCUT))" >"$out" 2>&1 ||
		fail "powercut_image.py failed: $(tail -n 3 "$out")"
	log "$(cut -c1-400 "$out")"
}

# ---- setup --------------------------------------------------------------------
crash_mount
mk_branch main
pg_initdb "$PGD"
free_port PORT
free_port PORT2
start_main
q "$PORT" "alter system set checkpoint_timeout = '30s'" >/dev/null
q "$PORT" "alter system set max_wal_size = '64MB'" >/dev/null
q "$PORT" "select pg_reload_conf()" >/dev/null
log "pgbench -i -s $SCALE"
run_pgbench "$PORT" -i -s "$SCALE" -q
q "$PORT" "create table acked(client int, id bigint, pad text, primary key (client, id));
	create table ack_count(client int primary key, n bigint);
	insert into ack_count select g, 0 from generate_series(1, $NCLIENTS) g" >/dev/null
q "$PORT" checkpoint >/dev/null
mkdir "$MNT/static" # a crash image of the running main, never written
STATIC_SUM=$(tree_sum "$MNT/static")
mk_branch files root
mkdir "$MNT/files/fsc"
dirsync "$MNT/files/fsc" # the setup is durable before the first power cut
log "setup done: static branch checksum $STATIC_SUM"
if [ "${CRASH_SELFTEST:-0}" = power ]; then
	touch "$T/lie"
	log "SELFTEST: from now on fsync is not durable (POWERCUT_LIE)"
fi

# ---- rounds --------------------------------------------------------------------
for ((R = 1; R <= ROUNDS; R++)); do
	if [ -n "$KINDS" ]; then
		read -ra ks <<<"$KINDS"
		KIND=${ks[$(((R - 1) % ${#ks[@]}))]}
	else
		ks=(bd bd pg both bd+churn both+churn pg+churn bd+rec both+churn+rec pwr pwr+churn pwr+rec pwr+churn+rec)
		KIND=${ks[$((RANDOM % ${#ks[@]}))]}
	fi
	CHURN=0 REC=0
	[[ "$KIND" == *+churn* ]] && CHURN=1
	[[ "$KIND" == *+rec* ]] && REC=1
	KILL=${KIND%%+*}
	DELAY=$((TMIN * 10 + RANDOM % ((TMAX - TMIN) * 10 + 1)))
	DELAY=$((DELAY / 10)).$((DELAY % 10))
	SNAPWAIT=0.$((RANDOM % 10))
	SNAP=snap-$R
	log "=== round $R/$ROUNDS: kill $KILL$([ $CHURN = 1 ] && echo ', branch churn')$([ $REC = 1 ] && echo ', again during recovery') after ${DELAY}s (snapshot ${SNAPWAIT}s before)"
	h0=$(q "$PORT" "select count(*) from pgbench_history")

	start_load
	sleep "$DELAY"
	# snapshot branch just before the crash: everything acked before its
	# mkdir started must be in it
	cat "$ACKS"/pg-r*-c* >"$T/acked-before-$SNAP" 2>/dev/null || true
	tmo 60 mkdir "$MNT/$SNAP" || fail "mkdir $SNAP under load failed"
	[ "$KILL" != pwr ] || dirsync "$MNT" || fail "fsync of the branch root after mkdir $SNAP failed"
	sleep "$SNAPWAIT"

	BDPID=${IT_MNTPID[$MNT]}
	PMPID=${IT_PGPID[$PGD]}
	case $KILL in
	bd) kill -KILL "$BDPID" ;;
	pg) pg_kill9 "$PGD" ;;
	both | pwr)
		kids=$(pgrep -P "$PMPID" || true)
		# shellcheck disable=SC2086
		kill -KILL "$BDPID" "$PMPID" $kids
		;;
	esac
	log "killed ($KILL)"
	stop_load

	# ---- recover ----
	t0=$(date +%s)
	chk=-
	if [ "$KILL" != pg ]; then
		pg_kill9 "$PGD" # Postgres cannot outlive its file system
		_it_wait_gone "$BDPID" 20 || fail "branchd $BDPID survived kill -9"
		tmo 30 fusermount3 -uz "$MNT" || fail "fusermount3 -uz $MNT failed after the crash"
		! mountpoint -q "$MNT" || fail "$MNT still a mount point after fusermount3 -uz"
		[ "$KILL" != pwr ] || power_cut crash
		if ((CHECK_EVERY > 0)) && (((NCHECK++) % CHECK_EVERY == 0)); then
			crc=0
			tmo 600 "$BRANCHD" --check "$STORE" >"$T/log/check-r$R.out" 2>&1 || crc=$?
			if [ $crc -ne 0 ]; then
				chk=BAD
				TOT_CHECKBAD=$((TOT_CHECKBAD + 1))
				problem "branchd --check after the crash exited $crc: $(tail -n 5 "$T/log/check-r$R.out")"
			else
				chk=ok
			fi
		fi
		crash_mount
		if [ $REC = 1 ]; then
			# a second crash while Postgres replays its WAL
			(cd "$T" && $AS_PG "$PGBIN/pg_ctl" -W -D "$PGD" -l "$T/log/pg-rec-r$R.log" \
				-o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1" start >/dev/null 2>&1) ||
				fail "pg_ctl start (no wait) for the recovery crash failed"
			n=$((1 + RANDOM % 15)) # 0.1-1.5 s: before, during or after redo
			sleep "$((n / 10)).$((n % 10))"
			pm=""
			for ((n = 0; n < 50; n++)); do
				pm=$(pgrep -u postgres -xf "$PGBIN/postgres -D $PGD -p $PORT -k $SOCK -c listen_addresses=127.0.0.1" || true)
				[ -z "$pm" ] || break
				sleep 0.1
			done
			[ -n "$pm" ] || fail "no postmaster found for the recovery crash"
			IT_PGPID[$PGD]=$pm
			IT_PGDIRS+=("$PGD")
			IT_PGRUN[$PGD]=$AS_PG
			recst=$(grep -oE 'redo (starts|done)|ready to accept|checkpoint (starting|complete)' "$T/log/pg-rec-r$R.log" | tail -n 1 || true)
			BDPID=${IT_MNTPID[$MNT]}
			kill -KILL "$BDPID"
			log "killed branchd again during Postgres recovery (last recovery step logged: ${recst:-none yet})"
			pg_kill9 "$PGD"
			_it_wait_gone "$BDPID" 20 || fail "branchd $BDPID survived kill -9"
			tmo 30 fusermount3 -uz "$MNT" || fail "fusermount3 -uz $MNT failed after the recovery crash"
			[ "$KILL" != pwr ] || power_cut recovery
			crash_mount
		fi
	fi
	start_main
	trec=$(($(date +%s) - t0))

	if [ "${CRASH_SELFTEST:-0}" = 1 ]; then
		# prove the checks can fail: drop one acknowledged row, one
		# acknowledged file and break a balance, as a lost write would
		read -r sc si <"$ACKS/pg-r$R-c1"
		q "$PORT" "delete from acked where client = $sc and id = $si; update pgbench_branches set bbalance = bbalance + 1 where bid = 1" >/dev/null
		sf=$(awk '$1 == "I" && $2 == "U" {u[$3] = 1} $1 == "A" && $2 == "C" {c[$3] = 1}
			END {for (k in c) if (!(k in u)) {print k; exit}}' "$ACKS/fs-r$R")
		rm -f "$MNT/files/fsc/r$R/f$sf" "$MNT/files/fsc/r$R/g$sf"
		log "SELFTEST: deleted acked id $sc/$si and acked file $sf, broke bbalance"
	fi

	# ---- verify main ----
	cat "$ACKS"/pg-r*-c* >"$T/acked-all" 2>/dev/null || true
	nack=$(cat "$ACKS"/pg-r"$R"-c* 2>/dev/null | wc -l)
	lost=$(lost_ids "$PORT" "$T/acked-all")
	[ "$lost" -eq 0 ] || problem "$lost acknowledged ids missing from main after recovery (e.g. $(head -n 3 "$T/lost-r$R-$PORT" | tr '\n' ','))"
	[ "$nack" -gt 0 ] || problem "no transaction was acknowledged in this round (load did not run?)"
	am=0
	amcheck_count "$PORT" || am=1
	sums=ok
	sums_ok "$PORT" || { sums=BAD; TOT_SUMBAD=$((TOT_SUMBAD + 1)); }
	h1=$(q "$PORT" "select count(*) from pgbench_history")
	npgb=$((h1 - h0))

	# ---- verify the file workloads of every round so far, and static ----
	fsbad=0
	for ((r = 1; r <= R; r++)); do
		[ -f "$ACKS/fs-r$r" ] || continue
		if ! tmo 300 python3 "$CLIENTS" fsverify "$MNT/files/fsc/r$r" "$ACKS/fs-r$r" >"$T/log/fsverify-r$R-$r.out" 2>&1; then
			fsbad=$((fsbad + 1))
			# its problems, or the exception that stopped it
			problem "file workload of round $r: $(grep -v '^fsverify: [0-9]' "$T/log/fsverify-r$R-$r.out" | grep -v '^  ' | head -n 3 | tr '\n' ';')"
		fi
	done
	{ grep -h '^fsverify note' "$T"/log/fsverify-r"$R"-*.out 2>/dev/null || true; } | while IFS= read -r l; do log "$l"; done
	nfs=$(grep -c '^A ' "$ACKS/fs-r$R" 2>/dev/null || true)
	ssum=$(tree_sum "$MNT/static")
	if [ "$ssum" != "$STATIC_SUM" ]; then
		TOT_STATICBAD=$((TOT_STATICBAD + 1))
		problem "branch static changed: checksum $ssum, was $STATIC_SUM"
	fi

	# ---- the snapshot made just before the crash is a startable crash image ----
	snap=ok
	if [ ! -d "$MNT/$SNAP" ]; then
		snap=MISSING
		problem "snapshot branch $SNAP (mkdir returned before the crash) is gone"
	else
		if [ -e "$MNT/$SNAP/postmaster.pid" ]; then
			# DESIGN rule 2: a new branch never carries postmaster.pid
			# (ls: does readdir show it, or only lookup?)
			snap=PIDF
			# shellcheck disable=SC2010
			problem "snapshot branch $SNAP carries postmaster.pid ($(stat -c 'nlink %h, %s bytes' "$MNT/$SNAP/postmaster.pid"); readdir shows it: $(ls "$MNT/$SNAP" | grep -c '^postmaster.pid$' || true))"
			rm -f "$MNT/$SNAP/postmaster.pid" || true
		fi
		pg_start "$MNT/$SNAP" "$PORT2"
		slost=$(lost_ids "$PORT2" "$T/acked-before-$SNAP")
		[ "$slost" -eq 0 ] || { snap=BAD; problem "$slost ids acknowledged before mkdir $SNAP are missing in it"; }
		amcheck_count "$PORT2" || { snap=BAD; am=$((am + 1)); }
		sums_ok "$PORT2" || snap=BAD
		pg_stop "$MNT/$SNAP"
		for ((n = 0; n < 100; n++)); do
			[ "$(try_op rmdir "$MNT/$SNAP")" = EBUSY ] || break
			sleep 0.1
		done
		[ ! -e "$MNT/$SNAP" ] || problem "could not rmdir $SNAP: $(try_op rmdir "$MNT/$SNAP")"
	fi
	case $snap in
	ok) ;;
	PIDF) TOT_SNAPPID=$((TOT_SNAPPID + 1)) ;;
	*) TOT_SNAPBAD=$((TOT_SNAPBAD + 1)) ;;
	esac

	# ---- branch churn leftovers: readable crash images, then delete ----
	nchurn=0
	if [ -f "$ACKS/churn-$R" ]; then
		nchurn=$(grep -c '^C ' "$ACKS/churn-$R" || true)
		TOT_CHURN=$((TOT_CHURN + nchurn))
		# acknowledged (fsynced) creations and deletions of branches survive
		while read -r op b; do
			case $op in
			C) grep -qx "I $b" "$ACKS/churn-$R" || [ -d "$MNT/$b" ] ||
				problem "branch $b (mkdir + fsync of the root acknowledged, never deleted) is gone after the crash" ;;
			D) [ ! -e "$MNT/$b" ] || problem "branch $b (rmdir + fsync of the root acknowledged) is back after the crash" ;;
			esac
		done <"$ACKS/churn-$R"
	fi
	# children (cchurn-*, made from churn-* branches) before their parents
	for b in "$MNT"/cchurn-* "$MNT"/churn-*; do
		[ -d "$b" ] || continue
		[ -f "$b/PG_VERSION" ] || problem "leftover churn branch ${b##*/} has no PG_VERSION"
		got=$(try_op rmdir "$b")
		[ "$got" = OK ] || problem "rmdir of leftover churn branch ${b##*/}: $got"
	done
	bl=$(tmo 60 "$IT_ROOT/bin/branchctl" --mount "$MNT" list 2>&1) || problem "branchctl list failed: $bl"

	TOT_ACK=$((TOT_ACK + nack))
	TOT_LOST=$((TOT_LOST + lost))
	TOT_AMCHECK=$((TOT_AMCHECK + am))
	TOT_FSOPS=$((TOT_FSOPS + nfs))
	TOT_FSBAD=$((TOT_FSBAD + fsbad))
	TOT_PGB=$((TOT_PGB + npgb))
	ROWS+=("$(printf '%5s %-13s %6s %7s %7s %6s %5s %7s %5s %5s %5s %5s %6s' "$R" "$KIND" "$DELAY" "$nack" "$npgb" "$nfs" \
		"$lost" "$am" "$sums" "$fsbad" "$snap" "$chk" "${trec}s")")
	log "round $R: acked=$nack pgbench_tx=$npgb fs_ops=$nfs lost=$lost amcheck_fail=$am sums=$sums fs_bad=$fsbad snapshot=$snap check=$chk churn_branches=$nchurn recovery=${trec}s"
done

# ---- final: clean unmount, the store must check clean ----
pg_stop "$PGD"
bfs_umount
crc=0
tmo 600 "$BRANCHD" --check "$STORE" >"$T/log/check-final.out" 2>&1 || crc=$?
[ $crc -eq 0 ] || { TOT_CHECKBAD=$((TOT_CHECKBAD + 1)); R=final problem "branchd --check after the run exited $crc: $(tail -n 5 "$T/log/check-final.out")"; }
log "final branchd --check: $(tail -n 1 "$T/log/check-final.out")"

echo
echo "crash harness: seed $SEED, scale $SCALE, $NCLIENTS ack clients + pgbench -c 2"
printf '%5s %-13s %6s %7s %7s %6s %5s %7s %5s %5s %5s %5s %6s\n' round kind load_s acked pgb_tx fs_ops lost amcheck sums fsbad snap check recov
printf '%s\n' "${ROWS[@]}"
echo
echo "summary: rounds=$ROUNDS acknowledged_transactions=$TOT_ACK lost=$TOT_LOST amcheck_failures=$TOT_AMCHECK" \
	"pgbench_tx=$TOT_PGB sum_mismatches=$TOT_SUMBAD fs_acked_ops=$TOT_FSOPS fs_failures=$TOT_FSBAD" \
	"snapshot_failures=$TOT_SNAPBAD snapshot_with_postmaster.pid=$TOT_SNAPPID check_failures=$TOT_CHECKBAD static_changes=$TOT_STATICBAD churn_branches=$TOT_CHURN"
if [ ${#PROBLEMS[@]} -gt 0 ]; then
	printf 'PROBLEM: %s\n' "${PROBLEMS[@]}" >&2
	fail "${#PROBLEMS[@]} problems found"
fi
