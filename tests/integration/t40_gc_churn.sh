#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 240
# t40: branch churn gives its space back.  Load pgbench into `main`, stop
# it, GC, and record the store's bytes on disk.  Then, one after the other,
# CHURN_N branches of main each get a Postgres that runs CHURN_TX pgbench
# transactions and stops; then every branch is deleted, the retention
# window passes and `branchctl gc` runs: the store must be back within 10%
# of its size before the churn, and main must still read what it read.
# A deleted branch right after that GC's compaction gets its compaction
# deferred (JSON compacted / compaction_deferred).
# On the first branch, the control plane's accounting is checked too:
# written_bytes is 0 right after the fork and grows with the branch's own
# writes, logical_bytes is about its parent's.
#
# Reduced by default (scale 5, 20 branches, 200 tx each: ~2 min, for make
# check).  CHURN_FULL=1 runs the issue's full version (scale 20, 200
# branches, 1,000 tx each: about half an hour; run it directly, e.g.
# `CHURN_FULL=1 bash tests/integration/t40_gc_churn.sh`, since run.sh's
# timeout is sized for the reduced one).  CHURN_SCALE, CHURN_N, CHURN_TX
# override either.
source "$(dirname "$0")/lib.sh"
it_init

if [ "${CHURN_FULL:-0}" = 1 ]; then
	SCALE=${CHURN_SCALE:-20} N=${CHURN_N:-200} TX=${CHURN_TX:-1000}
else
	SCALE=${CHURN_SCALE:-5} N=${CHURN_N:-20} TX=${CHURN_TX:-200}
fi
RETENTION=2
BRANCHCTL=${BRANCHCTL:-$IT_ROOT/bin/branchctl}
[ -x "$BRANCHCTL" ] || fail "$BRANCHCTL not built: run 'make all' first"
command -v python3 >/dev/null || fail "python3 not found"
log "churn: scale $SCALE, $N branches, $TX transactions each, retention ${RETENTION}s"

bctl() { tmo 300 "$BRANCHCTL" --mount "$MNT" "$@"; }

# json_field FIELD: read one JSON object on stdin, print .FIELD
json_field() {
	python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

disk_bytes() { bctl --json status | json_field disk_bytes; }
# usage BRANCH FIELD: logical_bytes or written_bytes from `branchctl --json list`
usage() {
	bctl --json list | python3 -c '
import json, sys
r = json.load(sys.stdin)
print([b for b in r["branches"] if b["name"] == sys.argv[1]][0][sys.argv[2]])' "$1" "$2"
}

# forget a postmaster that pg_stop stopped: its pid may be reused later
pg_forget() { unset "IT_PGRUN[$1]" "IT_PGPID[$1]"; }

# gc_settled: wait out the retention window, then run a full GC; log its
# JSON reply, leave it in $GCJSON and the store's bytes on disk in $DISK
gc_settled() {
	sleep $((RETENTION + 1))
	GCJSON=$(bctl --json gc) || fail "branchctl gc failed: $GCJSON"
	log "gc: $GCJSON"
	DISK=$(disk_bytes)
}

# rmdir a branch, retrying for up to 5 s while it is EBUSY (FUSE delivers
# the release of the postmaster's last file asynchronously)
rmdir_eventually() {
	local n err
	for ((n = 0; n < 50; n++)); do
		err=$(tmo 60 rmdir "$1" 2>&1) && return 0
		[[ $err == *"busy"* ]] || fail "rmdir $1 failed: $err"
		sleep 0.1
	done
	fail "rmdir $1 still busy after 5 s: $err"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# background GC off: this test decides when GC runs
bfs_mount "$STORE" "$MNT" "retention=$RETENTION,gc_interval=0"
mk_branch main
pg_initdb "$MNT/main"
free_port P1
free_port P2
pg_start "$MNT/main" "$P1"
run_pgbench "$P1" -i -s "$SCALE" -q
q "$P1" 'vacuum analyze' >/dev/null
q "$P1" checkpoint >/dev/null
ACC=$(q "$P1" "select count(*) || '/' || sum(abalance) from pgbench_accounts")
HIST=$(q "$P1" 'select count(*) from pgbench_history')
pg_stop "$MNT/main"
pg_forget "$MNT/main"

gc_settled
BASE=$DISK
log "store on disk before the churn: $BASE bytes ($(mib "$BASE"))"

peak=0 t0=$(date +%s)
for ((i = 1; i <= N; i++)); do
	b=churn-$i
	tmo 60 mkdir "$MNT/$b" || fail "mkdir $MNT/$b failed"
	if ((i == 1)); then
		w=$(usage "$b" written_bytes)
		[ "$w" -eq 0 ] || fail "new branch $b reports $w bytes written since its fork"
	fi
	pg_start "$MNT/$b" "$P2" >/dev/null
	out=$T/log/pgbench-$b.out
	tmo 600 "$PGBIN/pgbench" -h "$SOCK" -p "$P2" -U postgres -n -c 2 -j 2 \
		-t $((TX / 2)) postgres >"$out" 2>&1 ||
		fail "pgbench on $b failed: $(tail -n 10 "$out")"
	got=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
	[ "$got" = $((TX / 2 * 2)) ] || fail "pgbench on $b processed '$got' transactions, expected $((TX / 2 * 2))"
	h=$(q "$P2" 'select count(*) from pgbench_history')
	[ "$h" -eq $((HIST + TX / 2 * 2)) ] || fail "$b has $h history rows, expected $((HIST + TX / 2 * 2))"
	pg_stop "$MNT/$b" >/dev/null
	pg_forget "$MNT/$b"
	if ((i == 1)); then
		# accounting: the branch's own writes, and its whole size
		w=$(usage "$b" written_bytes)
		l=$(usage "$b" logical_bytes)
		lm=$(usage main logical_bytes)
		log "accounting: $b logical $(mib "$l") written since fork $(mib "$w"); main logical $(mib "$lm")"
		((w > 0)) || fail "$b reports no bytes written since its fork after $TX transactions"
		((w < l)) || fail "$b reports $w bytes written since its fork, more than its logical size $l"
		((l * 4 >= lm * 3 && l * 4 <= lm * 5)) ||
			fail "$b's logical size $l is not within 25% of its parent's $lm"
	fi
	if ((i % 10 == 0 || i == N)); then
		d=$(disk_bytes)
		((d > peak)) && peak=$d
		log "$i/$N branches done ($(($(date +%s) - t0)) s), store $(mib "$d")"
	fi
done
log "churn took $(($(date +%s) - t0)) s; peak store size $(mib "$peak")"

t1=$(date +%s)
for ((i = 1; i <= N; i++)); do
	rmdir_eventually "$MNT/churn-$i"
done
log "deleted $N branches in $(($(date +%s) - t1)) s; store now $(mib "$(disk_bytes)")"
[ "$(ls "$MNT")" = main ] || fail "branches left after deleting them all: $(ls "$MNT" | tr '\n' ' ')"

gc_settled
AFTER=$DISK
pct=$(awk -v a="$AFTER" -v b="$BASE" 'BEGIN { printf "%.1f", 100 * a / b }')
log "RESULT churn scale=$SCALE branches=$N tx=$TX: before $BASE ($(mib "$BASE")), peak $peak ($(mib "$peak")), after gc $AFTER ($(mib "$AFTER")) = $pct% of before"
((AFTER * 10 <= BASE * 11)) ||
	fail "store is $AFTER bytes after churn + gc, more than 110% of the $BASE bytes before the churn"
# that GC compacted (branches were deleted, the last compaction was long
# ago); one more deleted branch right after it must not compact the whole
# store again (at least 1 s apart): it is deferred, and says so
[ "$(json_field compacted <<<"$GCJSON")" = True ] ||
	fail "gc after deleting $N branches did not compact: $GCJSON"
tmo 60 mkdir "$MNT/scratch" || fail "mkdir $MNT/scratch failed"
rmdir_eventually "$MNT/scratch"
out=$(bctl --json gc) || fail "branchctl gc failed: $out"
log "gc right after: $out"
[ "$(json_field compacted <<<"$out")" = False ] &&
	[ "$(json_field compaction_deferred <<<"$out")" = True ] ||
	fail "a compaction right after the last one was not deferred: $out"

# main is untouched by all of this
pg_start "$MNT/main" "$P1"
[ "$(q "$P1" "select count(*) || '/' || sum(abalance) from pgbench_accounts")" = "$ACC" ] ||
	fail "main's pgbench_accounts changed across the churn"
[ "$(q "$P1" 'select count(*) from pgbench_history')" = "$HIST" ] ||
	fail "main's pgbench_history changed across the churn"
amcheck "$P1"
pg_stop "$MNT/main"
bfs_umount
