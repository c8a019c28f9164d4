#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# pg_bench.sh - Postgres on branchfs, side by side with native ext4 and the
# usual ways of cloning a data directory, in one run.
#
# What it measures (PostgreSQL 15 from /usr/lib/postgresql/15/bin, run as
# the postgres user; shared_buffers=128MB, max_wal_size=1GB, fsync=on,
# every cluster on its own unix socket in the temp dir, no TCP):
#   1. pgbench -i -s $BENCH_SCALE, then read-write (-c 4 -j 2 -T $BENCH_T)
#      and select-only (-S, same clients, -T $BENCH_T/2) TPS, the median
#      of $BENCH_ROUNDS (3) runs of each, on
#        ext4            a plain PGDATA in the temp dir (ext4 here)
#        branchfs main   PGDATA = the root of branch 'main' of a fresh store
#        branchfs branch PGDATA = a branch made with mkdir from 'main'
#                        (right after main's pgbench -i, cluster stopped
#                        cleanly)
#        fuse-overlayfs  lowerdir = a cp -a of the ext4 PGDATA right after
#                        its pgbench -i, upper and work dirs in the temp
#                        dir: the FUSE peer
#      Each round runs rw and select-only on every cluster in turn (ext4,
#      ovl, branch, main; one cluster runs at a time, started for its turn
#      and stopped after it), so all four start from the same freshly
#      loaded dataset and see the same drift of the machine's speed.
#      Ratios are against ext4.  During each rw run one more connection
#      samples pg_stat_activity every 100 ms: the share of samples that
#      find the clients' backends on CPU, waiting for pgbench, in the WAL
#      flush, in data file I/O or on locks, per cluster; and the FUSE
#      daemon of each (branchd, fuse-overlayfs) is charged its CPU time
#      per rw transaction.
#   2. Time to clone the data directory at scale $BENCH_SCALE and
#      $BENCH_BIG_SCALE: `mkdir MNT/NAME` on branchfs (median of 5) beside
#      `cp -a` on ext4 (and cp -a + sync), `cp -a --reflink=always` on XFS
#      (loop file, mkfs.xfs -m reflink=1) and `btrfs subvolume snapshot` on
#      btrfs (loop file), each where the kernel and tools allow.  Peer
#      figures are the wall time of the command, process start included
#      (the spawn cost of /bin/true is printed for reference); branchfs is
#      shown both as the mkdir command and as mkdir(2) timed inside one
#      process, and the < 5 ms target is checked on the latter.  At the big scale
#      the ext4 cluster is re-initialised with pgbench -i and branchfs gets
#      the same PGDATA by cp -a into 'main' of a second store.
#   3. Time from `mkdir` of a branch of the running branchfs 'main' cluster
#      to pg_isready succeeding on a postmaster started on that branch
#      (crash recovery included; median of 3), once as it comes after the
#      pgbench runs, once right after a CHECKPOINT on main, and once while
#      main runs pgbench rw, 20 s after a CHECKPOINT (the load goes on for
#      20 s more while the branch recovers).  mkdir(2) includes
#      branchd's pg_checkpoint policy (a CHECKPOINT on main before the
#      snapshot); the idle and under-load rounds are also run with
#      `branchctl create --no-checkpoint`, the crash image without it.  The
#      WAL the branch replayed (from its "redo starts/done" log lines) is shown,
#      and one crash image is recovered both on branchfs and on a cp -a of
#      it on ext4, to tell WAL volume apart from branchfs speed.  Each
#      recovery is split into its phases from the postmaster's log: sync
#      (SyncDataDirectory), redo (WAL replay) and ckpt (end-of-recovery
#      checkpoint until ready).  The policy's share under load has a peer:
#      the same CHECKPOINT by psql on main and then on the ext4 cluster,
#      each under the same pgbench clients 20 s after a CHECKPOINT (median
#      of 3, with the buffers it wrote and the load's TPS: each load runs
#      at its own speed, so a faster cluster has more to write), and how
#      long after psql's start the checkpoint began (from the postmaster's
#      log: psql, its connection and the new backend's first transaction).
# A final markdown table gives the figures, ratios and targets:
#   rw TPS >= 0.85x ext4, select-only TPS >= 0.95x ext4, mkdir < 5 ms,
#   mkdir -> ready < 1 s.  Targets are informational: the exit status is
#   non-zero only when a step fails.
#
# Environment: BENCH_SCALE (50), BENCH_BIG_SCALE (200), BENCH_T (60),
# BENCH_ROUNDS (3),
# BENCH_QUICK=1 (scale 2, T=5, no big scale unless BENCH_BIG_SCALE is set:
# a smoke test of ~1 min),
# BENCH_TMPDIR (parent of the temp dir, default /tmp), BRANCHD_OPTS (extra
# -o options for branchd, comma separated), BENCH_URING=1 (also run 'main'
# over FUSE over io_uring: branchd -o io_uring, with the fuse module's
# enable_uring turned on for that part and put back afterwards; needs Linux
# 6.14+).
#
# Everything it starts is undone by an EXIT/INT/TERM trap, also on failure:
# postmasters it started (pg_ctl stop, then the postmaster pid), mounts it
# made, branchd processes (by pid file), loop devices it attached, and the
# temp dir.  It never touches the Debian default cluster.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BRANCHD=${BRANCHD:-$ROOT/bin/branchd}
PGBIN=/usr/lib/postgresql/15/bin
SCALE=${BENCH_SCALE:-50}
BIG_SCALE=${BENCH_BIG_SCALE:-200}
T=${BENCH_T:-60}
ROUNDS=${BENCH_ROUNDS:-3}
QUICK=${BENCH_QUICK:-0}
URING=${BENCH_URING:-0}
URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_OLD=""
if [ "$QUICK" = 1 ]; then
	SCALE=2
	T=5
	ROUNDS=1
	BIG_SCALE=${BENCH_BIG_SCALE:-0} # only if asked for
fi
CLIENTS=4
T_RO=$(((T + 1) / 2))
THREADS=2
NMKDIR=5
NREADY=3
READY_LOAD_S=20
READY_TAIL_S=20
[ "$QUICK" = 1 ] && READY_LOAD_S=3 && READY_TAIL_S=5

log() { printf '[pg_bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "FAILED: $*"
	exit 1
}

# ---- state for cleanup ----
WORK=""
PG_DIRS=()   # data dirs of postmasters this script started
MOUNTS=()    # "fuse:DIR" or "kern:DIR", in mount order
BD_PIDFILES=()
LOOPS=()

cleanup() {
	local rc=$? i d kind dir pid
	set +e
	trap - EXIT INT TERM
	for ((i = ${#PG_DIRS[@]} - 1; i >= 0; i--)); do
		d=${PG_DIRS[i]}
		[ -f "$d/postmaster.pid" ] || continue
		pid=$(head -n1 "$d/postmaster.pid" 2>/dev/null)
		timeout 60 runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			log "cleanup: postmaster $pid on $d did not stop, killing it"
			kill -9 "$pid" 2>/dev/null
		fi
	done
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		kind=${MOUNTS[i]%%:*}
		dir=${MOUNTS[i]#*:}
		mountpoint -q "$dir" || continue
		if [ "$kind" = fuse ]; then
			fusermount3 -u "$dir" 2>/dev/null || { sleep 1; fusermount3 -u "$dir" 2>/dev/null; } ||
				fusermount3 -uz "$dir"
		else
			umount "$dir" 2>/dev/null || { sleep 1; umount "$dir" 2>/dev/null; } || umount -l "$dir"
		fi
	done
	for d in "${BD_PIDFILES[@]}"; do
		[ -f "$d" ] || continue
		pid=$(cat "$d" 2>/dev/null)
		[ -n "$pid" ] || continue
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			log "cleanup: branchd $pid still running after unmount, sending TERM"
			kill "$pid" 2>/dev/null
			sleep 2
			kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
		fi
	done
	for d in "${LOOPS[@]}"; do losetup -d "$d" 2>/dev/null; done
	[ -n "$URING_OLD" ] && echo "$URING_OLD" >"$URING_PARAM"
	[ -n "$WORK" ] && [ -d "$WORK" ] && rm -rf --one-file-system "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers ----
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
# ms with 2 decimals from a microsecond count
us2ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf "%.2f", a / b; else print "n/a" }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a >= b) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a != "" && a < b) }'; }
pm() { if "$@"; then echo PASS; else echo MISS; fi; }
as_pg() { runuser -u postgres -- "$@"; }

# Time one command; prints microseconds.  Output of the command goes to
# stderr so that it cannot mix with the figure.
time_us() {
	local t0 t1
	t0=$(now_us)
	"$@" >&2 || return $?
	t1=$(now_us)
	echo $((t1 - t0))
}

# mkdir(2) alone, timed inside one perl process (no process start):
# prints microseconds.
mkdir_syscall_us() { # path
	perl -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -e \
		'my $t = clock_gettime(CLOCK_MONOTONIC); mkdir($ARGV[0]) or die "mkdir $ARGV[0]: $!\n";
		 printf "%d\n", (clock_gettime(CLOCK_MONOTONIC) - $t) * 1e6' "$1"
}
quiet() { "$@" >/dev/null; }

PORT=55431
next_port() { PORT=$((PORT + 1)); }

pg_init() { # dir
	local d=$1
	[ -d "$d" ] || install -d -o postgres -g postgres -m 700 "$d"
	chown postgres:postgres "$d"
	chmod 700 "$d"
	as_pg "$PGBIN/initdb" -D "$d" -A trust -U postgres >"$WORK/log/initdb.$(basename "$d").log" 2>&1 ||
		die "initdb in $d (see log above)"
	cat >>"$d/postgresql.conf" <<EOF
# pg_bench.sh
shared_buffers = 128MB
max_wal_size = 1GB
fsync = on
listen_addresses = ''
unix_socket_directories = '$SOCK'
EOF
}

# Start a postmaster on dir at port $PORT; -w: wait until it accepts.
pg_start() { # dir [nowait]
	local d=$1 w=-w
	[ "${2:-}" = nowait ] && w=-W
	PG_DIRS+=("$d")
	as_pg "$PGBIN/pg_ctl" -D "$d" -o "-p $PORT" -l "$WORK/log/pg.$(basename "$d").$PORT.log" $w -t 600 start \
		>/dev/null || { tail -n 20 "$WORK/log/pg.$(basename "$d").$PORT.log" >&2 || true; die "pg_ctl start on $d"; }
}

pg_stop() { # dir
	as_pg "$PGBIN/pg_ctl" -D "$1" -m fast -w -t 300 stop >/dev/null || die "pg_ctl stop on $1"
}

pgb() { # pgbench args...
	timeout $((T * 3 + 3600)) runuser -u postgres -- pgbench -h "$SOCK" -p "$PORT" -U postgres "$@" postgres
}

# pgbench -i, then rw and select-only; sets TPS_RW[$key], TPS_RO[$key]
declare -A TPS_RW TPS_RO INIT_S
pg_load() { # key scale
	local t0
	t0=$(now_us)
	pgb -i -q -s "$2" >"$WORK/log/init.$1.log" 2>&1 || { tail "$WORK/log/init.$1.log" >&2 || true; die "pgbench -i ($1)"; }
	INIT_S[$1]=$(awk -v u=$(($(now_us) - t0)) 'BEGIN { printf "%.1f", u / 1e6 }')
	log "$1: pgbench -i -s $2 took ${INIT_S[$1]} s"
}
# One round on the cluster of key (started here at PGPORT[key], stopped
# after): read-write -T T, then select-only -T T/2, as in
# shared/BASELINES.md.  The figures are appended to RW_RUNS[key] and
# RO_RUNS[key]; pg_tps takes their medians.
declare -A PGDIR PGPORT RW_RUNS RO_RUNS
# tps of one pgbench run from its output; dies when there is none (a
# blank figure would drop out of the median unnoticed).
tps_of() { # key what output
	local v
	v=$(echo "$3" | awk '/^tps = / { printf "%.0f", $3; exit }')
	[ -n "$v" ] || { echo "$3" >&2; die "pgbench $2 ($1) printed no tps line"; }
	echo "$v"
}
# Where the read-write clients' backends spend their time: one more
# connection samples pg_stat_activity every 100 ms while pgbench rw runs,
# each sample a transaction of its own (no snapshot held back), and the
# samples of every round add up in WAITC[key,class] (classes: waits_class).
# A query that fails ends psql with an error (ON_ERROR_STOP), and the run
# with it: its message would otherwise be counted as a sample.
# The FUSE daemon serving a cluster (DAEMON_PID[key]: branchd, or
# fuse-overlayfs) is charged its CPU time (all threads, user and system)
# per rw transaction, in CPU_RUNS[key]; during select-only, its share of
# one CPU, in CPU_RO_RUNS[key] (in %: what it still does then for the rw
# run's writeback and checkpoint, taken from the 2 CPUs the clients and
# their backends need).
declare -A WAITC DAEMON_PID CPU_RUNS CPU_RO_RUNS
CLK_TCK=$(getconf CLK_TCK)
WAIT_CLASSES="cpu client wal data lock other"
waits_class() { # < "event" lines > "class count" lines
	awk '{ c = "other" }
	     $0 == "CPU" { c = "cpu" }
	     $0 == "Client:ClientRead" { c = "client" }
	     $0 ~ /^(LWLock:WALWrite|IO:WAL(Write|Sync|InitWrite|InitSync))$/ { c = "wal" }
	     $0 ~ /^IO:DataFile/ { c = "data" }
	     $0 ~ /^(Lock:|LWLock:)/ && c == "other" { c = "lock" }
	     { n[c]++ } END { for (c in n) print c, n[c] }'
}
waits_start() { # samples file
	(
		end=$(($(date +%s) + T - 1))
		while [ "$(date +%s)" -lt "$end" ]; do
			echo "select coalesce(wait_event_type || ':' || wait_event, 'CPU') from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid();"
			sleep 0.1
		done
	) | as_pg psql -X -A -t -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres postgres >"$1" 2>&1 &
	WAITS_PID=$!
}
waits_end() { # key samples file
	local c n
	wait "$WAITS_PID" || { tail -n 3 "$2" >&2 || true; die "the wait-event sampler on $1 failed"; }
	while read -r c n; do
		WAITC[$1,$c]=$((${WAITC[$1,$c]:-0} + n))
	done < <(waits_class <"$2")
}
daemon_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
pg_round() { # key [keep]
	local out dpid=${DAEMON_PID[$1]:-} c0=0 ntx
	PORT=${PGPORT[$1]}
	pg_start "${PGDIR[$1]}"
	[ -z "$dpid" ] || c0=$(daemon_ticks "$dpid")
	waits_start "$WORK/log/waits.$1.log"
	out=$(pgb -c $CLIENTS -j $THREADS -T "$T" 2>&1) || { echo "$out" >&2; die "pgbench rw ($1)"; }
	waits_end "$1" "$WORK/log/waits.$1.log"
	RW_RUNS[$1]+=" $(tps_of "$1" rw "$out")"
	if [ -n "$dpid" ]; then
		ntx=$(echo "$out" | awk '/^number of transactions actually processed:/ { print $NF }')
		[ "${ntx:-0}" -gt 0 ] || die "pgbench rw ($1) printed no transaction count"
		CPU_RUNS[$1]+=" $((($(daemon_ticks "$dpid") - c0) * 1000000 / CLK_TCK / ntx))"
		c0=$(daemon_ticks "$dpid")
	fi
	out=$(pgb -S -c $CLIENTS -j $THREADS -T "$T_RO" 2>&1) || { echo "$out" >&2; die "pgbench -S ($1)"; }
	RO_RUNS[$1]+=" $(tps_of "$1" -S "$out")"
	[ -z "$dpid" ] || CPU_RO_RUNS[$1]+=" $((($(daemon_ticks "$dpid") - c0) * 100 / CLK_TCK / T_RO))"
	[ "${2:-}" = keep ] || pg_stop "${PGDIR[$1]}"
}
pg_tps() { # key
	# shellcheck disable=SC2086 # word splitting of the run lists wanted
	TPS_RW[$1]=$(median ${RW_RUNS[$1]})
	# shellcheck disable=SC2086
	TPS_RO[$1]=$(median ${RO_RUNS[$1]})
	log "$1: rw ${TPS_RW[$1]} tps (runs:${RW_RUNS[$1]}), select-only ${TPS_RO[$1]} tps (runs:${RO_RUNS[$1]})"
}
# ROUNDS rounds, each a round on every cluster of keys in turn: single
# runs on this 2-core machine vary by up to 2x from one to the next, and
# the machine's speed drifts over a run; interleaved, every cluster sees
# the same drift and the ratios do not depend on which ran first.  The
# last cluster is left running after its last round (PORT is its port).
pg_rounds() { # key...
	local r k keep
	for r in $(seq "$ROUNDS"); do
		for k in "$@"; do
			keep=""
			[ "$r" = "$ROUNDS" ] && [ "$k" = "${*: -1}" ] && keep=keep
			pg_round "$k" $keep
			log "round $r: $k rw ${RW_RUNS[$k]##* } tps, select-only ${RO_RUNS[$k]##* } tps"
		done
	done
	for k in "$@"; do pg_tps "$k"; done
}

# branchfs: start a daemon on store dir $1 mounted at $2
bfs_mount() { # store mnt
	local pidf="$WORK/branchd.$(basename "$1").pid" opts
	mkdir -p "$1" "$2"
	opts="pidfile=$pidf${BRANCHD_OPTS:+,$BRANCHD_OPTS}"
	BD_PIDFILES+=("$pidf")
	MOUNTS+=("fuse:$2")
	"$BRANCHD" -o "$opts" "$1" "$2" >"$WORK/log/branchd.$(basename "$1").log" 2>&1 ||
		{ cat "$WORK/log/branchd.$(basename "$1").log" >&2 || true; die "branchd $1 $2"; }
	mountpoint -q "$2" || die "branchd returned but $2 is not a mount point"
}

bfs_umount() { # store mnt
	local pidf="$WORK/branchd.$(basename "$1").pid" pid
	fusermount3 -u "$2" || die "fusermount3 -u $2"
	pid=$(cat "$pidf" 2>/dev/null || true)
	if [ -n "$pid" ]; then
		for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && die "branchd $pid did not exit after unmount"
	fi
	return 0
}

# A PGDATA at the root of a new branch: owned by postgres, mode 0700.
bfs_mkbranch() { # path -> prints microseconds of the mkdir
	local us
	us=$(time_us mkdir "$1") || die "mkdir $1"
	chown postgres:postgres "$1" || die "chown $1"
	chmod 700 "$1" || die "chmod $1"
	echo "$us"
}

# loop device + filesystem mounted at $WORK/<kind> (not in a subshell:
# LOOPS and MOUNTS must reach the cleanup trap)
loop_fs() { # kind(xfs|btrfs) size_gib
	local img="$WORK/$1.img" dir="$WORK/$1" dev
	truncate -s "${2}G" "$img"
	losetup -f --show "$img" >"$WORK/loopdev" || return 1
	dev=$(cat "$WORK/loopdev")
	LOOPS+=("$dev")
	if [ "$1" = xfs ]; then
		mkfs.xfs -q -f -m reflink=1 "$dev" >&2 || return 1
	else
		mkfs.btrfs -q -f "$dev" >/dev/null 2>&1 || return 1
	fi
	mkdir -p "$dir"
	MOUNTS+=("kern:$dir")
	mount "$dev" "$dir" || return 1
}

declare -A CLONE # CLONE[method,scale] = ms, or n/a
PEERS_OK_XFS=0
PEERS_OK_BTRFS=0
XFS_DIR=""
BTRFS_DIR=""

# Clone timings of the stopped ext4 PGDATA at scale $2.
clone_peers() { # src scale
	local src=$1 s=$2 us us2 i v
	# cp -a on ext4 (the data was just written: page cache warm)
	us=$(time_us cp -a "$src" "$WORK/ext4_copy")
	us2=$(time_us sync -f "$WORK/ext4_copy")
	CLONE[cp,$s]=$(us2ms "$us")
	CLONE[cpsync,$s]=$(us2ms $((us + us2)))
	rm -rf "$WORK/ext4_copy"
	log "scale $s: cp -a ${CLONE[cp,$s]} ms (+sync ${CLONE[cpsync,$s]} ms)"
	CLONE[reflink,$s]=n/a
	if [ $PEERS_OK_XFS = 1 ]; then
		rm -rf "$XFS_DIR/src" "$XFS_DIR"/copy*
		cp -a "$src" "$XFS_DIR/src" && sync -f "$XFS_DIR/src"
		v=()
		for i in 1 2 3; do
			us=$(time_us cp -a --reflink=always "$XFS_DIR/src" "$XFS_DIR/copy$i") || { v=(); break; }
			v+=("$us")
		done
		[ ${#v[@]} -gt 0 ] && CLONE[reflink,$s]=$(us2ms "$(median "${v[@]}")")
		rm -rf "$XFS_DIR/src" "$XFS_DIR"/copy*
		log "scale $s: cp --reflink on XFS ${CLONE[reflink,$s]} ms"
	fi
	CLONE[btrfs,$s]=n/a
	if [ $PEERS_OK_BTRFS = 1 ]; then
		btrfs subvolume create "$BTRFS_DIR/vol$s" >/dev/null
		cp -a "$src/." "$BTRFS_DIR/vol$s/" && sync -f "$BTRFS_DIR/vol$s"
		v=()
		for i in 1 2 3; do
			us=$(time_us quiet btrfs subvolume snapshot "$BTRFS_DIR/vol$s" "$BTRFS_DIR/snap$s.$i") || { v=(); break; }
			v+=("$us")
		done
		[ ${#v[@]} -gt 0 ] && CLONE[btrfs,$s]=$(us2ms "$(median "${v[@]}")")
		for i in 1 2 3; do btrfs subvolume delete "$BTRFS_DIR/snap$s.$i" >/dev/null 2>&1 || true; done
		btrfs subvolume delete "$BTRFS_DIR/vol$s" >/dev/null 2>&1 || true
		log "scale $s: btrfs subvolume snapshot ${CLONE[btrfs,$s]} ms"
	fi
}

# mkdir timing: NMKDIR branches of main on the mount at $1 (cluster
# stopped), as mkdir(2) inside one process and as the mkdir command.
mkdir_times() { # mnt scale
	local v=() c=() i us
	for i in $(seq $NMKDIR); do
		us=$(mkdir_syscall_us "$1/mk$2_$i") || die "mkdir $1/mk$2_$i"
		v+=("$us")
		us=$(time_us mkdir "$1/mc$2_$i") || die "mkdir $1/mc$2_$i"
		c+=("$us")
	done
	CLONE[mkdir,$2]=$(us2ms "$(median "${v[@]}")")
	CLONE[mkdirmax,$2]=$(us2ms "$(printf '%s\n' "${v[@]}" | sort -n | tail -n1)")
	CLONE[mkdircmd,$2]=$(us2ms "$(median "${c[@]}")")
	for i in $(seq $NMKDIR); do
		rmdir "$1/mk$2_$i" "$1/mc$2_$i" 2>/dev/null || log "note: rmdir of branches $1/m[kc]$2_$i failed"
	done
	log "scale $2: branchfs mkdir(2) median ${CLONE[mkdir,$2]} ms (max ${CLONE[mkdirmax,$2]} ms), mkdir command ${CLONE[mkdircmd,$2]} ms"
}

# ---- preflight ----
[ "$(id -u)" = 0 ] || die "must run as root (mounts, loop devices, runuser)"
[ -x "$BRANCHD" ] || die "$BRANCHD missing: run 'make all' first"
[ -x "$PGBIN/postgres" ] || die "PostgreSQL 15 not found in $PGBIN"
command -v pgbench >/dev/null || die "pgbench not found"
id postgres >/dev/null 2>&1 || die "no postgres user"
[ -c /dev/fuse ] || die "/dev/fuse missing"
command -v fusermount3 >/dev/null || die "fusermount3 missing (apt package fuse3)"
if ! command -v fuse-overlayfs >/dev/null; then
	log "installing fuse-overlayfs with apt-get"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q fuse-overlayfs >/dev/null || die "cannot install fuse-overlayfs"
fi

WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/pg_bench.XXXXXX")
chmod 755 "$WORK"
install -d -o postgres -g postgres -m 755 "$WORK/log"
SOCK=$WORK/sock
install -d -o postgres -g postgres -m 755 "$SOCK"
log "temp dir $WORK; scale $SCALE, big scale ${BIG_SCALE/#0/skipped}, T=$T s, quick=$QUICK"
FSTYPE=$(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK")
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
SPAWN_US=$(median "$(time_us true)" "$(time_us /bin/true)" "$(time_us /bin/true)" "$(time_us /bin/true)")

# Loop filesystems for the reflink and snapshot peers, where possible.
LOOP_GIB=$(((BIG_SCALE > SCALE ? BIG_SCALE : SCALE) * 40 / 1000 + 8))
if grep -qw xfs /proc/filesystems || modprobe xfs 2>/dev/null; then
	# xfs in the kernel; reflink support is checked by cp --reflink=always
	if ! command -v mkfs.xfs >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q xfsprogs >/dev/null 2>&1 || true
	fi
	if command -v mkfs.xfs >/dev/null && loop_fs xfs "$LOOP_GIB"; then
		PEERS_OK_XFS=1
		XFS_DIR=$WORK/xfs
	else
		log "no XFS reflink peer (mkfs.xfs or loop mount failed)"
	fi
fi
if grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null; then
	if ! command -v mkfs.btrfs >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q btrfs-progs >/dev/null 2>&1 || true
	fi
	if command -v mkfs.btrfs >/dev/null && loop_fs btrfs "$LOOP_GIB"; then
		PEERS_OK_BTRFS=1
		BTRFS_DIR=$WORK/btrfs
	else
		log "no btrfs snapshot peer (mkfs.btrfs or loop mount failed)"
	fi
fi

# ---- 1a. native ext4 ----
mkdir -p "$WORK/ext4"
EXT4=$WORK/ext4/pgdata
next_port
EXT4_PORT=$PORT
pg_init "$EXT4"
pg_start "$EXT4"
pg_load ext4 "$SCALE"
pg_stop "$EXT4"
PGDIR[ext4]=$EXT4
PGPORT[ext4]=$EXT4_PORT

# ---- 2a. clone peers at scale SCALE ----
clone_peers "$EXT4" "$SCALE"

# ---- 1b. fuse-overlayfs over a copy of the freshly loaded ext4 PGDATA ----
# (its own lower dir: ext4's runs below must not change what ovl's upper
# layer sits on)
OVL=$WORK/ovl
mkdir -p "$OVL/lower" "$OVL/upper" "$OVL/work" "$OVL/merged"
cp -a "$EXT4" "$OVL/lower/" || die "cp -a $EXT4 $OVL/lower"
MOUNTS+=("fuse:$OVL/merged")
fuse-overlayfs -o "lowerdir=$OVL/lower,upperdir=$OVL/upper,workdir=$OVL/work,allow_other" "$OVL/merged" \
	2>"$WORK/log/fuse-overlayfs.log" ||
	die "fuse-overlayfs mount"
OVLDATA=$OVL/merged/pgdata
DAEMON_PID[ovl]=$(pgrep -n -f -- "fuse-overlayfs .*$OVL/merged") || die "no fuse-overlayfs process for $OVL/merged"
next_port
PGDIR[ovl]=$OVLDATA
PGPORT[ovl]=$PORT

# ---- 1c. branchfs main ----
STORE=$WORK/store
MNT=$WORK/mnt
bfs_mount "$STORE" "$MNT"
DAEMON_PID[main]=$(cat "$WORK/branchd.$(basename "$STORE").pid")
DAEMON_PID[branch]=${DAEMON_PID[main]}
MAIN=$MNT/main
bfs_mkbranch "$MAIN" >/dev/null
runuser -u postgres -- test -w "$MAIN" ||
	die "postgres cannot write $MAIN (is the mount allow_other? try BRANCHD_OPTS=allow_other)"
next_port
MAIN_PORT=$PORT
pg_init "$MAIN"
pg_start "$MAIN"
pg_load main "$SCALE"
pg_stop "$MAIN"
PGDIR[main]=$MAIN
PGPORT[main]=$MAIN_PORT

# ---- 1d. branchfs branch of main, made of the freshly loaded dataset ----
BR=$MNT/branch
bfs_mkbranch "$BR" >/dev/null
next_port
PGDIR[branch]=$BR
PGPORT[branch]=$PORT

# ---- 1. TPS, the four clusters in turn, ROUNDS times ----
# Every cluster starts its first round from the same freshly loaded
# dataset (pgbench -i, then a clean stop): the branch holds none of it in
# its own versions and starts with a cold page cache, since its files are
# other inodes than main's.
# main goes last and stays up: the rounds of 3 below branch it as it
# comes from pgbench.
pg_rounds ext4 ovl branch main
fusermount3 -u "$OVL/merged" || die "fusermount3 -u $OVL/merged"
rm -rf --one-file-system "$OVL"

# ---- 3. mkdir -> pg_isready on a branch of the running cluster ----
# WAL replayed by the postmaster logged in $1 (crash recovery), in MB.
redo_mb() { # logfile
	local a b
	a=$(sed -n 's/.*redo starts at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' "$1" | head -n1)
	b=$(sed -n 's/.*redo done at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' "$1" | head -n1)
	if [ -z "$a" ] || [ -z "$b" ]; then
		echo 0
		return
	fi
	awk -v d=$(((16#${b%/*} * 4294967296 + 16#${b#*/}) - (16#${a%/*} * 4294967296 + 16#${a#*/}))) \
		'BEGIN { printf "%.1f", d / 1e6 }'
}

# Where a recovery's time went, from the postmaster's log (timestamps with
# ms, log_line_prefix '%m'): "sync" from "was interrupted" to "automatic
# recovery in progress" (SyncDataDirectory: every file of PGDATA opened and
# fsynced), "redo" to "redo done" (WAL replay), "ckpt" to "ready to accept
# connections" (the end-of-recovery checkpoint writes and fsyncs what redo
# dirtied).  Prints e.g. "sync 0.41 s, redo 4.02 s, ckpt 1.10 s".
phases() { # logfile
	awk '
	function t(s, a) { split(s, a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
	/was interrupted/ && !a { a = t($2) }
	/automatic recovery in progress/ && !b { b = t($2) }
	/redo done at/ && !c { c = t($2) }
	/ready to accept connections/ && !d { d = t($2) }
	END {
		if (!a || !d) { print "phases n/a"; exit }
		if (!b) b = a
		if (!c) c = b
		printf "sync %.2f s, redo %.2f s, ckpt %.2f s", b - a, c - b, d - c
	}' "$1"
}

# NREADY rounds; sets READY_MS, READY_MAX_MS, MKDIR_RUNNING_MS, REDO_MB
# (median WAL replayed).  The branch is made by mkdir(2), so branchd's
# pg_checkpoint policy (on by default) checkpoints main inside it; with a
# third argument "nockpt" it is made by `branchctl create --no-checkpoint`
# instead (timed as a command), the crash image of before that policy.
# With "checkpoint", main runs CHECKPOINT first.
# With "busy", main runs CHECKPOINT, then pgbench rw (-c CLIENTS) for
# READY_LOAD_S seconds before the mkdir and READY_TAIL_S after it: the
# branch is made of a cluster under load and recovers while that load goes
# on, with a WAL volume that does not depend on when main last
# checkpointed by itself.
# The load of the "under load" rows: CHECKPOINT the cluster on port, then
# pgbench rw (-c CLIENTS) for READY_LOAD_S + READY_TAIL_S seconds into log,
# in the background; returns after READY_LOAD_S with LOAD_PID set.
load_start() { # port log
	as_pg psql -X -q -h "$SOCK" -p "$1" -U postgres -c CHECKPOINT postgres || die "CHECKPOINT on port $1"
	(PORT=$1 && pgb -c $CLIENTS -j $THREADS -T $((READY_LOAD_S + READY_TAIL_S))) >"$2" 2>&1 &
	LOAD_PID=$!
	sleep "$READY_LOAD_S"
}
load_tps() { awk '/^tps = / { printf "%.0f", $3; exit }' "$1"; }

ready_rounds() { # tag [checkpoint|busy|""] [nockpt]
	local tag=$1 i b us t0 t1 t2 ok n lg lp v=() m=() r=()
	for i in $(seq $NREADY); do
		b=$MNT/$tag$i
		lp=
		if [ "${2:-}" = checkpoint ]; then
			as_pg psql -X -q -h "$SOCK" -p "$MAIN_PORT" -U postgres -c CHECKPOINT postgres || die "CHECKPOINT on main"
		elif [ "${2:-}" = busy ]; then
			load_start "$MAIN_PORT" "$WORK/log/load.$tag$i.log"
			lp=$LOAD_PID
		fi
		next_port
		lg=$WORK/log/pg.$tag$i.$PORT.log
		t0=$(now_us)
		if [ "${3:-}" = nockpt ]; then
			"$ROOT/bin/branchctl" --mount "$MNT" create --no-checkpoint "$tag$i" >/dev/null ||
				die "branchctl create --no-checkpoint $tag$i"
			us=$(($(now_us) - t0))
		else
			us=$(mkdir_syscall_us "$b") || die "mkdir $b"
		fi
		t1=$(now_us)
		# a branch root should carry main's owner and mode over
		[ "$(stat -c %U:%a "$b")" = postgres:700 ] || { chown postgres:postgres "$b" && chmod 700 "$b"; }
		[ -e "$b/postmaster.pid" ] && die "branch $b carries postmaster.pid from its parent"
		pg_start "$b" nowait
		ok=0
		while [ $(($(now_us) - t0)) -lt 300000000 ]; do
			if "$PGBIN/pg_isready" -q -h "$SOCK" -p "$PORT"; then
				ok=1
				break
			fi
			sleep 0.01
		done
		t2=$(now_us)
		[ $ok = 1 ] || { tail -n 20 "$lg" >&2 || true; die "cluster on $b not ready after 300 s"; }
		v+=($((t2 - t0)))
		m+=("$us")
		r+=("$(redo_mb "$lg")")
		# the branch must hold main's data
		n=$(as_pg psql -X -A -t -h "$SOCK" -p "$PORT" -U postgres -c 'select count(*) from pgbench_branches' postgres) ||
			die "query on branch $b"
		[ "$n" = "$SCALE" ] || die "branch $b has $n pgbench_branches rows, expected $SCALE"
		pg_stop "$b"
		if [ -n "$lp" ]; then
			wait "$lp" || { tail -n 5 "$WORK/log/load.$tag$i.log" >&2 || true; die "pgbench on main during $tag$i"; }
			log "$tag$i: main ran $(load_tps "$WORK/log/load.$tag$i.log") tps meanwhile"
		fi
		log "mkdir -> ready on $b: $(us2ms $((t2 - t0))) ms, ${r[-1]} MB of WAL replayed ($(phases "$lg"); mkdir(2) $(us2ms "$us") ms, with perl start $(us2ms $((t1 - t0))) ms)"
	done
	READY_MS=$(us2ms "$(median "${v[@]}")")
	READY_MAX_MS=$(us2ms "$(printf '%s\n' "${v[@]}" | sort -n | tail -n1)")
	MKDIR_RUNNING_MS=$(us2ms "$(median "${m[@]}")")
	REDO_MB=$(median "${r[@]}")
}
# as it comes: main has just run pgbench; without the pg_checkpoint
# policy, the WAL since its last checkpoint is replayed on the branch
ready_rounds readyn "" nockpt
READY1N=("$READY_MS" "$READY_MAX_MS" "$MKDIR_RUNNING_MS" "$REDO_MB")
# The same crash image recovered on ext4 and on branchfs: tells WAL
# volume apart from branchfs speed.  A branch of running main (no
# CHECKPOINT since the rounds above), copied to ext4 with cp -a before any
# postmaster touches it; then start -> pg_isready on both.
# (not in a subshell: PORT and PG_DIRS must stay set)
replay_start() { # dir -> REPLAY_US: microseconds from pg_ctl start to ready
	local t0 ok=0
	next_port
	t0=$(now_us)
	pg_start "$1" nowait
	while [ $(($(now_us) - t0)) -lt 300000000 ]; do
		if "$PGBIN/pg_isready" -q -h "$SOCK" -p "$PORT"; then
			ok=1
			break
		fi
		sleep 0.01
	done
	[ $ok = 1 ] || die "replay on $1 not ready after 300 s"
	REPLAY_US=$(($(now_us) - t0))
}
RP=$MNT/replay
"$ROOT/bin/branchctl" --mount "$MNT" create --no-checkpoint replay >/dev/null || die "branchctl create replay"
[ "$(stat -c %U:%a "$RP")" = postgres:700 ] || { chown postgres:postgres "$RP" && chmod 700 "$RP"; }
cp -a "$RP" "$WORK/ext4/replay" || die "cp -a $RP to ext4"
replay_start "$WORK/ext4/replay"
REPLAY_EXT4_US=$REPLAY_US
REPLAY_MB=$(redo_mb "$WORK/log/pg.replay.$PORT.log")
REPLAY_EXT4_PH=$(phases "$WORK/log/pg.replay.$PORT.log")
pg_stop "$WORK/ext4/replay"
replay_start "$RP"
REPLAY_BFS_US=$REPLAY_US
REPLAY_BFS_PH=$(phases "$WORK/log/pg.replay.$PORT.log")
pg_stop "$RP"
rm -rf "$WORK/ext4/replay"
log "same crash image ($REPLAY_MB MB of WAL): ready in $(us2ms "$REPLAY_EXT4_US") ms on ext4 ($REPLAY_EXT4_PH), $(us2ms "$REPLAY_BFS_US") ms on branchfs ($REPLAY_BFS_PH)"
# the same with the pg_checkpoint policy: mkdir checkpoints main first
ready_rounds ready
READY1=("$READY_MS" "$READY_MAX_MS" "$MKDIR_RUNNING_MS" "$REDO_MB")
# what a CI recipe did before the policy: CHECKPOINT on the parent, then
# branch (mkdir's own checkpoint then has next to nothing to write)
ready_rounds readyck checkpoint
READY2=("$READY_MS" "$READY_MAX_MS" "$MKDIR_RUNNING_MS" "$REDO_MB")
# a branch of a cluster under load, a fixed time after its checkpoint:
# without the policy, then with it (mkdir)
ready_rounds readybusyn busy nockpt
READY3N=("$READY_MS" "$READY_MAX_MS" "$MKDIR_RUNNING_MS" "$REDO_MB")
ready_rounds readybusy busy
READY3=("$READY_MS" "$READY_MAX_MS" "$MKDIR_RUNNING_MS" "$REDO_MB")

# The peer of the policy's share under load: the same CHECKPOINT, by hand
# (psql, process start included), on a cluster under the same pgbench
# clients, on branchfs main and on ext4 (one cluster at a time).  The load
# runs at each one's own speed, so each round also reports its TPS and the
# buffers the checkpoint wrote (from the postmaster's log).
ckpt_lines() { grep -c 'checkpoint complete: wrote' "$1" || true; }
ckpt_busy_rounds() { # dir port pglog -> CKPT_BUSY_MS, _MAX_MS, _BUF, _TPS, _START_MS (medians)
	local i t0 lg n0 ts v=() w=() x=() y=()
	for i in $(seq $NREADY); do
		lg=$WORK/log/ckload.$i.$2.log
		load_start "$2" "$lg"
		n0=$(ckpt_lines "$3")
		t0=$(now_us)
		as_pg psql -X -q -h "$SOCK" -p "$2" -U postgres -c CHECKPOINT postgres || die "CHECKPOINT under load on $1"
		v+=($(($(now_us) - t0)))
		# The checkpointer logs its end before it answers the request,
		# so the last line is this CHECKPOINT's; read it now, before a
		# checkpoint of the load's own could follow it.
		[ "$(ckpt_lines "$3")" -gt "$n0" ] || die "no 'checkpoint complete' line for the CHECKPOINT under load on $1 ($3)"
		# The log's timestamp of "checkpoint starting" (log_line_prefix
		# '%m [%p] ', PostgreSQL's default): psql's start, its connection
		# and the new backend's first transaction come before it.
		ts=$(grep 'checkpoint starting: immediate force wait' "$3" | tail -n1 | awk '{ print $1 " " $2 " " $3 }')
		# (date -d "" would give midnight, not an error)
		[ -n "${ts// /}" ] && ts=$(date -d "$ts" +%s%6N) && [ "$ts" -ge "$t0" ] ||
			die "no time after psql's start on the last 'checkpoint starting' line of $3 (the CHECKPOINT under load on $1)"
		y+=($((ts - t0)))
		w+=("$(awk '/checkpoint complete: wrote/ { n = $0; sub(/.*wrote /, "", n); sub(/ .*/, "", n) } END { print n }' "$3")")
		wait "$LOAD_PID" || { tail -n 5 "$lg" >&2 || true; die "pgbench during the checkpoint rounds on $1"; }
		x+=("$(load_tps "$lg")")
		[ -n "${x[-1]}" ] || die "no tps line from the load on $1 ($lg)"
		log "CHECKPOINT under load on $1: $(us2ms "${v[-1]}") ms (began after $(us2ms "${y[-1]}") ms), ${w[-1]} buffers written, load ${x[-1]} tps"
	done
	CKPT_BUSY_MS=$(us2ms "$(median "${v[@]}")")
	CKPT_BUSY_MAX_MS=$(us2ms "$(printf '%s\n' "${v[@]}" | sort -n | tail -n1)")
	CKPT_BUSY_BUF=$(median "${w[@]}")
	CKPT_BUSY_TPS=$(median "${x[@]}")
	CKPT_BUSY_START_MS=$(us2ms "$(median "${y[@]}")")
}
ckpt_busy_rounds "$MAIN" "$MAIN_PORT" "$WORK/log/pg.$(basename "$MAIN").$MAIN_PORT.log"
CKPT_BUSY_BFS=("$CKPT_BUSY_MS" "$CKPT_BUSY_MAX_MS" "$CKPT_BUSY_BUF" "$CKPT_BUSY_TPS" "$CKPT_BUSY_START_MS")
PORT=$MAIN_PORT
pg_stop "$MAIN"
PORT=$EXT4_PORT
pg_start "$EXT4"
ckpt_busy_rounds "$EXT4" "$EXT4_PORT" "$WORK/log/pg.$(basename "$EXT4").$EXT4_PORT.log"
CKPT_BUSY_EXT4=("$CKPT_BUSY_MS" "$CKPT_BUSY_MAX_MS" "$CKPT_BUSY_BUF" "$CKPT_BUSY_TPS" "$CKPT_BUSY_START_MS")
PORT=$EXT4_PORT
pg_stop "$EXT4"

# ---- 2b. branchfs mkdir at scale SCALE ----
mkdir_times "$MNT" "$SCALE"

bfs_umount "$STORE" "$MNT"
STORE_MB=$(du -sm "$STORE" | cut -f1)

# ---- 1e. branchfs main over FUSE over io_uring (BENCH_URING=1) ----
# Last, on the same store, so that the rows above (main restarted here)
# are as without it.
if [ "$URING" = 1 ]; then
	[ -w "$URING_PARAM" ] || die "BENCH_URING=1: no writable $URING_PARAM (Linux 6.14+ and root needed)"
	URING_OLD=$(cat "$URING_PARAM")
	echo Y >"$URING_PARAM"
	saved_opts=${BRANCHD_OPTS:-}
	BRANCHD_OPTS=io_uring${saved_opts:+,$saved_opts}
	bfs_mount "$STORE" "$MNT"
	DAEMON_PID[ring]=$(cat "$WORK/branchd.$(basename "$STORE").pid")
	next_port
	PGDIR[ring]=$MAIN
	PGPORT[ring]=$PORT
	pg_rounds ring
	pg_stop "$MAIN"
	bfs_umount "$STORE" "$MNT"
	BRANCHD_OPTS=$saved_opts
	echo "$URING_OLD" >"$URING_PARAM"
	URING_OLD=""
fi

# ---- 2c. the big scale ----
if [ "$BIG_SCALE" -gt 0 ]; then
	PORT=$EXT4_PORT
	pg_start "$EXT4"
	pg_load ext4big "$BIG_SCALE"
	pg_stop "$EXT4"
	clone_peers "$EXT4" "$BIG_SCALE"
	STORE2=$WORK/store2
	MNT2=$WORK/mnt2
	bfs_mount "$STORE2" "$MNT2"
	bfs_mkbranch "$MNT2/main" >/dev/null
	t0=$(now_us)
	cp -a "$EXT4/." "$MNT2/main/" || die "cp -a into $MNT2/main"
	sync -f "$MNT2/main"
	log "scale $BIG_SCALE: cp -a into branchfs main took $(us2ms $(($(now_us) - t0))) ms"
	mkdir_times "$MNT2" "$BIG_SCALE"
	# the same after the store's background flushes and compactions of
	# the copy have had time to settle
	sleep 30
	mkdir_times "$MNT2" "${BIG_SCALE}idle"
	bfs_umount "$STORE2" "$MNT2"
fi

# ---- report ----
r_rw_main=$(ratio "${TPS_RW[main]}" "${TPS_RW[ext4]}")
r_rw_br=$(ratio "${TPS_RW[branch]}" "${TPS_RW[ext4]}")
r_rw_ovl=$(ratio "${TPS_RW[ovl]}" "${TPS_RW[ext4]}")
r_ro_main=$(ratio "${TPS_RO[main]}" "${TPS_RO[ext4]}")
r_ro_br=$(ratio "${TPS_RO[branch]}" "${TPS_RO[ext4]}")
r_ro_ovl=$(ratio "${TPS_RO[ovl]}" "${TPS_RO[ext4]}")
rw_ok=$(pm eval 'ge "$r_rw_main" 0.85 && ge "$r_rw_br" 0.85')
ro_ok=$(pm eval 'ge "$r_ro_main" 0.95 && ge "$r_ro_br" 0.95')

echo
echo "## pg_bench results ($( [ "$QUICK" = 1 ] && echo 'QUICK smoke run: figures not meaningful' || echo 'full run'))"
echo
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }'), shared_buffers=128MB, max_wal_size=1GB, fsync=on;"
echo "pgbench -c $CLIENTS -j $THREADS -T $T, scale $SCALE; temp dir on $FSTYPE; $(nproc) CPUs; kernel $(uname -r)."
echo "Load average (1 min): $LOAD_START at start, $(cut -d' ' -f1 /proc/loadavg) at end (other work on the machine skews every figure)."
echo "Command times include process start (/bin/true: $(us2ms "$SPAWN_US") ms); mkdir(2) is timed inside one process."
echo
echo "### TPS (ratio vs ext4)"
echo
echo "| workload | ext4 | branchfs main | branchfs branch | fuse-overlayfs | target | result |"
echo "|---|---|---|---|---|---|---|"
echo "| read-write | ${TPS_RW[ext4]} | ${TPS_RW[main]} (${r_rw_main}x) | ${TPS_RW[branch]} (${r_rw_br}x) | ${TPS_RW[ovl]} (${r_rw_ovl}x) | >= 0.85x | $rw_ok |"
echo "| select-only | ${TPS_RO[ext4]} | ${TPS_RO[main]} (${r_ro_main}x) | ${TPS_RO[branch]} (${r_ro_br}x) | ${TPS_RO[ovl]} (${r_ro_ovl}x) | >= 0.95x | $ro_ok |"
echo "| pgbench -i -s $SCALE (s) | ${INIT_S[ext4]} | ${INIT_S[main]} | - | - | | |"
echo
echo "Where the read-write clients' backends were, in % of samples of pg_stat_activity every 100 ms"
echo "over all rounds (on CPU; idle waiting for pgbench; the WAL flush: WALWrite lock, WAL write or"
echo "sync; data file I/O; other locks); and the FUSE daemon's CPU time (all threads) per rw transaction,"
echo "and during the select-only runs in % of one CPU:"
echo
echo "| cluster | on CPU | waiting for pgbench | WAL flush | data files | locks | other | samples | FUSE daemon CPU per transaction (us, median) | FUSE daemon CPU during select-only (%, median) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for k in ext4 main branch ovl $([ "$URING" = 1 ] && echo ring); do
	tot=0
	for c in $WAIT_CLASSES; do tot=$((tot + ${WAITC[$k,$c]:-0})); done
	row="| $k"
	for c in $WAIT_CLASSES; do row+=" | $(awk -v a="${WAITC[$k,$c]:-0}" -v t="$tot" 'BEGIN { if (t > 0) printf "%.0f%%", 100 * a / t; else print "n/a" }')"; done
	# shellcheck disable=SC2086 # word splitting of the run list wanted
	row+=" | $tot | $([ -n "${CPU_RUNS[$k]:-}" ] && median ${CPU_RUNS[$k]} || echo -)"
	# shellcheck disable=SC2086
	row+=" | $([ -n "${CPU_RO_RUNS[$k]:-}" ] && median ${CPU_RO_RUNS[$k]} || echo -) |"
	echo "$row"
done
if [ "$URING" = 1 ]; then
	echo
	echo "'main' again over FUSE over io_uring (branchd -o io_uring), same store, at the end of the run:"
	echo "read-write ${TPS_RW[ring]} tps ($(ratio "${TPS_RW[ring]}" "${TPS_RW[ext4]}")x ext4, $(ratio "${TPS_RW[ring]}" "${TPS_RW[main]}")x /dev/fuse),"
	echo "select-only ${TPS_RO[ring]} tps ($(ratio "${TPS_RO[ring]}" "${TPS_RO[ext4]}")x ext4, $(ratio "${TPS_RO[ring]}" "${TPS_RO[main]}")x /dev/fuse)."
fi
echo
echo "### Clone a stopped cluster's data directory (ms)"
echo
echo "| scale | branchfs mkdir(2) (median of $NMKDIR, max) | branchfs mkdir command | cp -a ext4 | cp -a + sync | cp --reflink XFS | btrfs snapshot | target (mkdir(2)) | result |"
echo "|---|---|---|---|---|---|---|---|---|"
for s in "$SCALE" $([ "$BIG_SCALE" -gt 0 ] && echo "$BIG_SCALE"); do
	echo "| $s | ${CLONE[mkdir,$s]} (${CLONE[mkdirmax,$s]}) | ${CLONE[mkdircmd,$s]} | ${CLONE[cp,$s]} | ${CLONE[cpsync,$s]} | ${CLONE[reflink,$s]} | ${CLONE[btrfs,$s]} | mkdir < 5 ms | $(pm lt "${CLONE[mkdir,$s]}" 5) |"
done
if [ "$BIG_SCALE" -gt 0 ]; then
	s=${BIG_SCALE}idle
	echo "| $BIG_SCALE, 30 s later | ${CLONE[mkdir,$s]} (${CLONE[mkdirmax,$s]}) | ${CLONE[mkdircmd,$s]} | | | | | mkdir < 5 ms | $(pm lt "${CLONE[mkdir,$s]}" 5) |"
	echo
	echo "At scale $BIG_SCALE branchfs is timed right after cp -a of the ext4 PGDATA into 'main' (+ sync), and again 30 s later."
fi
echo
echo "### Branch of a running cluster"
echo
echo "The branch is a crash image: the postmaster on it replays the WAL written since main's last"
echo "checkpoint before it is ready.  mkdir(2) runs branchd's pg_checkpoint policy (a CHECKPOINT on"
echo "main inside the mkdir, then the snapshot); 'branchctl create --no-checkpoint' branches without it"
echo "(its time is the command's, process start included).  'idle': main right after its pgbench runs;"
echo "'under load': main under pgbench rw since a CHECKPOINT ${READY_LOAD_S} s before, the load going on while the branch recovers."
echo
echo "| measure | median of $NREADY | max | branch op (ms, median) | WAL replayed (MB, median) | target | result |"
echo "|---|---|---|---|---|---|---|"
echo "| idle, create --no-checkpoint -> pg_isready (ms) | ${READY1N[0]} | ${READY1N[1]} | ${READY1N[2]} | ${READY1N[3]} | | |"
echo "| idle, mkdir -> pg_isready (ms) | ${READY1[0]} | ${READY1[1]} | ${READY1[2]} | ${READY1[3]} | < 1000 ms | $(pm lt "${READY1[0]}" 1000) |"
echo "| idle, CHECKPOINT by hand, then mkdir -> pg_isready (ms) | ${READY2[0]} | ${READY2[1]} | ${READY2[2]} | ${READY2[3]} | < 1000 ms | $(pm lt "${READY2[0]}" 1000) |"
echo "| under load, create --no-checkpoint -> pg_isready (ms) | ${READY3N[0]} | ${READY3N[1]} | ${READY3N[2]} | ${READY3N[3]} | | |"
echo "| under load, mkdir -> pg_isready (ms) | ${READY3[0]} | ${READY3[1]} | ${READY3[2]} | ${READY3[3]} | < 1000 ms | $(pm lt "${READY3[0]}" 1000) |"
echo
echo "The policy's share under load beside its peer: CHECKPOINT by psql (process start included) on a cluster"
echo "under the same pgbench clients, ${READY_LOAD_S} s after a checkpoint (medians of $NREADY; each load at its own speed):"
echo
echo "| cluster | CHECKPOINT (ms) | max | of which before it began (psql, connection, first transaction; ms) | buffers written | load (tps) |"
echo "|---|---|---|---|---|---|"
echo "| branchfs main | ${CKPT_BUSY_BFS[0]} | ${CKPT_BUSY_BFS[1]} | ${CKPT_BUSY_BFS[4]} | ${CKPT_BUSY_BFS[2]} | ${CKPT_BUSY_BFS[3]} |"
echo "| native ext4 | ${CKPT_BUSY_EXT4[0]} | ${CKPT_BUSY_EXT4[1]} | ${CKPT_BUSY_EXT4[4]} | ${CKPT_BUSY_EXT4[2]} | ${CKPT_BUSY_EXT4[3]} |"
echo
echo "Recovery of one crash image (a branch of running 'main', $REPLAY_MB MB of WAL to replay), pg_ctl start -> pg_isready:"
echo "on a cp -a of it on ext4 $(us2ms "$REPLAY_EXT4_US") ms, on the branchfs branch itself $(us2ms "$REPLAY_BFS_US") ms (branchfs speed / ext4 speed: $(ratio "$REPLAY_EXT4_US" "$REPLAY_BFS_US"))."
echo "Phases (from the postmaster's log): ext4 $REPLAY_EXT4_PH; branchfs $REPLAY_BFS_PH."
echo
echo "branchfs store size after the scale-$SCALE runs: ${STORE_MB} MiB"
[ "$BIG_SCALE" -gt 0 ] && echo "ext4 pgbench -i -s $BIG_SCALE: ${INIT_S[ext4big]} s"
exit 0
