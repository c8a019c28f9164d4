#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh - the branchfs demo, from a fresh Debian 12, as root:
#   install dependencies, build, mount a store, run Postgres 15 on branch
#   `main` (pgbench scale 10), branch it while it is under load, start a
#   second Postgres on the branch and show that the two are isolated.
#
# Usage: bash scripts/demo.sh          start (stops a previous run first)
#        bash scripts/demo.sh stop     stop both servers and unmount
#        bash scripts/demo.sh status
# (as root; from another user's shell, with sudo in front)
# Environment (defaults):
#   BFS_DEMO_DIR=/var/tmp/branchfs-demo  BFS_DEMO_STORE=$BFS_DEMO_DIR/store
#   BFS_DEMO_MNT=$BFS_DEMO_DIR/mnt  BFS_DEMO_PORT_MAIN=5433
#   BFS_DEMO_PORT_BRANCH=5434  BFS_DEMO_SCALE=10
# The store survives `stop`; rerunning the demo reuses it (main keeps its
# data, demo-branch is made afresh).  To start from nothing: stop, then
# rm -rf "$BFS_DEMO_DIR".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DIR=${BFS_DEMO_DIR:-/var/tmp/branchfs-demo}
STORE=${BFS_DEMO_STORE:-$DIR/store}
MNT=${BFS_DEMO_MNT:-$DIR/mnt}
P_MAIN=${BFS_DEMO_PORT_MAIN:-5433}
P_BR=${BFS_DEMO_PORT_BRANCH:-5434}
SCALE=${BFS_DEMO_SCALE:-10}
PGBIN=/usr/lib/postgresql/15/bin
RUN=$DIR/run
LOGS=$DIR/log
PIDF=$DIR/branchd.pid
AS_PG="setpriv --reuid=postgres --regid=postgres --init-groups"

# The stop command for this run: a demo started with BFS_DEMO_DIR,
# BFS_DEMO_STORE or BFS_DEMO_MNT is stopped only with the same settings
# (a plain `demo.sh stop` looks at the default mount and finds nothing).
STOP_CMD="bash $ROOT/scripts/demo.sh stop"
for v in BFS_DEMO_DIR BFS_DEMO_STORE BFS_DEMO_MNT; do
	[ -z "${!v:-}" ] || STOP_CMD="$v=$(printf '%q' "${!v}") $STOP_CMD"
done
# Printed for the root shell the demo runs in (it refuses other users):
# `sudo` is not there on a minimal Debian until install-deps adds it.
case $STOP_CMD in bash*) ;; *) STOP_CMD="env $STOP_CMD" ;; esac

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() {
	printf '\ndemo.sh: error: %s\n' "$*" >&2
	printf 'demo.sh: to clean up, run: %s\n' "$STOP_CMD" >&2
	exit 1
}
q() { # PORT SQL
	"$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$RUN" -p "$1" -U postgres -d postgres -c "$2"
}
pg_running() { # PGDATA
	local pid
	[ -f "$1/postmaster.pid" ] || return 1
	pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]
}
pg_start() { # PGDATA PORT
	(cd "$DIR" && $AS_PG "$PGBIN/pg_ctl" -D "$1" -l "$LOGS/$(basename "$1").log" -w -t 300 \
		-o "-p $2 -k $RUN -c listen_addresses=127.0.0.1" start >/dev/null) ||
		die "could not start Postgres on $1 (log: $LOGS/$(basename "$1").log): $(tail -n 5 "$LOGS/$(basename "$1").log")"
}
port_busy() { # PORT: true if something listens on 127.0.0.1:PORT
	! python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

do_stop() {
	local d pid n
	if ! mountpoint -q "$MNT" 2>/dev/null && [ ! -s "$PIDF" ]; then
		# Most likely a demo started with other BFS_DEMO_* settings.
		echo "nothing to stop: no demo is mounted at $MNT (a demo started with BFS_DEMO_DIR, BFS_DEMO_STORE or BFS_DEMO_MNT is stopped with the same settings: the command its start printed)"
		return 0
	fi
	if mountpoint -q "$MNT" 2>/dev/null; then
		for d in "$MNT"/*/; do
			d=${d%/}
			[ -d "$d" ] || continue
			if pg_running "$d"; then
				echo "stopping Postgres on $(basename "$d")"
				(cd "$DIR" && timeout 120 $AS_PG "$PGBIN/pg_ctl" -D "$d" stop -m fast -w >/dev/null) ||
					echo "warning: pg_ctl stop on $d failed" >&2
			fi
		done
		echo "unmounting $MNT"
		n=0
		until fusermount3 -u "$MNT" 2>/dev/null; do
			n=$((n + 1))
			[ $n -lt 20 ] || die "cannot unmount $MNT (still in use? see: fuser -vm $MNT)"
			sleep 0.5
		done
	fi
	if [ -s "$PIDF" ]; then
		# branchd removes its pid file as it exits: it may be gone already
		pid=$(tr -dc 0-9 <"$PIDF" 2>/dev/null || true)
		for ((n = 0; n < 100; n++)); do
			[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = branchd ]; then
			echo "branchd $pid did not exit after unmount; sending SIGTERM"
			kill -TERM "$pid" || true
		fi
		rm -f "$PIDF"
	fi
	echo "demo stopped (store kept in $STORE)"
}

do_status() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		echo "mounted: $MNT (branchd pid $(cat "$PIDF" 2>/dev/null || echo '?'))"
		for d in "$MNT"/*/; do
			d=${d%/}
			[ -d "$d" ] || continue
			if pg_running "$d"; then echo "  $(basename "$d"): postgres running (pid $(head -n 1 "$d/postmaster.pid"))"
			else echo "  $(basename "$d"): no server"; fi
		done
	else
		echo "not mounted ($MNT)"
	fi
}

do_start() {
	[ "$(id -u)" -eq 0 ] || die "run as root: sudo bash scripts/demo.sh"

	say "Installing dependencies"
	if ! command -v make >/dev/null || ! command -v cc >/dev/null; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq && apt-get install -y -qq --no-install-recommends build-essential >/dev/null ||
			die "apt-get install build-essential failed"
	fi
	bash scripts/install-deps.sh || die "installing dependencies failed"
	[ -c /dev/fuse ] || die "/dev/fuse is missing: FUSE is required"

	say "Building bin/branchd"
	mkdir -p "$DIR" "$LOGS"
	make -j"$(nproc)" all >"$LOGS/build.log" 2>&1 || { tail -n 30 "$LOGS/build.log" >&2; die "make all failed (full log: $LOGS/build.log)"; }
	echo "built $ROOT/bin/branchd"

	if mountpoint -q "$MNT" 2>/dev/null; then
		say "A previous demo is still running: stopping it first"
		do_stop
	fi
	for p in "$P_MAIN" "$P_BR"; do
		port_busy "$p" && die "port $p is in use; set BFS_DEMO_PORT_MAIN / BFS_DEMO_PORT_BRANCH"
	done

	say "Mounting the store $STORE at $MNT"
	mkdir -p "$DIR" "$MNT" "$RUN" "$LOGS"
	chmod 0755 "$DIR"
	# The postgres user must reach the mount: a directory above $DIR that
	# others cannot search (a mktemp -d is 0700) makes initdb fail later
	# with only "Permission denied".
	if ! $AS_PG test -x "$DIR"; then
		local up="" part parts
		# from / down: the first directory it cannot search is the one
		IFS=/ read -ra parts <<<"$(realpath "$DIR")"
		for part in "${parts[@]}"; do
			[ -n "$part" ] || continue
			up=$up/$part
			$AS_PG test -x "$up" && continue
			die "the postgres user cannot reach $DIR: $up ($(stat -c '%A, owner %U' "$up")) is not searchable by it; set BFS_DEMO_DIR to a directory it can reach (the default is /var/tmp/branchfs-demo), or run: chmod o+x $up"
		done
		die "the postgres user cannot reach $DIR"
	fi
	chown postgres: "$RUN" "$LOGS"
	"$ROOT/bin/branchd" -o "pidfile=$PIDF" "$STORE" "$MNT" || die "branchd failed to mount $MNT"
	mountpoint -q "$MNT" || die "branchd returned but $MNT is not mounted"
	echo "branchd running (pid $(cat "$PIDF")); branches: $(ls "$MNT" | tr '\n' ' ')"

	if [ ! -d "$MNT/main" ]; then
		mkdir "$MNT/main"
		chown postgres: "$MNT/main"
		chmod 0700 "$MNT/main"
	fi
	if [ ! -f "$MNT/main/PG_VERSION" ]; then
		say "initdb on branch main (owner postgres, trust auth on the local socket and 127.0.0.1)"
		(cd "$DIR" && $AS_PG "$PGBIN/initdb" -D "$MNT/main" -A trust -U postgres -E UTF8 --locale=C \
			>"$LOGS/initdb.log" 2>&1) || die "initdb failed: $(tail -n 10 "$LOGS/initdb.log")"
	fi

	say "Starting Postgres on main (port $P_MAIN)"
	pg_start "$MNT/main" "$P_MAIN"
	q "$P_MAIN" 'select version()'

	say "pgbench -i -s $SCALE on main"
	"$PGBIN/pgbench" -h "$RUN" -p "$P_MAIN" -U postgres -i -s "$SCALE" -q postgres 2>&1 | grep -v NOTICE ||
		die "pgbench -i failed"

	say "Branching main while pgbench writes to it"
	"$PGBIN/pgbench" -h "$RUN" -p "$P_MAIN" -U postgres -c 2 -j 2 -T 12 postgres >"$LOGS/pgbench-load.log" 2>&1 &
	local bg=$! t0 t1
	sleep 4
	if [ -d "$MNT/demo-branch" ]; then
		rmdir "$MNT/demo-branch" || die "cannot remove the old demo-branch"
	fi
	t0=$(date +%s%N)
	mkdir "$MNT/demo-branch"
	t1=$(date +%s%N)
	echo "mkdir $MNT/demo-branch took $(((t1 - t0) / 1000000)) ms (main: $(du -sh --apparent-size "$MNT/main" | cut -f1) of data, under load;"
	echo "  branchd first had main's server run a CHECKPOINT, so the branch has little WAL to replay)"
	[ ! -e "$MNT/demo-branch/postmaster.pid" ] && echo "demo-branch has no postmaster.pid: it can start while main runs"
	wait "$bg" || die "pgbench load on main failed: $(tail -n 5 "$LOGS/pgbench-load.log")"
	grep 'tps =' "$LOGS/pgbench-load.log" | sed 's/^/main under load: /'

	say "Starting Postgres on demo-branch (port $P_BR): crash recovery from the snapshot"
	t0=$(date +%s%N)
	pg_start "$MNT/demo-branch" "$P_BR"
	t1=$(date +%s%N)
	echo "demo-branch ready $(((t1 - t0) / 1000000)) ms after pg_ctl start"

	say "Isolation: change the branch, compare"
	q "$P_BR" "delete from pgbench_accounts where aid <= 1000"
	q "$P_BR" "create table branch_only(note text); insert into branch_only values ('only on demo-branch')"
	q "$P_MAIN" "update pgbench_branches set bbalance = bbalance + 1 where bid = 1"
	local am ab tm tb
	am=$(q "$P_MAIN" 'select count(*) from pgbench_accounts')
	ab=$(q "$P_BR" 'select count(*) from pgbench_accounts')
	tm=$(q "$P_MAIN" "select coalesce(to_regclass('branch_only')::text, '(none)')")
	tb=$(q "$P_BR" "select coalesce(to_regclass('branch_only')::text, '(none)')")
	printf '%-40s %14s %14s\n' "" main demo-branch
	printf '%-40s %14s %14s\n' "select count(*) from pgbench_accounts" "$am" "$ab"
	printf '%-40s %14s %14s\n' "table branch_only" "$tm" "$tb"
	printf '%-40s %14s %14s\n' "inode of the data directory" "$(stat -c %i "$MNT/main")" "$(stat -c %i "$MNT/demo-branch")"
	[ "$am" != "$ab" ] || die "main and demo-branch show the same count: isolation failed"

	say "Ready"
	cat <<EOT
  main         postgresql://postgres@127.0.0.1:$P_MAIN/postgres   (PGDATA $MNT/main)
  demo-branch  postgresql://postgres@127.0.0.1:$P_BR/postgres   (PGDATA $MNT/demo-branch)
  e.g.  psql "postgresql://postgres@127.0.0.1:$P_BR/postgres" -c 'select count(*) from pgbench_accounts'

  more branches:   mkdir $MNT/<name>      delete: rmdir $MNT/<name>   rename: mv
  stop everything and unmount:

      $STOP_CMD
EOT
}

case ${1:-start} in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
*) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
