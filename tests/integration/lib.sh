# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# lib.sh - shared helpers for the branchfs integration tests.
#
# Every test script sources this file, then calls it_init.  it_init makes a
# private temp dir, checks that FUSE, Postgres and bin/branchd are present
# (a missing one is a FAILURE, never a skip) and installs an EXIT trap that
# undoes everything the test started, in this order, also on failure or
# timeout:
#   background helpers (e.g. a pgbench) -> every postmaster it started
#   (pg_ctl stop -m immediate, then SIGQUIT/SIGKILL to the recorded pid)
#   -> every mount (fusermount3 -u, lazy -uz on failure) -> every branchd it
#   started (by pid) -> every tmpfs it mounted (it_mount_tmpfs) -> system
#   users it created -> kernel parameters it set (it_set_param) -> the temp
#   dir.
# Only pids recorded here are signalled, and only mounts made here are
# unmounted.
#
# Conventions: functions fail the test (exit 1 via fail) on error, so a test
# reads as a list of steps.  Commands that could hang are wrapped in `tmo`
# (timeout --foreground, so that run.sh's own timeout still reaches them).

set -Eeuo pipefail
umask 022

IT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BRANCHD=${BRANCHD:-$IT_ROOT/bin/branchd}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
IT_TMPBASE=${IT_TMPBASE:-/var/tmp}
IT_NAME=$(basename "$0" .sh)
export PATH="$PGBIN:$PATH"
export PGCONNECT_TIMEOUT=20
unset PGHOST PGPORT PGUSER PGDATABASE PGDATA PGPASSWORD PGSERVICE PGOPTIONS

T=""            # the test's temp dir
SOCK=""         # unix socket dir for every postmaster of this test
MNT=""          # mount point of the default store
STORE=""        # store dir of the default store
IT_BD_ENV=()    # NAME=VALUE pairs bfs_mount puts in branchd's environment
declare -a IT_BG=() IT_PGDIRS=() IT_MOUNTS=() IT_DAEMONS=() IT_USERS=() IT_GROUPS=() IT_PORTS=() IT_PARAMS=() IT_TMPFS=()
declare -A IT_PGPID=() IT_PGRUN=() IT_MNTPID=()

log() { printf '[%s %s] %s\n' "$IT_NAME" "$(date +%H:%M:%S)" "$*"; }
fail() {
	printf '[%s %s] FAIL: %s\n' "$IT_NAME" "$(date +%H:%M:%S)" "$*" >&2
	exit 1
}
_it_on_err() {
	printf '[%s] FAIL: command failed (rc=%s) at %s line %s: %s\n' \
		"$IT_NAME" "$1" "${BASH_SOURCE[1]##*/}" "$2" "$3" >&2
	exit 1
}
# timeout that stays in our process group (run.sh's timeout can kill it)
tmo() { timeout --foreground -k 10 "$@"; }

# ---- preflight -------------------------------------------------------------

it_require() {
	[ "$(id -u)" -eq 0 ] || fail "integration tests must run as root (they mount FUSE and create users)"
	[ -c /dev/fuse ] || fail "/dev/fuse is missing: FUSE is required (load the fuse module / run the container with --device /dev/fuse)"
	command -v fusermount3 >/dev/null || fail "fusermount3 not found: install the fuse3 package"
	local b
	for b in initdb pg_ctl postgres psql pgbench pg_amcheck; do
		[ -x "$PGBIN/$b" ] || fail "$PGBIN/$b not found: PostgreSQL 15 is required (apt-get install postgresql postgresql-contrib)"
	done
	id postgres >/dev/null 2>&1 || fail "no 'postgres' system user: install the postgresql package"
	[ -x /usr/bin/python3 ] || fail "/usr/bin/python3 not found (apt-get install python3)"
	command -v setpriv >/dev/null || fail "setpriv not found: install util-linux"
	[ -x "$BRANCHD" ] || fail "$BRANCHD not built: run 'make all' first"
}

it_init() {
	trap '_it_on_err $? $LINENO "$BASH_COMMAND"' ERR
	trap _it_cleanup EXIT
	trap 'log "caught signal, cleaning up"; exit 143' TERM INT HUP
	it_require
	T=$(mktemp -d "$IT_TMPBASE/bfs-it-$IT_NAME.XXXXXX")
	chmod 0755 "$T"
	mkdir -p "$T/log" "$T/sock"
	chmod 1777 "$T/log" "$T/sock"
	SOCK=$T/sock
	STORE=$T/store
	MNT=$T/mnt
	log "temp dir $T"
}

# ---- cleanup ----------------------------------------------------------------

# is M a mount point in /proc/mounts (works on a dead FUSE mount, where
# mountpoint(1) fails with ENOTCONN)
is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }

_it_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# wait up to $2 seconds for pid $1 to go away
_it_wait_gone() {
	local pid=$1 n=$(($2 * 10))
	while _it_alive "$pid" && [ $n -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	! _it_alive "$pid"
}

_it_pg_kill() { # pgdata
	local d=$1 pid=${IT_PGPID[$1]:-} run=${IT_PGRUN[$1]:-}
	if [ -n "$run" ] && { [ -z "$pid" ] || _it_alive "$pid"; }; then
		# shellcheck disable=SC2086
		tmo 30 $run "$PGBIN/pg_ctl" -D "$d" stop -m immediate -w -t 20 >/dev/null 2>&1 || true
	fi
	if _it_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then
		kill -QUIT "$pid" 2>/dev/null || true
		_it_wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
		_it_wait_gone "$pid" 5 || log "warning: postmaster $pid did not exit"
	fi
}

_it_diagnostics() {
	local f
	for f in "$T"/log/branchd* "$T"/log/pg-*.log; do
		[ -s "$f" ] || continue
		echo "----- tail of ${f##*/} -----" >&2
		tail -n 40 "$f" >&2
	done
}

_it_cleanup() {
	local rc=$? i pid m
	set +e
	trap - ERR
	trap '' TERM INT HUP
	if [ -n "$T" ] && [ $rc -ne 0 ]; then _it_diagnostics; fi
	for pid in "${IT_BG[@]}"; do
		_it_alive "$pid" && kill -TERM "$pid" 2>/dev/null
	done
	for ((i = ${#IT_PGDIRS[@]} - 1; i >= 0; i--)); do
		_it_pg_kill "${IT_PGDIRS[$i]}"
	done
	for ((i = ${#IT_MOUNTS[@]} - 1; i >= 0; i--)); do
		m=${IT_MOUNTS[$i]}
		if is_mounted "$m"; then
			tmo 20 fusermount3 -u "$m" 2>/dev/null || tmo 20 fusermount3 -uz "$m" ||
				log "warning: could not unmount $m"
		fi
	done
	for pid in "${IT_DAEMONS[@]}"; do
		if _it_alive "$pid"; then
			kill -TERM "$pid" 2>/dev/null
			_it_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
		fi
	done
	# a tmpfs of the test (it_mount_tmpfs) goes once nothing runs on it
	for ((i = ${#IT_TMPFS[@]} - 1; i >= 0; i--)); do
		m=${IT_TMPFS[$i]}
		if is_mounted "$m"; then
			umount "$m" 2>/dev/null || umount -l "$m" || log "warning: could not unmount $m"
		fi
	done
	for i in "${IT_USERS[@]}"; do userdel "$i" >/dev/null 2>&1 || log "warning: userdel $i failed"; done
	for i in "${IT_GROUPS[@]}"; do
		getent group "$i" >/dev/null && { groupdel "$i" >/dev/null 2>&1 || log "warning: groupdel $i failed"; }
	done
	for ((i = ${#IT_PARAMS[@]} - 2; i >= 0; i -= 2)); do
		printf '%s\n' "${IT_PARAMS[$((i + 1))]}" >"${IT_PARAMS[$i]}" 2>/dev/null ||
			log "warning: could not put ${IT_PARAMS[$((i + 1))]} back into ${IT_PARAMS[$i]}"
	done
	if [ -n "$T" ] && [ -d "$T" ]; then
		if grep -qF " $T/" /proc/self/mounts; then
			log "warning: something is still mounted under $T; leaving it in place"
		elif [ "${IT_KEEP:-0}" = 1 ]; then
			log "IT_KEEP=1: keeping $T"
		else
			rm -rf "$T"
		fi
	fi
	if [ $rc -eq 0 ]; then log "PASS"; else log "FAIL (rc=$rc)"; fi
	exit $rc
}

# ---- helpers ------------------------------------------------------------------

# it_mount_tmpfs DIR SIZE: a tmpfs of SIZE (e.g. 64m) at DIR (made if
# missing), unmounted by the cleanup after every Postgres, mount and daemon
# of the test, which may live on it
it_mount_tmpfs() {
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" || fail "cannot mount a $2 tmpfs at $1"
	IT_TMPFS+=("$1")
}

# it_set_param FILE VALUE: write VALUE into a kernel parameter file (e.g.
# /sys/module/fuse/parameters/enable_uring); cleanup puts the old value back
it_set_param() {
	local f=$1 v=$2 old
	old=$(cat "$f") || fail "cannot read $f"
	IT_PARAMS+=("$f" "$old")
	printf '%s\n' "$v" >"$f" || fail "cannot write $v into $f"
	log "$f: $old -> $v (put back at cleanup)"
}

# free_port VAR: store in VAR a free TCP port on 127.0.0.1, never one this
# test already handed out (no command substitution: IT_PORTS must persist)
free_port() {
	local p
	while :; do
		p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
		[[ " ${IT_PORTS[*]} " == *" $p "* ]] || break
	done
	IT_PORTS+=("$p")
	printf -v "$1" '%s' "$p"
}

# try_op OP ARGS...: run one syscall from python and print OK or the errno
# name (EBUSY, ENOTEMPTY, ...).  OP is rmdir, mkdir, rename or unlink.
IT_TRY_OP_PY='
import errno, os, sys
op, args = sys.argv[1], sys.argv[2:]
try:
    getattr(os, op)(*args)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
'
try_op() { tmo 60 python3 -c "$IT_TRY_OP_PY" "$@"; }

expect_op() { # EXPECTED OP ARGS...
	local want=$1 got
	shift
	got=$(try_op "$@")
	[ "$got" = "$want" ] || fail "$* gave $got, expected $want"
	log "$* -> $got (as expected)"
}

# like expect_op, but retry for up to 5 s while the result is EBUSY (FUSE
# delivers the release of a closed file asynchronously)
expect_op_eventually() {
	local want=$1 got n
	shift
	for ((n = 0; n < 50; n++)); do
		got=$(try_op "$@")
		[ "$got" = EBUSY ] && [ "$want" != EBUSY ] || break
		sleep 0.1
	done
	[ "$got" = "$want" ] || fail "$* gave $got, expected $want"
	[ $n -eq 0 ] || log "note: $* was EBUSY for $((n * 100)) ms after the last close"
	log "$* -> $got (as expected)"
}

# inode number of a path
ino() { stat -c %i "$1" 2>/dev/null || fail "cannot stat $1"; }

# ---- branchd -------------------------------------------------------------------

# bfs_mount [STORE MNT [extra -o options]]: start branchd in the foreground
# (own session, log in $T/log) and wait until the mount is live.
bfs_mount() {
	local store=${1:-$STORE} mnt=${2:-$MNT} opts=${3:-} n pid logf
	mkdir -p "$mnt"
	logf=$T/log/branchd-$(basename "$mnt")-$(date +%s%N).log
	local -a o=(-o "pidfile=$T/branchd-$(basename "$mnt").pid")
	[ -n "$opts" ] && o+=(-o "$opts")
	[ "${IT_DEBUG:-0}" = 1 ] && o+=(-o debug)
	setsid env "${IT_BD_ENV[@]}" "$BRANCHD" -f "${o[@]}" "$store" "$mnt" </dev/null >"$logf" 2>&1 &
	pid=$!
	IT_DAEMONS+=("$pid")
	IT_MOUNTS+=("$mnt")
	IT_MNTPID[$mnt]=$pid
	for ((n = 0; n < 300; n++)); do
		mountpoint -q "$mnt" && break
		_it_alive "$pid" || fail "branchd exited before the mount was ready (see $logf): $(tail -n 5 "$logf")"
		sleep 0.1
	done
	mountpoint -q "$mnt" || fail "mount $mnt not ready after 30 s"
	log "mounted $store at $mnt (branchd pid $pid, foreground)"
}

# bfs_mount_daemon [STORE MNT]: start branchd the normal way (it daemonizes
# once the mount is ready) and record its pid from the pidfile.
bfs_mount_daemon() {
	local store=${1:-$STORE} mnt=${2:-$MNT} pidf pid
	mkdir -p "$mnt"
	pidf=$T/branchd-$(basename "$mnt").pid
	rm -f "$pidf"
	IT_MOUNTS+=("$mnt")
	tmo 60 "$BRANCHD" -o "pidfile=$pidf" "$store" "$mnt" </dev/null >>"$T/log/branchd-daemon.log" 2>&1 ||
		fail "branchd (daemon mode) failed to start: $(tail -n 5 "$T/log/branchd-daemon.log")"
	mountpoint -q "$mnt" || fail "branchd returned but $mnt is not a mount point"
	[ -s "$pidf" ] || fail "branchd did not write its pidfile $pidf"
	pid=$(tr -dc 0-9 <"$pidf")
	_it_alive "$pid" || fail "pid $pid from $pidf is not running"
	IT_DAEMONS+=("$pid")
	IT_MNTPID[$mnt]=$pid
	log "mounted $store at $mnt (branchd pid $pid, daemonized)"
}

# bfs_umount [MNT]: unmount and wait for that branchd to exit
bfs_umount() {
	local mnt=${1:-$MNT} pid
	pid=${IT_MNTPID[$mnt]:-}
	tmo 30 fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt failed"
	if [ -n "$pid" ]; then
		_it_wait_gone "$pid" 30 || fail "branchd $pid still running 30 s after unmount"
	fi
	! is_mounted "$mnt" || fail "$mnt still mounted"
	log "unmounted $mnt"
}

# mk_branch NAME [OWNER]: mkdir MNT/NAME as root, then give it to OWNER
mk_branch() {
	local name=$1 owner=${2:-postgres} t0 t1
	t0=$(date +%s%N)
	tmo 60 mkdir "$MNT/$name" || fail "mkdir $MNT/$name failed"
	t1=$(date +%s%N)
	chown "$owner:" "$MNT/$name"
	chmod 0700 "$MNT/$name"
	log "mkdir $name took $(((t1 - t0) / 1000000)) ms"
}

# mk_child NAME [PARENT]: mkdir MNT/NAME (a branch of the default parent) as
# root; the new branch root must keep the parent's owner and mode (no chown)
mk_child() {
	local name=$1 parent=${2:-main} t0 t1 want got
	want=$(stat -c '%u:%g %a' "$MNT/$parent")
	t0=$(date +%s%N)
	tmo 60 mkdir "$MNT/$name" || fail "mkdir $MNT/$name failed"
	t1=$(date +%s%N)
	got=$(stat -c '%u:%g %a' "$MNT/$name")
	[ "$got" = "$want" ] || fail "new branch $name has owner/mode $got, its parent $parent has $want"
	log "mkdir $name (branch of $parent) took $(((t1 - t0) / 1000000)) ms"
}

# ---- Postgres ---------------------------------------------------------------

AS_PG="setpriv --reuid=postgres --regid=postgres --init-groups"

# pg_initdb PGDATA [RUNAS...]: RUNAS is a command prefix that switches user
pg_initdb() {
	local d=$1
	shift
	local run=${*:-$AS_PG}
	# shellcheck disable=SC2086
	(cd "$T" && tmo 300 $run "$PGBIN/initdb" -D "$d" -A trust -U postgres -E UTF8 --locale=C \
		>"$T/log/initdb-$(basename "$d").log" 2>&1) ||
		fail "initdb -D $d failed: $(tail -n 15 "$T/log/initdb-$(basename "$d").log")"
	log "initdb $d done"
}

# pg_start PGDATA PORT [RUNAS...]
pg_start() {
	local d=$1 port=$2
	shift 2
	local run=${*:-$AS_PG} logf
	logf=$T/log/pg-$(basename "$d")-$port.log
	IT_PGDIRS+=("$d")
	IT_PGRUN[$d]=$run
	# shellcheck disable=SC2086
	(cd "$T" && tmo 200 $run "$PGBIN/pg_ctl" -D "$d" -l "$logf" -w -t 180 \
		-o "-p $port -k $SOCK -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null) || {
		[ -f "$d/postmaster.pid" ] && IT_PGPID[$d]=$(head -n 1 "$d/postmaster.pid")
		fail "pg_ctl start -D $d failed: $(tail -n 15 "$logf")"
	}
	IT_PGPID[$d]=$(head -n 1 "$d/postmaster.pid")
	log "postgres on $(basename "$d") port $port pid ${IT_PGPID[$d]}"
}

# pg_stop PGDATA [MODE]
pg_stop() {
	local d=$1 mode=${2:-fast} pid=${IT_PGPID[$1]:-}
	# shellcheck disable=SC2086
	(cd "$T" && tmo 120 ${IT_PGRUN[$d]} "$PGBIN/pg_ctl" -D "$d" stop -m "$mode" -w -t 100 >/dev/null) ||
		fail "pg_ctl stop -D $d failed"
	_it_wait_gone "$pid" 20 || fail "postmaster $pid still alive after pg_ctl stop"
	log "stopped postgres on $(basename "$d")"
}

# q PORT SQL: one query, unaligned tuples-only output
q() {
	tmo 120 "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$1" -U postgres -d postgres -c "$2"
}

# amcheck PORT: pg_amcheck --heapallindexed over every database, must be clean
amcheck() {
	local out
	# (warnings only: a second run would print that amcheck exists)
	out=$(PGOPTIONS="-c client_min_messages=warning" tmo 300 "$PGBIN/pg_amcheck" -h "$SOCK" -p "$1" -U postgres --all --install-missing \
		--heapallindexed 2>&1) || fail "pg_amcheck on port $1 failed: $out"
	[ -z "$out" ] || fail "pg_amcheck on port $1 reported: $out"
	log "pg_amcheck --heapallindexed clean on port $1"
}

# run_pgbench PORT ARGS...: pgbench must exit 0 and report no failed transactions
run_pgbench() {
	local port=$1 out rc=0
	shift
	out=$T/log/pgbench-$port-$(date +%s%N).out
	tmo 400 "$PGBIN/pgbench" -h "$SOCK" -p "$port" -U postgres "$@" postgres >"$out" 2>&1 || rc=$?
	[ $rc -eq 0 ] || fail "pgbench $* on port $port exited $rc: $(tail -n 20 "$out")"
	if grep -q 'number of failed transactions' "$out"; then
		grep -q 'number of failed transactions: 0 ' "$out" ||
			fail "pgbench $* on port $port had failed transactions: $(grep 'failed' "$out")"
	fi
	if grep -qiE '^(pgbench: )?(error|fatal)|ERROR:|FATAL:|PANIC:' "$out"; then
		fail "pgbench $* on port $port printed errors: $(grep -iE 'error|fatal|panic' "$out" | head -n 5)"
	fi
	grep -E 'tps =|number of transactions actually processed|done in' "$out" | sed "s/^/[$IT_NAME]   /" || true
}

# acked_loop PORT FILE: in the background, commit "insert into acked values
# (i)" for i = 1, 2, ... into table acked (id int primary key) and append i
# to FILE once Postgres has acknowledged it; stops at the first failure
acked_loop() {
	local port=$1 file=$2
	(
		trap - ERR
		set +e
		for ((i = 1; i <= 100000; i++)); do
			"$PGBIN/psql" -X -q -h "$SOCK" -p "$port" -U postgres -d postgres \
				-c "insert into acked values ($i)" >/dev/null 2>&1 || break
			echo "$i" >>"$file"
		done
	) &
	IT_BG+=("$!")
}

# redo_of PGDATA: the REDO location in a stopped cluster's pg_control
redo_of() {
	local r
	# shellcheck disable=SC2086
	r=$(tmo 30 $AS_PG "$PGBIN/pg_controldata" "$1" | sed -n "s/^Latest checkpoint's REDO location: *//p")
	[ -n "$r" ] || fail "pg_controldata $1 shows no REDO location"
	echo "$r"
}

# lsn_cmp A B: prints -1, 0 or 1 as WAL location A is before, at or after B
lsn_cmp() {
	python3 -c '
import sys
def n(s):
    h, l = s.split("/")
    return (int(h, 16) << 32) | int(l, 16)
a, b = n(sys.argv[1]), n(sys.argv[2])
print((a > b) - (a < b))' "$1" "$2"
}

# bg_pgbench PORT CLIENTS SECONDS [SETTLE]: pgbench -c CLIENTS -j 2 -T SECONDS
# on PORT in the background (BG = its pid, output in $T/log/bg-pgbench.out);
# waits SETTLE seconds (default 5) and fails if it has already ended
bg_pgbench() {
	local port=$1 clients=$2 secs=$3 settle=${4:-5}
	"$PGBIN/pgbench" -h "$SOCK" -p "$port" -U postgres -c "$clients" -j 2 -T "$secs" postgres \
		>"$T/log/bg-pgbench.out" 2>&1 &
	BG=$!
	IT_BG+=("$BG")
	sleep "$settle"
	kill -0 "$BG" 2>/dev/null || fail "background pgbench ended early: $(tail -n 5 "$T/log/bg-pgbench.out")"
}

# bg_pgbench_wait: wait for bg_pgbench's run, which must exit 0 without a
# failed transaction
bg_pgbench_wait() {
	wait "$BG" || fail "background pgbench failed: $(tail -n 20 "$T/log/bg-pgbench.out")"
	grep -q 'number of failed transactions: 0 ' "$T/log/bg-pgbench.out" ||
		fail "background pgbench had failures: $(grep -i fail "$T/log/bg-pgbench.out")"
	log "background pgbench: $(grep 'tps =' "$T/log/bg-pgbench.out" | head -n 1)"
}

# PGBENCH_SUMS: true when pgbench's balances add up to its history's deltas
# (holds across runs that do not truncate pgbench_history: pgbench -n)
PGBENCH_SUMS="select (select sum(abalance) from pgbench_accounts) = (select coalesce(sum(delta), 0) from pgbench_history)
	and (select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta), 0) from pgbench_history)"

# pgbench_digest TABLE: SQL for one md5 over the pgbench accounts and history
# and the rows of TABLE (id, note)
pgbench_digest() {
	printf '%s' "select md5(string_agg(x, '|' order by x)) from (
	select 'a' || aid || ':' || abalance as x from pgbench_accounts
	union all select 'h' || tid || ':' || bid || ':' || aid || ':' || delta || ':' || mtime from pgbench_history
	union all select 't' || id || ':' || note from $1) s"
}

# digest_pair TABLE PORT1 PORT2: set DIGEST (pgbench_digest TABLE), D1 and D2
# (its value on each port); fails when D1 = D2, since comparing the two
# branches' contents later would then prove nothing
digest_pair() {
	DIGEST=$(pgbench_digest "$1")
	D1=$(q "$2" "$DIGEST")
	D2=$(q "$3" "$DIGEST")
	[ "$D1" != "$D2" ] || fail "the servers on ports $2 and $3 have identical contents; the test proves nothing"
}

# bfs_try_mount [STORE MNT [extra -o options]]: like bfs_mount, but returns 1
# (after logging why) instead of failing the test when branchd exits before
# the mount is ready; the daemon's log is in $T/log/branchd-*.log.
bfs_try_mount() {
	local store=${1:-$STORE} mnt=${2:-$MNT} opts=${3:-} n pid logf
	mkdir -p "$mnt"
	logf=$T/log/branchd-$(basename "$mnt")-$(date +%s%N).log
	local -a o=(-o "pidfile=$T/branchd-$(basename "$mnt").pid")
	[ -n "$opts" ] && o+=(-o "$opts")
	setsid env "${IT_BD_ENV[@]}" "$BRANCHD" -f "${o[@]}" "$store" "$mnt" </dev/null >"$logf" 2>&1 &
	pid=$!
	IT_DAEMONS+=("$pid")
	IT_MOUNTS+=("$mnt")
	IT_MNTPID[$mnt]=$pid
	for ((n = 0; n < 300; n++)); do
		mountpoint -q "$mnt" && break
		if ! _it_alive "$pid"; then
			log "branchd exited before the mount was ready: $(tail -n 3 "$logf" | tr '\n' ' ')"
			return 1
		fi
		sleep 0.1
	done
	mountpoint -q "$mnt" || { log "mount $mnt not ready after 30 s"; return 1; }
	log "mounted $store at $mnt (branchd pid $pid, foreground)"
}

# ---- branchctl ------------------------------------------------------------------

BRANCHCTL=${BRANCHCTL:-$IT_ROOT/bin/branchctl}
CTL_OUT="" # stdout of the last ctl/expect_ctl
CTL_ERR="" # stderr of the last ctl/expect_ctl
CTL_RC=0   # exit status of the last ctl/expect_ctl

ctl_require() { [ -x "$BRANCHCTL" ] || fail "$BRANCHCTL not built: run 'make all' first"; }

# ctl ARGS...: run branchctl --mount ${CTL_MNT:-$MNT} ARGS (as ${CTL_AS:-}
# when set, a command prefix like $AS_PG; CTL_MNT=none omits --mount);
# sets CTL_OUT, CTL_ERR and CTL_RC, never fails by itself.
ctl() {
	local -a pre=() m=()
	[ "${CTL_MNT:-$MNT}" = none ] || m=(--mount "${CTL_MNT:-$MNT}")
	# shellcheck disable=SC2206
	[ -n "${CTL_AS:-}" ] && pre=($CTL_AS)
	CTL_RC=0
	(cd "${CTL_CWD:-$T}" && tmo 60 "${pre[@]}" "$BRANCHCTL" "${m[@]}" "$@" >"$T/ctl.out" 2>"$T/ctl.err") ||
		CTL_RC=$?
	CTL_OUT=$(cat "$T/ctl.out")
	CTL_ERR=$(cat "$T/ctl.err")
}

# expect_ctl WANT ARGS...: branchctl ARGS must exit with status WANT; a
# failure (WANT != 0) must say why on stderr
expect_ctl() {
	local want=$1
	shift
	ctl "$@"
	[ "$CTL_RC" -eq "$want" ] ||
		fail "branchctl $* exited $CTL_RC, expected $want; stdout: ${CTL_OUT:0:400} stderr: ${CTL_ERR:0:400}"
	if [ "$want" -ne 0 ]; then
		[ -n "$CTL_ERR" ] || fail "branchctl $* exited $want without a message on stderr"
		log "branchctl $* -> exit $CTL_RC ($(head -n 1 <<<"$CTL_ERR"))"
	else
		log "branchctl $* -> ok"
	fi
}

# jq_ JSON EXPR: print python expression EXPR over d = parsed JSON (strings
# bare, None as "null", bools as true/false)
jq_() {
	python3 - "$1" "$2" <<'EOF2' || fail "cannot evaluate $2 over JSON: ${1:0:300}"
import json, sys
d = json.loads(sys.argv[1])
v = eval(sys.argv[2], {"d": d})
print("null" if v is None else ("true" if v is True else ("false" if v is False else v)))
EOF2
}

# jassert JSON EXPR [WHAT]: python expression EXPR over d must be true
jassert() {
	local r
	r=$(python3 - "$1" "$2" <<'EOF2'
import json, sys
try:
    d = json.loads(sys.argv[1])
    print("yes" if eval(sys.argv[2], {"d": d}) else "no")
except Exception as e:
    print("error: %r" % e)
EOF2
	)
	[ "$r" = yes ] || fail "${3:-JSON check} failed ($r): $2 over ${1:0:600}"
}

# ctl_seq: the store's current seq (branchctl status)
ctl_seq() {
	ctl --json status
	[ "$CTL_RC" -eq 0 ] || fail "branchctl status failed: $CTL_ERR"
	jq_ "$CTL_OUT" 'd["seq"]'
}
