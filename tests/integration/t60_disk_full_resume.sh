#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
# t60: the store's filesystem (a 64 MiB tmpfs) runs full, then the space
# comes back.
#  - 6 rounds on a fresh store: another program's file leaves 11 MiB free
#    (just above the 10 MiB reserve) and 16 MiB are written and fsynced
#    through the mount: ENOSPC, and RocksDB itself never meets the full disk
#    (the reserve was checked every 50 ms, and a burst at memory speed went
#    past it into RocksDB, which then resumed only with its own recovery,
#    4.5-4.9 s later); once the file goes, a write succeeds within 1 s.
# Then another program takes every free byte of it:
#  - deleting a file or a branch to make room at 100% full fails with
#    ENOSPC before RocksDB is asked (under 1 MiB free nothing is written,
#    since the WAL append would fail; it used to, and RocksDB then took
#    writes only after a remount), and the log says why; once the space is
#    back, writes resume within 1 s and both deletes work;
#  - with that floor off (BRANCHFS_WRITE_FLOOR_KIB=0, as if another
#    program took the last byte between the check and the append), a file
#    is deleted on the freshly mounted store at 100% full: its tombstone's
#    append to RocksDB's write-ahead log fails, and RocksDB's own recovery
#    (5 s after, once there is room) finds no memtable to flush and keeps
#    the failed log file.  Debian's librocksdb (built with assertions)
#    aborted branchd at the next write; branchd stays up, refuses writes
#    and says to mount the store again, and after that remount writes,
#    deletes and the data fsynced before all work.
source "$(dirname "$0")/lib.sh"
it_init

# probe DIR: seconds (3 decimals) from now until a create + write + fsync in
# DIR succeeds, retried every 10 ms for up to 10 s; "none" if it never does
PROBE_PY='
import os, sys, time
d, t0 = sys.argv[1], time.monotonic()
while time.monotonic() - t0 < 10:
    try:
        fd = os.open(d + "/probe", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"p" * 8192)
            os.fsync(fd)
        finally:
            os.close(fd)
        print("%.3f" % (time.monotonic() - t0))
        sys.exit(0)
    except OSError:
        time.sleep(0.01)
print("none")
'
# fill_all DIR: a filler file DIR/filler takes every free byte of DIR's
# filesystem
FILL_PY='
import os, sys
fd = os.open(sys.argv[1] + "/filler", os.O_WRONLY | os.O_CREAT, 0o644)
for chunk in (1 << 20, 4096, 1):
    try:
        while True:
            os.write(fd, b"\1" * chunk)
    except OSError:
        pass
os.close(fd)
'
fill_all() { tmo 60 python3 -c "$FILL_PY" "$1"; }
probe() { tmo 30 python3 -c "$PROBE_PY" "$1"; }
# within T LIMIT: T (a probe's result) is a number of seconds <= LIMIT
within() { [ "$1" != none ] && python3 -c 'import sys; sys.exit(not float(sys.argv[1]) <= float(sys.argv[2]))' "$1" "$2"; }

# fill SMALL LEAVE_MIB: a filler file on SMALL leaves LEAVE_MIB free
FILL_LEAVE_PY='
import os, sys
sm, leave = sys.argv[1], int(sys.argv[2]) << 20
st = os.statvfs(sm)
n = st.f_bavail * st.f_frsize - leave
fd = os.open(sm + "/filler", os.O_WRONLY | os.O_CREAT, 0o644)
while n > 0:
    n -= os.write(fd, b"\1" * min(n, 1 << 20))
os.close(fd)
'
# burst FILE: 16 MiB of random data written and fsynced; prints the outcome
BURST_PY='
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
    for k in range(16):
        os.pwrite(fd, os.urandom(1 << 20), k << 20)
    os.fsync(fd)
    os.close(fd)
    print("ok")
except OSError as e:
    print(os.strerror(e.errno))
'

# ---- the reserve: a burst of writes at 11 MiB free
for round in 1 2 3 4 5 6; do
	SM=$T/burst$round
	it_mount_tmpfs "$SM" 64m
	bfs_mount "$SM/store" "$T/bmnt"
	bpid=${IT_MNTPID[$T/bmnt]}
	logf=$(ls -t "$T"/log/branchd-bmnt-*.log | head -n 1)
	mkdir "$T/bmnt/main"
	tmo 60 python3 -c "$FILL_LEAVE_PY" "$SM" 11
	out=$(tmo 60 python3 -c "$BURST_PY" "$T/bmnt/main/burst")
	[ "$out" = "No space left on device" ] || fail "round $round: 16 MiB at 11 MiB free: $out"
	rm -f "$SM/filler"
	t=$(probe "$T/bmnt/main")
	_it_alive "$bpid" || fail "round $round: branchd died"
	! grep -q '^branchd: rocksdb: write' "$logf" ||
		fail "round $round: RocksDB met the full disk past the reserve: $(grep -m 1 '^branchd: rocksdb: write' "$logf")"
	within "$t" 1.0 || fail "round $round: a write took $t s after the space came back (1 s promised)"
	log "round $round: the reserve refused the burst, a write $t s after the space came back"
	bfs_umount "$T/bmnt"
	umount "$SM"
done

SMALL=$T/small
it_mount_tmpfs "$SMALL" 64m
ST=$SMALL/store
M=$T/mnt

bfs_mount "$ST" "$M"
mkdir "$M/main" "$M/b1" "$M/b2"
head -c $((3 << 20)) /dev/urandom >"$T/acked"
cp "$T/acked" "$M/main/acked"
echo victim >"$M/main/victim"
echo victim >"$M/main/victim2"
sync -f "$M/main/acked" # fsync: acknowledged
want=$(md5sum <"$T/acked")

# ---- deletes at 100% full fail before RocksDB is asked
bpid=${IT_MNTPID[$M]}
logf=$(ls -t "$T"/log/branchd-mnt-*.log | head -n 1)
fill_all "$SMALL"
expect_op ENOSPC unlink "$M/main/victim"
expect_op ENOSPC rmdir "$M/b1"
! grep -q 'While appending to file' "$logf" ||
	fail "a delete at 100% full reached RocksDB and failed there: $(grep -m 1 'While appending' "$logf")"
grep -q 'every write, deletes too, fails with ENOSPC' "$logf" ||
	fail "branchd's log does not say why deletes fail: $(tail -n 3 "$logf")"
rm -f "$SMALL/filler"
t=$(probe "$M/main")
within "$t" 1.0 || fail "a write took $t s after the space came back (1 s promised)"
expect_op OK unlink "$M/main/victim"
expect_op OK rmdir "$M/b1"
_it_alive "$bpid" || fail "branchd died"
log "deletes at 100% full: ENOSPC, and writes resumed $t s after the space came back"
bfs_umount "$M"

# ---- the floor off: a delete at 100% full, on a fresh mount (RocksDB's
# memtables empty), fails in RocksDB's write-ahead log
IT_BD_ENV=(BRANCHFS_WRITE_FLOOR_KIB=0)
bfs_mount "$ST" "$M"
IT_BD_ENV=()
bpid=${IT_MNTPID[$M]}
logf=$(ls -t "$T"/log/branchd-mnt-*.log | head -n 1)
fill_all "$SMALL"
expect_op ENOSPC unlink "$M/main/victim2"
grep -q 'While appending to file: .*\.log' "$logf" ||
	fail "the delete at 100% full did not reach RocksDB's write-ahead log: the test proves nothing ($(tail -n 2 "$logf"))"
rm -f "$SMALL/filler"
t=$(probe "$M/main")
_it_alive "$bpid" || fail "branchd died after the space came back: $(tail -n 3 "$logf")"
if within "$t" 6.5; then
	log "a write succeeded $t s after the space came back (RocksDB moved to a new log file)"
else
	grep -q 'unmount and mount the store again' "$logf" ||
		fail "no write $t s after the space came back, and branchd's log does not say what to do: $(tail -n 3 "$logf")"
	expect_op ENOSPC mkdir "$M/main/d"
	_it_alive "$bpid" || fail "branchd died at a write after RocksDB's recovery"
	log "writes refused after RocksDB's recovery kept the failed log file: $(grep -o 'a write to its log file [0-9]*' "$logf" | head -n 1)"
	bfs_umount "$M"
	bfs_mount "$ST" "$M"
	t=$(probe "$M/main")
	within "$t" 1.0 || fail "writes still fail after the store was mounted again"
fi
[ "$(md5sum <"$M/main/acked")" = "$want" ] || fail "the file fsynced before the disk filled reads back different"
expect_op OK unlink "$M/main/victim2"
expect_op OK rmdir "$M/b2"
bfs_umount "$M"
log "a delete that met the full disk in RocksDB's log: branchd stayed up and everything works after the space came back"
