#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 150
# t57: how branchd stops on SIGTERM when its unmount does not simply work,
# and with its fds 0-2 closed, without Postgres:
#  - a daemon of a user other than root (its unmount goes through
#    fusermount3) whose `fusermount3 -u` fails for a reason other than the
#    mount in use says that reason and stops; it used to answer "in use"
#    to every SIGTERM and never stop.  (The failing fusermount3 is one put
#    first in the daemon's PATH; libfuse mounts with /usr/bin's.)  One in
#    use is still answered "in use" and served on, and unmounts at a
#    later SIGTERM;
#  - a daemon whose mount point's parent was renamed unmounts its mount
#    where it is now, and data written without fsync is durable; it used
#    to fail the unmount, skip the writeback and wait for a request that
#    would let its abort take effect (without the fuse control filesystem,
#    as in most containers, the abort did nothing);
#  - a mount detached with umount -l while a file in it is open: SIGTERM
#    leaves the open file working (it used to end the connection under
#    it) and the daemon exits once the file is closed;
#  - a branch bound elsewhere (mount --bind, as a container's data
#    directory) with a file open: SIGTERM unmounts the mount point, serves
#    the bind mount on, also after a second SIGTERM (which aborted its
#    connection), and the daemon exits 0 once it is unmounted;
#  - `timeout 1 branchd ...` whose mount is not live within the second:
#    the parent passes the SIGTERM on and the daemon unmounts and stops
#    (it mounted and served on);
#  - a mount with something mounted over it: SIGTERM unmounts nothing and
#    says so (umount at the path took the mount on top);
#  - a daemon started with fds 0-2 closed (a service manager) keeps the
#    store's lock (the dup2 of /dev/null over them closed it);
#  - after a daemon's SIGKILL, one started on its dead mount says so in one
#    line with the command that removes it (it said only 'Transport
#    endpoint is not connected'), and so does branchctl (exit 3, no
#    daemon; it too said only that), also given the mount point itself
#    by --mount or BRANCHFS_MOUNT (it said "no branchd serves" or "not
#    running", as for a mount point with no daemon); once removed, the next daemon replaces
#    the stale socket, and a clean stop leaves neither socket nor lock
#    file;
#  - RocksDB's lock held by a process that is not branchd: one line saying
#    the store's database is in use.
# A user's mount is made in a mount namespace of its own, with a 0666
# node of the FUSE device bound over /dev/fuse (0600 on some machines).
source "$(dirname "$0")/lib.sh"
it_init

# wait_log FILE PATTERN: up to 30 s for PATTERN in FILE
wait_log() {
	local n
	for ((n = 0; n < 300; n++)); do
		grep -q "$2" "$1" && return 0
		sleep 0.1
	done
	fail "no '$2' in $1 within 30 s: $(tail -n 5 "$1")"
}

# ---- a user's daemon whose fusermount3 -u fails ---------------------------------
U=$T/user
mkdir -p "$U/mnt" "$U/bin"
chown -R postgres: "$U"
mknod -m 0666 "$T/fuse" c 10 229
cat >"$U/bin/fusermount3" <<'EOF'
#!/bin/sh
# refuses every unmount, as a fusermount3 that cannot do it would
echo "fusermount3: entry for $2 not found in /etc/mtab" >&2
exit 1
EOF
chmod 0755 "$U/bin/fusermount3"

# start_user LOG [PATH_PREFIX]: branchd -f as postgres in a mount namespace
# of its own; sets upid
start_user() {
	local logf=$1 pre=${2:-}
	# shellcheck disable=SC2016 # the inner sh expands $1..$4
	setsid unshare -m --propagation private sh -c \
		'mount --bind "$1" /dev/fuse && PATH="$4$PATH" exec setpriv --reuid=postgres --regid=postgres --init-groups "$2" -f -o "noallow_other,socket=$3/ctl.sock" "$3/store" "$3/mnt"' \
		sh "$T/fuse" "$BRANCHD" "$U" "$pre" </dev/null >"$logf" 2>&1 &
	upid=$!
	IT_DAEMONS+=("$upid")
	wait_log "$logf" "mounted on"
	wait_log "$logf" "fuse protocol"
}
# as_user CMD...: CMD as postgres in the daemon's mount namespace
as_user() { tmo 30 nsenter -t "$upid" -m setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

start_user "$T/log/user1.log" "$U/bin:"
as_user mkdir "$U/mnt/main"
as_user sh -c "echo unsynced >'$U/mnt/main/f'"
kill -TERM "$upid"
rc=0
tmo 30 bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.1; done' sh "$upid" || rc=$?
[ $rc -eq 0 ] || fail "branchd (user) still running 30 s after SIGTERM with fusermount3 -u failing: $(tail -n 4 "$T/log/user1.log")"
wait "$upid" && fail "branchd (user) exited 0 although it could not unmount"
grep -q "cannot unmount '$U/mnt': fusermount3: entry for $U/mnt not found" "$T/log/user1.log" ||
	fail "branchd (user) did not say why fusermount3 -u failed: $(tail -n 4 "$T/log/user1.log")"
! grep -q "is in use" "$T/log/user1.log" || fail "branchd (user) called a refused unmount 'in use': $(cat "$T/log/user1.log")"
log "user's daemon, fusermount3 -u failing: $(grep "cannot unmount" "$T/log/user1.log")"

# the same store, with the real fusermount3: the file written without
# fsync is there; a file held open is "in use", a later SIGTERM unmounts
start_user "$T/log/user2.log"
[ "$(as_user cat "$U/mnt/main/f")" = unsynced ] || fail "main/f lost across the stop that could not unmount"
# shellcheck disable=SC2016
nsenter -t "$upid" -m setpriv --reuid=postgres --regid=postgres --init-groups \
	sh -c 'exec 3<"$1"; exec sleep 600' sh "$U/mnt/main/f" 2>"$T/log/holder.log" &
holder=$!
IT_BG+=("$holder")
wait_holder() { # until the holder has main/f open
	local n
	for ((n = 0; n < 300; n++)); do
		[ "$(readlink "/proc/$holder/fd/3" 2>/dev/null)" = "$U/mnt/main/f" ] && return 0
		sleep 0.1
	done
	fail "the holder did not open main/f: $(cat "$T/log/holder.log")"
}
wait_holder
kill -TERM "$upid"
wait_log "$T/log/user2.log" "is in use: not unmounted, still serving"
_it_alive "$upid" || fail "branchd (user) exited on SIGTERM with a file open"
[ "$(as_user cat "$U/mnt/main/f")" = unsynced ] || fail "main/f unreadable after the refused unmount"
kill "$holder"
wait "$holder" 2>/dev/null || true
kill -TERM "$upid"
_it_wait_gone "$upid" 30 || fail "branchd (user) still running 30 s after SIGTERM with nothing open"
wait "$upid" || fail "branchd (user) exited $? after a clean unmount: $(tail -n 4 "$T/log/user2.log")"
log "user's daemon: 'in use' while a file was open, unmounted at the next SIGTERM"

# ---- the mount point's parent renamed under a root daemon ------------------------
mkdir -p "$T/p1/mnt"
IT_MOUNTS+=("$T/p2/mnt")
bfs_mount "$T/store-r" "$T/p1/mnt"
pid=${IT_MNTPID[$T/p1/mnt]}
mkdir "$T/p1/mnt/main"
head -c 4000000 /dev/urandom >"$T/blob"
cp "$T/blob" "$T/p1/mnt/main/blob"
mv "$T/p1" "$T/p2"
kill -TERM "$pid"
_it_wait_gone "$pid" 30 || fail "branchd still running 30 s after SIGTERM, its mount point's parent renamed: $(tail -n 4 "$T"/log/branchd-mnt-*.log)"
! is_mounted "$T/p2/mnt" || fail "$T/p2/mnt still mounted after SIGTERM"
mkdir -p "$T/p1"
mv "$T/p2/mnt" "$T/p1/mnt"
bfs_mount "$T/store-r" "$T/p1/mnt"
cmp "$T/p1/mnt/main/blob" "$T/blob" || fail "data written without fsync lost across SIGTERM after the rename"
bfs_umount "$T/p1/mnt"
log "parent of the mount point renamed: unmounted where it was, data durable"

# ---- umount -l with a file open, then SIGTERM -------------------------------------
M=$T/lazy
bfs_mount "$T/store-l" "$M"
pid=${IT_MNTPID[$M]}
mkdir "$M/main"
echo lazy >"$M/main/f"
exec {held}<"$M/main/f"
umount -l "$M"
kill -TERM "$pid"
lazylog=$(ls "$T"/log/branchd-lazy-*.log)
wait_log "$lazylog" "is no longer mounted\|cannot unmount"
[ "$(cat "/proc/$$/fd/$held")" = lazy ] || fail "the open file of the detached mount stopped working after SIGTERM: $(tail -n 3 "$lazylog")"
_it_alive "$pid" || fail "branchd exited on SIGTERM while a file of its detached mount was open"
grep -q "is no longer mounted" "$lazylog" || fail "branchd did not say its mount was detached: $(tail -n 3 "$lazylog")"
! grep -q "is in use" "$lazylog" || fail "branchd called its detached mount 'in use': $(grep "is in use" "$lazylog")"
exec {held}<&-
_it_wait_gone "$pid" 30 || fail "branchd still running 30 s after the last file of its detached mount was closed"
log "umount -l, file open: SIGTERM served on, daemon gone once the file was closed"

# ---- a branch bound elsewhere and in use, then SIGTERM twice --------------------
# (a container's data directory): SIGTERM unmounts the mount point and says
# that a branch of it is still mounted elsewhere; it serves that on, and a
# second SIGTERM no longer aborts its connection (it did: writes there then
# failed with ENOTCONN); the daemon stops once the bind mount goes, with
# what was written through it in the store
M=$T/bound
bfs_mount "$T/store-b" "$M"
pid=${IT_MNTPID[$M]}
mkdir "$M/main" "$T/bind"
mount --bind "$M/main" "$T/bind" || fail "mount --bind of a branch failed"
IT_TMPFS+=("$T/bind")
exec {bfd}>"$T/bind/f"
echo one >&$bfd
oldid=$(awk -v m="$M" '$5 == m { id = $1 } END { print id }' /proc/self/mountinfo)
[ -n "$oldid" ] || fail "no mountinfo entry for $M"
kill -TERM "$pid"
boundlog=$(ls "$T"/log/branchd-bound-*.log)
wait_log "$boundlog" "still mounted elsewhere"
! is_mounted "$M" || fail "SIGTERM left $M mounted"
_it_alive "$pid" || fail "branchd exited on SIGTERM while a bind mount of a branch was in use"
# the kernel hands the id of the mount that went to the next mount made
# (the lowest free id), anyone's: a tmpfs that gets it is not branchd's
# mount moved there (branchd, root, unmounted it "there" at the next
# SIGTERM); tmpfs mounts until one has it, unless another process's
# mount takes it first
reuse=
for ((i = 0; i < 64; i++)); do
	it_mount_tmpfs "$T/reuse-$i" 1m
	if [ "$(awk -v m="$T/reuse-$i" '$5 == m { print $1 }' /proc/self/mountinfo)" = "$oldid" ]; then
		reuse=$T/reuse-$i
		break
	fi
done
[ -n "$reuse" ] && log "mount id $oldid of $M now belongs to the tmpfs at $reuse" ||
	log "note: mount id $oldid of $M was taken by another process's mount, not by one of the $i tmpfs mounts"
kill -TERM "$pid"
wait_log "$boundlog" "is no longer mounted"
! grep -q "is now at" "$boundlog" || fail "branchd took another mount for its own: $(grep "is now at" "$boundlog")"
for ((j = 0; j <= i && j < 64; j++)); do
	is_mounted "$T/reuse-$j" || fail "SIGTERM unmounted the tmpfs at $T/reuse-$j (mount id $oldid was $M's)"
	umount "$T/reuse-$j" || fail "cannot unmount the tmpfs at $T/reuse-$j"
done
echo two >&$bfd || fail "a write through the bind mount failed after the second SIGTERM: $(tail -n 3 "$boundlog")"
exec {bfd}>&-
[ "$(cat "$T/bind/f")" = "$(printf 'one\ntwo')" ] || fail "the bind mount's file holds '$(cat "$T/bind/f")'"
umount "$T/bind" || fail "cannot unmount the bind mount"
_it_wait_gone "$pid" 30 || fail "branchd still running 30 s after the bind mount was unmounted"
wait "$pid" || fail "branchd exited $? once the bind mount was gone"
bfs_mount "$T/store-b" "$M"
[ "$(cat "$M/main/f")" = "$(printf 'one\ntwo')" ] || fail "after a remount main/f holds '$(cat "$M/main/f")'"
bfs_umount "$M"
log "bind mount of a branch in use: SIGTERM served it on, twice; stopped once it was unmounted, data kept"

# ---- the waiting parent stopped (timeout, Ctrl-C) before the mount is live -------
# it passes the signal on: the daemon unmounts once its mount is live and
# stops (it mounted and served on, in a session of its own)
M=$T/cancel
mkdir "$M"
IT_MOUNTS+=("$M")
rc=0
BRANCHD_TEST_MOUNT_DELAY_MS=3000 timeout 1 "$BRANCHD" -o "pidfile=$T/cancel.pid" "$T/store-c" "$M" 2>"$T/log/cancel.err" || rc=$?
[ "$rc" -eq 124 ] || fail "timeout 1 branchd exited $rc, expected 124: $(cat "$T/log/cancel.err")"
grep -q "passed on to the daemon" "$T/log/cancel.err" || fail "the parent did not say it passed the signal on: $(cat "$T/log/cancel.err")"
for ((n = 0; n < 100; n++)); do
	! is_mounted "$M" && ! pgrep -f -- "$T/store-c" >/dev/null && break
	sleep 0.1
done
! is_mounted "$M" || fail "a daemon whose start was given up mounted $M"
! pgrep -f -- "$T/store-c" >/dev/null || fail "a daemon whose start was given up still runs: $(pgrep -af -- "$T/store-c")"
log "parent stopped during start: the daemon unmounted and stopped"

# ---- something mounted over the mount, then SIGTERM -------------------------------
# umount at the path took the mount on top (a tmpfs here) and the daemon
# served on as if it had unmounted; now it says so and unmounts nothing
M=$T/over
bfs_mount "$T/store-o" "$M"
pid=${IT_MNTPID[$M]}
mkdir "$M/main"
it_mount_tmpfs "$M" 4m
touch "$M/on-top"
kill -TERM "$pid"
overlog=$(ls "$T"/log/branchd-over-*.log)
for ((n = 0; n < 300; n++)); do # until branchd answers, or the tmpfs goes
	grep -q "something is mounted over" "$overlog" && break
	[ -e "$M/on-top" ] || break
	sleep 0.1
done
[ -e "$M/on-top" ] || fail "SIGTERM to branchd unmounted the tmpfs mounted over its mount: $(tail -n 2 "$overlog")"
grep -q "something is mounted over" "$overlog" || fail "branchd did not say something is mounted over its mount: $(tail -n 2 "$overlog")"
_it_alive "$pid" || fail "branchd exited on SIGTERM with something mounted over its mount"
umount "$M"
[ -d "$M/main" ] || fail "branchd's mount under the tmpfs is gone"
kill -TERM "$pid"
_it_wait_gone "$pid" 30 || fail "branchd still running 30 s after SIGTERM once the tmpfs was gone"
! is_mounted "$M" || fail "$M still mounted after the second SIGTERM"
log "something mounted over: SIGTERM left it, said so; unmounted once it was gone"

# ---- started with stdin, stdout and stderr closed ---------------------------------
# The store's lock file and RocksDB's files took fds 0-2, and the dup2 of
# /dev/null over them once the mount was live closed the lock file: its
# flock was gone while the daemon served the store.
M=$T/closed
mkdir -p "$M"
IT_MOUNTS+=("$M")
tmo 60 "$BRANCHD" -o "pidfile=$T/closed.pid,socket=$T/closed.sock" "$T/store-c" "$M" <&- >&- 2>&- ||
	fail "branchd started with fds 0-2 closed failed"
pid=$(tr -dc 0-9 <"$T/closed.pid")
IT_DAEMONS+=("$pid")
IT_MNTPID[$M]=$pid
mountpoint -q "$M" || fail "branchd started with fds 0-2 closed returned without the mount"
flock -n "$T/store-c/LOCK.branchfs" true &&
	fail "the store's lock is not held by branchd $pid, started with fds 0-2 closed: $(ls -l "/proc/$pid/fd" | head -n 8)"
mkdir "$M/main"
echo closed >"$M/main/f"
bfs_umount "$M"
bfs_mount "$T/store-c" "$M"
[ "$(cat "$M/main/f")" = closed ] || fail "main/f lost across a daemon started with fds 0-2 closed"
bfs_umount "$M"
log "started with fds 0-2 closed: the store's lock held, data kept"

# ---- after SIGKILL: the dead mount is named, the stale socket replaced ----------
M=$T/killed
bfs_mount "$T/store-k" "$M" "socket=$T/killed.sock"
pid=${IT_MNTPID[$M]}
kill -KILL "$pid"
_it_wait_gone "$pid" 10 || fail "branchd $pid survived SIGKILL"
[ -S "$T/killed.sock" ] || fail "no socket file left by the killed daemon (nothing to test)"
rc=0
err=$(tmo 30 "$BRANCHD" -o "socket=$T/killed.sock" "$T/store-k" "$M" 2>&1 >/dev/null) || rc=$?
[ $rc -ne 0 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] ||
	fail "branchd on the dead mount: exit $rc, expected one line: $err"
[[ $err == *"is a dead FUSE mount"*"fusermount3 -u $M"* ]] ||
	fail "branchd on the dead mount does not say what it is and what removes it: $err"
log "on the dead mount: $err"
rc=0
err=$(tmo 30 "$IT_ROOT/bin/branchctl" --mount "$M/main" status 2>&1 >/dev/null) || rc=$?
[ $rc -eq 3 ] && [[ $err == *"has died"*"'fusermount3 -u $M'"* ]] ||
	fail "branchctl on the dead mount: exit $rc (expected 3, no daemon), and it should say the daemon died and what removes the mount: $err"
log "branchctl on the dead mount: $err"
# the mount point itself, as --mount and BRANCHFS_MOUNT name it: it resolves
# without asking the dead daemon, and branchctl said "no branchd serves"
# (or "not running", with the derived socket) without naming the dead mount
for how in --mount BRANCHFS_MOUNT; do
	rc=0
	if [ $how = --mount ]; then
		err=$(tmo 30 "$IT_ROOT/bin/branchctl" --mount "$M" status 2>&1 >/dev/null) || rc=$?
	else
		err=$(BRANCHFS_MOUNT=$M tmo 30 "$IT_ROOT/bin/branchctl" status 2>&1 >/dev/null) || rc=$?
	fi
	[ $rc -eq 3 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && [[ $err == *"has died"*"'fusermount3 -u $M'"* ]] ||
		fail "branchctl with $how naming the dead mount point: exit $rc (expected 3, no daemon), and it should say in one line that the daemon died and what removes the mount: $err"
done
log "branchctl with --mount or BRANCHFS_MOUNT naming the dead mount point: says it died"
tmo 20 fusermount3 -u "$M" || fail "fusermount3 -u of the dead mount failed"
bfs_mount "$T/store-k" "$M" "socket=$T/killed.sock"
tmo 30 "$IT_ROOT/bin/branchctl" --socket "$T/killed.sock" status >/dev/null ||
	fail "branchctl cannot reach the daemon on the socket path the killed one left"
bfs_umount "$M"
[ ! -e "$T/killed.sock" ] && [ ! -e "$T/killed.sock.lock" ] ||
	fail "the socket or its lock file is left after a clean stop: $(ls "$T")"
log "after SIGKILL: dead mount named, stale socket replaced; nothing left after a clean stop"

# ---- RocksDB's lock held by a process that is not branchd ------------------------
# (a RocksDB tool such as ldb): one line that says the database is in use,
# not RocksDB's bare "IO error: While lock file"
python3 - "$T/store-c/db/LOCK" "$T/rocks-locked" <<'PY' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
open(sys.argv[2], "w").close()
time.sleep(120)
PY
locker=$!
IT_BG+=("$locker")
for ((n = 0; n < 300; n++)); do
	[ -e "$T/rocks-locked" ] && break
	_it_alive "$locker" || fail "the RocksDB lock holder died"
	sleep 0.1
done
[ -e "$T/rocks-locked" ] || fail "the RocksDB lock holder did not take the lock"
rc=0
err=$(tmo 30 "$BRANCHD" -f -o "socket=$T/closed.sock" "$T/store-c" "$M" 2>&1 >/dev/null) || rc=$?
[ $rc -ne 0 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] ||
	fail "branchd with RocksDB's lock held: exit $rc, expected one line: $err"
[[ $err == *"database is in use by another process"* ]] ||
	fail "branchd with RocksDB's lock held does not say the database is in use: $err"
! is_mounted "$M" || fail "branchd mounted although RocksDB's lock is held"
kill "$locker"
wait "$locker" 2>/dev/null || true
log "RocksDB's lock held by another process: $err"
