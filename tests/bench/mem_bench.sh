#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# mem_bench.sh - branchd's memory after a Postgres load and after idle, for
# one or more builds or malloc settings side by side (run as root).
#
#   tests/bench/mem_bench.sh NAME=BRANCHD[,VAR=VALUE...] ...
#
# e.g. base=/tmp/old/bin/branchd arenas4=bin/branchd,MALLOC_ARENA_MAX=4
# (each VAR=VALUE goes into that daemon's environment).  Rounds take the
# variants in turn (A B C A B C ...), so that each sees the same drift of
# the machine's speed.  One run of a variant:
#   1. a fresh store mounted by that branchd (default options, so the
#      block cache is 256 MiB, and -o $MEM_BRANCHD_OPTS if set); branch
#      'main' gets a copy (cp -a) of a PGDATA made once at the start on
#      the temp dir's filesystem (initdb, pgbench -i -s $MEM_SCALE);
#   2. Postgres 15 on main (shared_buffers=128MB, fsync=on, autovacuum
#      off so that "idle" is idle) runs pgbench
#      read-write (-c 4 -j 2 -T $MEM_LOAD_S -n) while, every 15 s, a
#      branch of main is made (mkdir: branchd's pg_checkpoint policy runs
#      a CHECKPOINT first), the one before deleted (rmdir) and, every
#      other time, `branchctl gc` run;
#   3. figures "after load", as pgbench ends, and "after idle",
#      $MEM_IDLE_S s later with Postgres still up and idle (the kernel
#      writes the last dirty pages back up to ~35 s after the load):
#      branchd's resident set (VmRSS) and what malloc has handed out and
#      not had back (heap_bytes of `branchctl --json status`, glibc's
#      mallinfo2), and their difference, most of it freed memory malloc
#      keeps (the rest is code, libraries and thread stacks, ~20-30 MB);
#      the peak resident set (VmHWM) and pgbench's TPS.
# The summary gives each variant's medians.  Environment: MEM_ROUNDS (2),
# MEM_SCALE (10), MEM_LOAD_S (60), MEM_IDLE_S (60), MEM_TMPDIR (/var/tmp),
# MEM_BRANCHD_OPTS, BRANCHCTL (bin/branchctl of this tree).  Everything it
# starts (postmasters, mounts, daemons) and the temp dir are removed on
# exit, also on failure.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BRANCHCTL=${BRANCHCTL:-$ROOT/bin/branchctl}
PGBIN=/usr/lib/postgresql/15/bin
ROUNDS=${MEM_ROUNDS:-2}
SCALE=${MEM_SCALE:-10}
LOAD_S=${MEM_LOAD_S:-60}
IDLE_S=${MEM_IDLE_S:-60}
PORT=55491

log() { printf '[mem_bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "FAILED: $*"
	exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (mounts with allow_other, Postgres as postgres)"
[ $# -ge 1 ] || die "usage: $0 NAME=BRANCHD[,VAR=VALUE...] ..."
[ -x "$BRANCHCTL" ] || die "$BRANCHCTL not built (make all)"

declare -a NAMES
declare -A BIN ENVS
for a in "$@"; do
	name=${a%%=*}
	rest=${a#*=}
	IFS=, read -r -a parts <<<"$rest"
	BIN[$name]=${parts[0]}
	ENVS[$name]="${parts[*]:1}"
	[ -x "${BIN[$name]}" ] || die "$name: ${BIN[$name]} is not executable"
	NAMES+=("$name")
done

WORK=$(mktemp -d "${MEM_TMPDIR:-/var/tmp}/mem_bench.XXXXXX")
chmod 755 "$WORK"
mkdir "$WORK/log" "$WORK/sock"
chmod 1777 "$WORK/log"
chown postgres: "$WORK/sock"
MNT=$WORK/mnt
STORE=$WORK/store
PGDATA=$MNT/main
BD_PID=""
PG_UP=0
BG=()

cleanup() {
	local rc=$? p
	set +e
	trap - EXIT INT TERM
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
	[ "$PG_UP" = 1 ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1
	[ -f "$WORK/tmpl/postmaster.pid" ] &&
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/tmpl" -m immediate -w -t 30 stop >/dev/null 2>&1
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || { sleep 2; fusermount3 -u "$MNT" 2>/dev/null; } || fusermount3 -uz "$MNT"
	fi
	if [ -n "$BD_PID" ]; then
		for _ in $(seq 100); do kill -0 "$BD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$BD_PID" 2>/dev/null && kill "$BD_PID"
	fi
	rm -rf --one-file-system "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg() { runuser -u postgres -- "$@"; }
pgb() { timeout $((LOAD_S + 600)) runuser -u postgres -- "$PGBIN/pgbench" -h "$WORK/sock" -p "$PORT" -U postgres "$@" postgres; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
kb() { awk -v k="$2" '$1 == k ":" { print $2 }' "/proc/$1/status"; }
# "RSS_MiB HEAP_MiB" of the running daemon
mem_now() {
	local rss js heap
	rss=$(kb "$BD_PID" VmRSS)
	js=$(timeout 60 "$BRANCHCTL" --mount "$MNT" --json status) || die "branchctl status"
	heap=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get("heap_bytes", -1048576) >> 20)' "$js")
	echo "$((rss / 1024)) $heap"
}

# ---- the template PGDATA ----
install -d -o postgres -g postgres -m 700 "$WORK/tmpl"
as_pg "$PGBIN/initdb" -D "$WORK/tmpl" -A trust -U postgres >"$WORK/log/initdb.log" 2>&1 || die "initdb"
cat >>"$WORK/tmpl/postgresql.conf" <<EOF
shared_buffers = 128MB
max_wal_size = 1GB
fsync = on
autovacuum = off
listen_addresses = ''
unix_socket_directories = '$WORK/sock'
EOF
as_pg "$PGBIN/pg_ctl" -D "$WORK/tmpl" -o "-p $PORT" -l "$WORK/log/tmpl.log" -w start >/dev/null || die "pg_ctl start (template)"
pgb -i -q -s "$SCALE" >"$WORK/log/init.log" 2>&1 || die "pgbench -i"
as_pg "$PGBIN/pg_ctl" -D "$WORK/tmpl" -m fast -w stop >/dev/null || die "pg_ctl stop (template)"
log "template: pgbench -i -s $SCALE, $(du -sm "$WORK/tmpl" | cut -f1) MB; variants: ${NAMES[*]}; $ROUNDS rounds, load $LOAD_S s, idle $IDLE_S s"

declare -A TPS RSS1 HEAP1 RSS2 HEAP2 HWM
one_run() { # name round
	local name=$1 r=$2 out tps i=0 m1 m2 hwm t0 pid
	local -a env
	read -r -a env <<<"${ENVS[$name]}"
	rm -rf "$STORE"
	mkdir -p "$MNT"
	setsid env "${env[@]}" "${BIN[$name]}" -f ${MEM_BRANCHD_OPTS:+-o "$MEM_BRANCHD_OPTS"} "$STORE" "$MNT" \
		</dev/null >"$WORK/log/branchd.$name.$r.log" 2>&1 &
	BD_PID=$!
	for _ in $(seq 300); do mountpoint -q "$MNT" && break; sleep 0.1; done
	mountpoint -q "$MNT" || die "$name: no mount (see $WORK/log/branchd.$name.$r.log)"
	mkdir "$PGDATA"
	cp -a "$WORK/tmpl/." "$PGDATA/"
	chown postgres: "$PGDATA"
	chmod 700 "$PGDATA"
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -o "-p $PORT" -l "$WORK/log/pg.$name.$r.log" -w start >/dev/null ||
		die "$name: pg_ctl start"
	PG_UP=1
	log "$name round $r: mounted (branchd $BD_PID, env: ${ENVS[$name]:-none}), before load: $(mem_now) (RSS, heap MiB)"
	out=$WORK/log/pgbench.$name.$r.out
	pgb -n -c 4 -j 2 -T "$LOAD_S" >"$out" 2>&1 &
	pid=$!
	BG=("$pid")
	t0=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		[ $((SECONDS - t0)) -ge 15 ] || continue
		kill -0 "$pid" 2>/dev/null || break
		t0=$SECONDS
		i=$((i + 1))
		mkdir "$MNT/b$i" || die "$name: mkdir b$i"
		[ "$i" -gt 1 ] && { rmdir "$MNT/b$((i - 1))" || die "$name: rmdir b$((i - 1))"; }
		[ $((i % 2)) = 0 ] && { timeout 300 "$BRANCHCTL" --mount "$MNT" gc >/dev/null || die "$name: branchctl gc"; }
	done
	wait "$pid" || die "$name: pgbench: $(tail -n 5 "$out")"
	BG=()
	tps=$(awk '/^tps = / { printf "%.0f", $3; exit }' "$out")
	[ -n "$tps" ] || die "$name: pgbench printed no tps: $(tail -n 5 "$out")"
	m1=$(mem_now)
	sleep "$IDLE_S"
	m2=$(mem_now)
	hwm=$(($(kb "$BD_PID" VmHWM) / 1024))
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 120 stop >/dev/null || die "$name: pg_ctl stop"
	PG_UP=0
	fusermount3 -u "$MNT" || die "$name: unmount"
	for _ in $(seq 600); do kill -0 "$BD_PID" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$BD_PID" 2>/dev/null && die "$name: branchd $BD_PID still up 60 s after unmount"
	BD_PID=""
	read -r a b <<<"$m1"
	read -r c d <<<"$m2"
	log "$name round $r: tps $tps, $i branches; after load RSS $a heap $b (held $((a - b))); after idle RSS $c heap $d (held $((c - d))); peak RSS $hwm MiB"
	grep -E 'gave .* back' "$WORK/log/branchd.$name.$r.log" | sed "s/^/[mem_bench]   /" >&2 || true
	TPS[$name]+=" $tps"
	RSS1[$name]+=" $a"
	HEAP1[$name]+=" $b"
	RSS2[$name]+=" $c"
	HEAP2[$name]+=" $d"
	HWM[$name]+=" $hwm"
}

for ((r = 1; r <= ROUNDS; r++)); do
	for n in "${NAMES[@]}"; do one_run "$n" "$r"; done
done

echo
echo "| variant | rw TPS (runs) | RSS after load | heap after load | RSS after idle | heap after idle | held after idle | peak RSS |"
echo "|---|---|---|---|---|---|---|---|"
for n in "${NAMES[@]}"; do
	# shellcheck disable=SC2086
	{
		r2=$(median ${RSS2[$n]})
		h2=$(median ${HEAP2[$n]})
		printf '| %s | %s (%s) | %s | %s | %s | %s | %s | %s |\n' "$n" "$(median ${TPS[$n]})" "${TPS[$n]# }" \
			"$(median ${RSS1[$n]})" "$(median ${HEAP1[$n]})" "$r2" "$h2" \
			"$(awk -v a="$r2" -v b="$h2" 'BEGIN { print a - b }')" "$(median ${HWM[$n]})"
	}
done
echo "(MiB, medians of $ROUNDS rounds; held = RSS - heap: freed memory malloc keeps, code, stacks)"
for n in "${NAMES[@]}"; do echo "$n: ${BIN[$n]} ${ENVS[$n]}"; done
