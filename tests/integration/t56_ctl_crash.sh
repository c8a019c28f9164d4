#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
# t56: kill -9 of branchd in the middle of a control operation; after a
# remount each operation happened wholly or not at all.
#  1. At a chosen point (gdb stops branchd there and kills it): right after
#     the rename of the default parent `main` is committed, by mv(1) and by
#     `branchctl rename`.  The default parent must have followed the rename
#     in the same step: mkdir of a new branch works after the restart and
#     branches the renamed parent (it failed with ENOENT, "default parent
#     'main' does not exist", when the default was kept by a second write).
#  2. At random moments (0-30 ms) during mkdir, rmdir, mv, branchctl
#     reset, gc and create --at: the branch list is consistent, every
#     fsynced file is intact, and branchd --check is clean at the end.
#  3. During mkdir of a branch of a running Postgres, while branchd waits
#     for the server's CHECKPOINT (pg_checkpoint): the helper process ends
#     with its daemon, the branch is whole or absent, the server recovers
#     with every committed row, pg_amcheck is clean, and a new branch of
#     it starts.
source "$(dirname "$0")/lib.sh"
it_init
ctl_require
command -v gdb >/dev/null || fail "gdb not found: it stops branchd at a chosen point (apt-get install gdb; scripts/install-deps.sh)"

py_put='import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, sys.argv[2].encode()); os.fsync(fd); os.close(fd)'
put() { python3 -c "$py_put" "$1" "$2"; }

# remount: after a kill -9, clear the dead mount and start branchd again
remount() {
	local pid=${IT_MNTPID[$MNT]}
	_it_wait_gone "$pid" 10 || fail "branchd $pid survived kill -9"
	tmo 20 fusermount3 -uz "$MNT" || fail "cannot unmount the dead mount"
	bfs_mount >/dev/null
}

# kill_at FUNCTION CMD...: run CMD while gdb holds branchd; branchd is
# killed (SIGKILL) when it first enters FUNCTION (then remount)
kill_at() {
	local fn=$1 pid=${IT_MNTPID[$MNT]} gdbpid n
	shift
	rm -f "$T/gdb.out" # (a stale one would pass for this gdb's)
	tmo 60 gdb -q -batch -p "$pid" -ex "break $fn" -ex continue -ex kill >"$T/gdb.out" 2>&1 &
	gdbpid=$!
	IT_BG+=("$gdbpid")
	# attached (breakpoint set) and running again (no thread stopped by
	# the tracer); gdb's own "Continuing." may sit in its output buffer
	for ((n = 0; n < 300; n++)); do
		if grep -qs '^Breakpoint 1 at' "$T/gdb.out" &&
			! grep -qs '^State:.*t (tracing stop)' /proc/"$pid"/task/*/status; then
			break
		fi
		_it_alive "$gdbpid" || fail "gdb ended before it let branchd run: $(tail -n 5 "$T/gdb.out")"
		sleep 0.1
	done
	[ $n -lt 300 ] || fail "gdb did not attach to branchd and let it run in 30 s: $(tail -n 5 "$T/gdb.out")"
	"$@" >"$T/op.out" 2>&1 || true
	wait "$gdbpid" || true
	grep -qE "Breakpoint 1(\.[0-9]+)?, (0x[0-9a-f]+ in )?$fn " "$T/gdb.out" || fail "branchd never reached $fn: $(tail -n 5 "$T/gdb.out")"
	log "$* : branchd killed in $fn ($(head -n 1 "$T/op.out"))"
}

# ---- 1. the default parent's rename, killed right after its commit ----
bfs_mount
mkdir "$MNT/main"
put "$MNT/main/f1" main-1
# mv: fs_root_rename drops the branch's cached symlinks right after the
# rename is in the store, before it answers
kill_at fs_invalidate_nodes mv "$MNT/main" "$MNT/prod"
remount
[ "$(ls "$MNT" | tr '\n' ' ')" = "prod " ] || fail "branches after the kill during mv main prod: $(ls "$MNT")"
out=$(mkdir "$MNT/feature" 2>&1) ||
	fail "mkdir after a crash right after 'mv main prod' failed: $out; branchd: $(grep -i default "$T"/log/branchd-*.log | tail -n 1)"
[ "$(cat "$MNT/feature/f1")" = main-1 ] || fail "feature is not a branch of prod"
log "after the crash the default parent is prod: mkdir feature made a branch of it"
# branchctl rename: the control plane's change hook runs right after it
kill_at bd_hook_changed "$BRANCHCTL" --mount "$MNT" rename prod main2
remount
[ "$(ls "$MNT" | tr '\n' ' ')" = "feature main2 " ] || fail "branches after the kill during rename prod main2: $(ls "$MNT")"
out=$(mkdir "$MNT/feature2" 2>&1) ||
	fail "mkdir after a crash right after 'branchctl rename prod main2' failed: $out"
expect_ctl 0 --json info feature2
jassert "$CTL_OUT" "d['branch']['parent'] == 'main2'" "feature2's parent"
expect_ctl 0 default
[ "$CTL_OUT" = main2 ] || fail "the default parent is '$CTL_OUT' after the crash, expected main2"
log "after the crash the default parent is main2"
expect_ctl 0 rename main2 main
rmdir "$MNT/feature" "$MNT/feature2"

# ---- 2. kills at random moments ----
expect_ctl 0 retention 1
head -c 2000000 /dev/urandom >"$T/big"
cp "$T/big" "$MNT/main/big"
sync "$MNT/main/big"
put "$MNT/main/f2" main-2
verify() { # round what
	local b got
	for b in $(ls "$MNT"); do
		got=$(cat "$MNT/$b/f1" 2>&1) || fail "round $1 ($2): $b/f1 unreadable: $got"
		case "$got" in main-1 | own-*) ;; *) fail "round $1 ($2): $b/f1 holds '$got'" ;; esac
	done
	cmp -s "$T/big" "$MNT/main/big" || fail "round $1 ($2): main/big differs"
	[ "$(cat "$MNT/main/f2")" = main-2 ] || fail "round $1 ($2): main/f2 differs"
}
for ((r = 1; r <= 12; r++)); do
	op=$((r % 6))
	case $op in
	0) cmd=(mkdir "$MNT/n$r") what="mkdir n$r" ;;
	1) mkdir "$MNT/d$r" && put "$MNT/d$r/f1" "own-d$r"
	   cmd=(rmdir "$MNT/d$r") what="rmdir d$r" ;;
	2) mkdir "$MNT/a$r" && put "$MNT/a$r/f1" "own-a$r"
	   cmd=(mv "$MNT/a$r" "$MNT/b$r") what="mv a$r b$r" ;;
	3) mkdir "$MNT/r$r" && put "$MNT/r$r/f1" "own-r$r"
	   cmd=("$BRANCHCTL" --mount "$MNT" reset "r$r") what="reset r$r" ;;
	4) mkdir "$MNT/g$r" && put "$MNT/g$r/f1" "own-g$r" && rmdir "$MNT/g$r"
	   sleep 1.1
	   cmd=("$BRANCHCTL" --mount "$MNT" gc) what=gc ;;
	5) s=$(ctl_seq)
	   cmd=("$BRANCHCTL" --mount "$MNT" create "c$r" --at "seq:$s") what="create c$r --at seq:$s" ;;
	esac
	d=$(python3 -c 'import random; print("%.3f" % random.uniform(0, 0.03))')
	"${cmd[@]}" >/dev/null 2>&1 &
	opid=$!
	sleep "$d"
	kill -KILL "${IT_MNTPID[$MNT]}"
	wait "$opid" 2>/dev/null || true
	remount
	verify "$r" "$what"
	case $op in
	0) st=absent
	   [ -e "$MNT/n$r" ] && { [ "$(cat "$MNT/n$r/f2")" = main-2 ] || fail "round $r: n$r is half made"; st=made; } ;;
	1) st=gone
	   [ -e "$MNT/d$r" ] && { [ "$(cat "$MNT/d$r/f1")" = "own-d$r" ] || fail "round $r: d$r lost its file"; st=kept; } ;;
	2) a=0 b=0
	   [ -e "$MNT/a$r" ] && a=1
	   [ -e "$MNT/b$r" ] && b=1
	   [ $((a + b)) -eq 1 ] || fail "round $r: after mv a$r b$r, a$r exists: $a, b$r exists: $b"
	   [ $b = 0 ] || [ "$(cat "$MNT/b$r/f1")" = "own-a$r" ] || fail "round $r: b$r lost its file"
	   st="a=$a b=$b" ;;
	3) st=$(cat "$MNT/r$r/f1")
	   [ "$st" = "own-r$r" ] || [ "$st" = main-1 ] || fail "round $r: after reset r$r, f1 holds '$st'" ;;
	4) st=ok ;;
	5) st=absent
	   [ -e "$MNT/c$r" ] && { [ "$(cat "$MNT/c$r/f2")" = main-2 ] || fail "round $r: c$r is half made"; st=made; } ;;
	esac
	log "round $r: $what, killed after $d s: $st"
done

# ---- 3. mkdir of a branch of a running cluster, killed while branchd
# waits for the server's CHECKPOINT (the pg_checkpoint policy) ----
expect_ctl 0 create pg --empty
chown postgres: "$MNT/pg"
chmod 0700 "$MNT/pg"
pg_initdb "$MNT/pg"
free_port P1
free_port P2
pg_start "$MNT/pg" "$P1"
q "$P1" "create table t(id int primary key, pad text); checkpoint"
# dirty pages for the CHECKPOINT to write while branchd waits for it
q "$P1" "insert into t select g, repeat('x', 200) from generate_series(1, 10000) g"
expect_ctl 0 default pg
# branchd stops (gdb) right after it started the helper that runs the
# CHECKPOINT, and dies there; the server's checkpoint meets a dead mount
kill_at pgckpt_collect mkdir "$MNT/pgb"
n=0
while pgrep -f -- "--pg-checkpoint-helper .*$MNT/pg " >"$T/helpers"; do
	((++n < 100)) || fail "a pg_checkpoint helper outlived its killed branchd by 10 s: $(cat "$T/helpers")"
	sleep 0.1
done
log "no pg_checkpoint helper left $((n * 100)) ms after the kill"
pm=${IT_PGPID[$MNT/pg]}
kill -QUIT "$pm" 2>/dev/null || true
_it_wait_gone "$pm" 30 || kill -KILL "$pm" 2>/dev/null || true
_it_wait_gone "$pm" 10 || fail "postmaster $pm does not exit after its filesystem died"
remount
[ ! -e "$MNT/pgb" ] || [ -e "$MNT/pgb/PG_VERSION" ] || fail "pgb is there but half made: $(ls "$MNT/pgb")"
log "after the crash pgb is $([ -e "$MNT/pgb" ] && echo there || echo absent)"
pg_start "$MNT/pg" "$P1"
[ "$(q "$P1" "select count(*) from t")" = 10000 ] || fail "pg lost rows after the crash"
amcheck "$P1"
if [ -e "$MNT/pgb" ]; then
	pg_start "$MNT/pgb" "$P2"
	[ "$(q "$P2" "select count(*) from t")" = 10000 ] || fail "pgb, made before the crash, lacks rows"
	amcheck "$P2"
	pg_stop "$MNT/pgb"
fi
mkdir "$MNT/pgc"
pg_start "$MNT/pgc" "$P2"
[ "$(q "$P2" "select count(*) from t")" = 10000 ] || fail "pgc, a branch of pg, lacks rows"
amcheck "$P2"
pg_stop "$MNT/pgc"
pg_stop "$MNT/pg"
bfs_umount
out=$(tmo 120 "$BRANCHD" --check "$STORE" 2>&1) || fail "branchd --check after the kills: $out"
log "$out"
