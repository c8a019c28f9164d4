#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# gc_bench.sh - space and GC figures of branchfs under real Postgres load.
# Run as root after `make all` (also run by `make bench`).  Reuses the
# integration harness (tests/integration/lib.sh): own temp dir, cleanup of
# every process and mount it starts, also on failure.
#
# Three parts, each printing RESULT lines:
#  1. compression: pgbench -i -s GCB_SCALE (default 50) into a fresh store;
#     the store's bytes on disk (after `branchctl gc`) beside `du` of the
#     same PGDATA copied to the local filesystem (ext4).  Target <= 0.35x.
#  2. GC impact: pgbench read-write TPS for GCB_TPS_S seconds (default 60)
#     without GC and with `branchctl gc` (GC + compaction when enough was
#     deleted, at most a tenth of the time) running in a loop, GCB_GC_GAP s
#     (default 0.1) apart, alternating A B A B; the drop of the two runs
#     with the loop against the two without.
#     Target < 10%.  (A GC now takes milliseconds, so a loop with no gap
#     measures mostly the cost of starting branchctl hundreds of times a
#     second: a loop of `branchctl status`, which does no GC, costs as
#     much.  GCB_GC_GAP=0 runs it back to back anyway.)  Then the
#     background GC (paced, no full compaction) every second against none,
#     runs A B A B in fresh mounts; the log shows the keys each background
#     run examined (the first run after a mount examines what built up
#     while no GC ran; it reads the whole store only on a store's first GC
#     or after a crash: a clean unmount saves GC's set of objects).
#  3. steady state: pgbench read-write on main for GCB_STEADY_S seconds
#     (default 600) with a GCB_RETENTION s window (default 60) and the
#     background GC every GCB_GC_INTERVAL s (default 30); the store's bytes
#     on disk and main's logical size sampled every GCB_SAMPLE_S s (15).
#     Targets: store < 2x logical size at every sample after the first
#     window, and no growth: the floor and the peak of the store's size in
#     the last third of the run within 10% of those of the middle third.
#
# Exit status: 0 if every part ran (whether or not a target was met: each
# RESULT line says MET or MISSED), nonzero if something failed.
# GCB_PARTS=1,2,3 selects parts; GCB_CLIENTS (4) sets pgbench -c.
source "$(dirname "$0")/../integration/lib.sh"
IT_NAME=gc_bench
it_init

SCALE=${GCB_SCALE:-50}
TPS_S=${GCB_TPS_S:-60}
STEADY_S=${GCB_STEADY_S:-600}
RETENTION=${GCB_RETENTION:-60}
GC_INTERVAL=${GCB_GC_INTERVAL:-30}
SAMPLE_S=${GCB_SAMPLE_S:-15}
CLIENTS=${GCB_CLIENTS:-4}
GC_GAP=${GCB_GC_GAP:-0.1}
PARTS=${GCB_PARTS:-1,2,3}
BRANCHCTL=${BRANCHCTL:-$IT_ROOT/bin/branchctl}
[ -x "$BRANCHCTL" ] || fail "$BRANCHCTL not built: run 'make all' first"

bctl() { tmo 600 "$BRANCHCTL" --mount "$MNT" "$@"; }
json_field() {
	python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
disk_bytes() { bctl --json status | json_field disk_bytes; }
# logical_bytes BRANCH (from `branchctl --json list`)
logical_bytes() {
	bctl --json list | python3 -c '
import json, sys
r = json.load(sys.stdin)
print([b for b in r["branches"] if b["name"] == sys.argv[1]][0]["logical_bytes"])' "$1"
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
part() { [[ ",$PARTS," == *",$1,"* ]]; }
result() { echo "RESULT $*" | tee -a "$T/results"; }

# tps PORT SECONDS LABEL: pgbench read-write, print its tps (excluding
# connection time) and log it
tps() {
	local out=$T/log/pgbench-$3.out v
	tmo $(($2 + 120)) "$PGBIN/pgbench" -h "$SOCK" -p "$1" -U postgres -n -c "$CLIENTS" -j 2 \
		-T "$2" postgres >"$out" 2>&1 || fail "pgbench ($3) failed: $(tail -n 10 "$out")"
	grep -q 'number of failed transactions: 0 ' "$out" || fail "pgbench ($3) had failed transactions"
	v=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out")
	[ -n "$v" ] || fail "no tps in pgbench ($3) output: $(tail -n 5 "$out")"
	echo "$v"
}

log "gc_bench: scale $SCALE, parts $PARTS, tps runs ${TPS_S}s, steady ${STEADY_S}s (retention ${RETENTION}s, gc every ${GC_INTERVAL}s)"
: >"$T/results"

bfs_mount "$STORE" "$MNT" "retention=$RETENTION,gc_interval=0"
mk_branch main
pg_initdb "$MNT/main"
free_port P
pg_start "$MNT/main" "$P"
t0=$(date +%s)
run_pgbench "$P" -i -s "$SCALE" -q
log "pgbench -i -s $SCALE took $(($(date +%s) - t0)) s"
q "$P" checkpoint >/dev/null

# ---- 1. compression ------------------------------------------------------------
if part 1; then
	pg_stop "$MNT/main"
	raw=$(disk_bytes)
	sleep $((RETENTION > 5 ? 5 : RETENTION))
	out=$(bctl gc)
	log "$out"
	store=$(disk_bytes)
	logical=$(logical_bytes main)
	mkdir "$T/ext4"
	fstype=$(findmnt -n -o FSTYPE -T "$T/ext4" || stat -f -c %T "$T/ext4")
	cp -a "$MNT/main" "$T/ext4/pgdata"
	sync
	du_b=$(du -s -B1 "$T/ext4/pgdata" | cut -f1)
	du_apparent=$(du -s -b "$T/ext4/pgdata" | cut -f1)
	rm -rf "$T/ext4/pgdata"
	ratio=$(awk -v a="$store" -v b="$du_b" 'BEGIN { printf "%.3f", a / b }')
	verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 0.35) ? "MET" : "MISSED" }')
	result "compression scale=$SCALE: store on disk $(mib "$store") (before gc $(mib "$raw")), du of the same PGDATA on $fstype $(mib "$du_b") (apparent $(mib "$du_apparent"), logical_bytes $(mib "$logical")): ratio ${ratio}x, target <= 0.35x: $verdict"
	pg_start "$MNT/main" "$P"
fi

# ---- 2. GC impact ----------------------------------------------------------------
if part 2; then
	tps "$P" 10 warmup >/dev/null
	# without and with the loop, A B A B, so that drift over the run
	# (the history table grows, the VM's page cache comes and goes)
	# falls on both sides alike
	ngc=0
	for run in A1 B1 A2 B2; do
		if [[ $run == A* ]]; then
			printf -v "loop_$run" '%s' "$(tps "$P" "$TPS_S" "loop-$run")"
			v=loop_$run
			log "tps without gc ($run): ${!v}"
			continue
		fi
		rm -f "$T/gc-loop.count"
		(
			n=0
			while :; do
				"$BRANCHCTL" --mount "$MNT" gc >>"$T/log/gc-loop.out" 2>&1 || exit 1
				n=$((n + 1))
				echo "$n" >"$T/gc-loop.count"
				sleep "$GC_GAP"
			done
		) &
		GCL=$!
		IT_BG+=("$GCL")
		printf -v "loop_$run" '%s' "$(tps "$P" "$TPS_S" "loop-$run")"
		kill -0 "$GCL" 2>/dev/null || fail "the gc loop died: $(tail -n 5 "$T/log/gc-loop.out")"
		kill "$GCL"
		wait "$GCL" 2>/dev/null || true
		n=$(cat "$T/gc-loop.count" 2>/dev/null || echo 0)
		ngc=$((ngc + n))
		v=loop_$run
		log "tps with gc looping ($run): ${!v} ($n runs; last: $(tail -n 1 "$T/log/gc-loop.out"))"
	done
	blog=$(ls -t "$T"/log/branchd-*.log | head -n 1)
	ncomp=$(grep -c 'gc: compaction took' "$blog" || true)
	ndefer=$(grep -c 'compaction deferred' "$blog" || true)
	drop=$(awk -v a="$loop_A1" -v b="$loop_A2" -v c="$loop_B1" -v d="$loop_B2" 'BEGIN { printf "%.1f", 100 * (1 - (c + d) / (a + b)) }')
	verdict=$(awk -v d="$drop" 'BEGIN { print (d < 10) ? "MET" : "MISSED" }')
	result "gc impact: pgbench -c $CLIENTS rw tps ${TPS_S}s, A B A B: without gc $loop_A1 / $loop_A2, with \`branchctl gc\` looping ($ngc runs, ${GC_GAP}s apart; $ncomp whole compactions, $ndefer deferred, in this mount) $loop_B1 / $loop_B2: drop ${drop}%, target < 10%: $verdict"

	# the background GC (paced, no full compaction) every second, against
	# the same mount without it: A B A B, each in a fresh mount (cold
	# caches alike), so that drift over time and remounts cancel out
	for run in A1 B1 A2 B2; do
		iv=0
		[[ $run == B* ]] && iv=1
		pg_stop "$MNT/main"
		bfs_umount
		bfs_mount "$STORE" "$MNT" "retention=$RETENTION,gc_interval=$iv"
		pg_start "$MNT/main" "$P"
		tps "$P" 10 "warmup-$run" >/dev/null
		printf -v "tps_$run" '%s' "$(tps "$P" "$TPS_S" "bg-$run")"
		blog=$(ls -t "$T"/log/branchd-*.log | head -n 1)
		nbg=$(grep -c 'gc: scanned' "$blog" || true)
		keys=$(awk '/gc: scanned/ { for (i = 1; i < NF; i++) if ($i == "scanned") { n++; s += $(i + 1); if (n == 1) f = $(i + 1) } }
			END { if (n) { m = 0; if (n >= 2) m = (s - f) / (n - 1); printf "keys examined: first run %d, mean of the others %.0f", f, m } }' "$blog")
		v=tps_$run
		log "run $run (gc_interval=$iv): tps ${!v}, $nbg background gc runs${keys:+; $keys}"
	done
	drop=$(awk -v a="$tps_A1" -v b="$tps_A2" -v c="$tps_B1" -v d="$tps_B2" 'BEGIN { printf "%.1f", 100 * (1 - (c + d) / (a + b)) }')
	verdict=$(awk -v d="$drop" 'BEGIN { print (d < 10) ? "MET" : "MISSED" }')
	result "gc impact: pgbench -c $CLIENTS rw tps ${TPS_S}s, fresh mount each: without gc $tps_A1 / $tps_A2, with the background gc every 1 s (paced, no full compaction) $tps_B1 / $tps_B2: drop ${drop}%, target < 10%: $verdict"
fi

# ---- 3. steady state ---------------------------------------------------------------
if part 3; then
	pg_stop "$MNT/main"
	bfs_umount
	bfs_mount "$STORE" "$MNT" "retention=$RETENTION,gc_interval=$GC_INTERVAL"
	pg_start "$MNT/main" "$P"
	"$PGBIN/pgbench" -h "$SOCK" -p "$P" -U postgres -n -c "$CLIENTS" -j 2 -T "$STEADY_S" \
		postgres >"$T/log/pgbench-steady.out" 2>&1 &
	PB=$!
	IT_BG+=("$PB")
	: >"$T/samples"
	start=$(date +%s)
	printf '%8s %12s %12s %7s\n' elapsed_s store_MiB logical_MiB ratio
	while kill -0 "$PB" 2>/dev/null; do
		sleep "$SAMPLE_S"
		kill -0 "$PB" 2>/dev/null || break
		d=$(disk_bytes)
		l=$(logical_bytes main)
		el=$(($(date +%s) - start))
		echo "$el $d $l" >>"$T/samples"
		awk -v e="$el" -v d="$d" -v l="$l" \
			'BEGIN { printf "%8d %12.1f %12.1f %7.2f\n", e, d / 1048576, l / 1048576, d / l }'
	done
	wait "$PB" || fail "steady-state pgbench failed: $(tail -n 10 "$T/log/pgbench-steady.out")"
	grep -q 'number of failed transactions: 0 ' "$T/log/pgbench-steady.out" ||
		fail "steady-state pgbench had failed transactions"
	stps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$T/log/pgbench-steady.out")
	# The store's size is a sawtooth (RocksDB compactions return space in
	# steps), so "stops growing" compares both the floor (lowest sample)
	# and the peak of the middle third with those of the last third.
	summary=$(awk -v w="$RETENTION" -v dur="$STEADY_S" '
		{ e[NR] = $1; d[NR] = $2; l[NR] = $3 }
		END {
			worst = 0; mmax = lmax = 0; mmin = lmin = -1
			for (i = 1; i <= NR; i++) {
				r = d[i] / l[i]
				if (e[i] > w && r > worst) worst = r
				if (e[i] <= dur / 3) continue
				if (e[i] <= 2 * dur / 3) {
					if (d[i] > mmax) mmax = d[i]
					if (mmin < 0 || d[i] < mmin) mmin = d[i]
				} else {
					if (d[i] > lmax) lmax = d[i]
					if (lmin < 0 || d[i] < lmin) lmin = d[i]
				}
			}
			fg = mmin > 0 ? 100 * (lmin / mmin - 1) : 0
			pg = mmax > 0 ? 100 * (lmax / mmax - 1) : 0
			M = 1048576
			printf "%.2f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f", worst, fg, pg, mmin / M, lmin / M, mmax / M, lmax / M, d[NR] / M, l[NR] / M, (NR ? 1 : 0)
		}' "$T/samples")
	read -r worst fgrowth pgrowth mmin lmin mmax lmax dlast llast _ <<<"$summary"
	v1=$(awk -v r="$worst" 'BEGIN { print (r < 2) ? "MET" : "MISSED" }')
	v2=$(awk -v f="$fgrowth" -v p="$pgrowth" 'BEGIN { print (f <= 10 && p <= 10) ? "MET" : (f <= 10 ? "floor MET, peak MISSED" : "MISSED") }')
	result "steady state ${STEADY_S}s pgbench -c $CLIENTS rw ($stps tps), retention ${RETENTION}s, background gc every ${GC_INTERVAL}s: store/logical at most ${worst}x after the first window (target < 2x: $v1); store floor/peak middle third ${mmin}/${mmax} MiB, last third ${lmin}/${lmax} MiB: growth ${fgrowth}%/${pgrowth}% (target <= 10%: $v2); at the end store ${dlast} MiB, logical ${llast} MiB"
	grep 'gc:' "$T"/log/branchd-*.log | tail -n 3 | sed 's/^/    /' || true
	q "$P" checkpoint >/dev/null
	amcheck "$P"
fi

pg_stop "$MNT/main"
bfs_umount
echo "=== gc_bench results"
cat "$T/results"
