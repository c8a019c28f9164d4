#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
# t24: power cuts without Postgres.  branchd runs under tests/powercut's
# LD_PRELOAD library; a "power cut" is kill -9 of branchd, then the store is
# rewritten as it was at each file's last fsync (powercut_image.py ...
# synced: no unsynced byte survives, the outcome a test can predict).
#  1. With the periodic commit off (-o commit=0): a file fsynced, a branch
#     made by mkdir plus an fsync of the branch root, and a rename made
#     durable by an fsync of its directory survive; a file written and
#     closed without fsync and a branch made without one are gone (so the
#     cut is real: a kill -9 alone would keep them).
#  2. With -o commit=1: the same unsynced file and branch survive once a
#     commit has passed, and so does a file still open whose data sync(1)
#     pushed out of the kernel's cache (FUSE hands syncfs to no daemon, so
#     only the periodic commit makes it durable).
#  3. A write that came after the last commit is gone, one before it stays:
#     the commit bounds what a cut takes, it does not make every write
#     durable at once.
#  4. After a cut, the first record of the fsync journal (synced by the
#     first of two fsyncs, so the second one's records carry a durable mark
#     past it) is damaged, as by a bad sector: branchd refuses the store in
#     one line naming the journal, and leaves the file as it is (before, it
#     opened the store without both fsynced files); moved aside, the store
#     opens without them.
#  0. First, the library itself: a process that dies while the library
#     copies a file it is about to write for the first time (its baseline,
#     here cut short by a 1 MiB file size limit) leaves the file as it was;
#     a partial copy had been taken for the file's synced content, and a
#     cut soon after a store's open cut its 16 MiB journal short (refused
#     as damaged).
#     And a shadow is one file's, not its inode number's: a process killed
#     just after it created a file (here: no descriptor left for the new
#     file's shadow) that took the number of one it had synced and deleted
#     leaves the new file empty; the old file's shadow had been taken for
#     the new one's, which came back with the old one's content (a new
#     RocksDB WAL file holding a deleted one's batches, powercut_store).
source "$(dirname "$0")/lib.sh"
it_init

PCLIB=$IT_ROOT/build/powercut.so
PCIMG=$IT_ROOT/tests/powercut/powercut_image.py
SHADOW=$T/shadow
[ -f "$PCLIB" ] || fail "$PCLIB is missing: make build/powercut.so (make check-integration builds it)"

# cut_mount OPTS: mount under powercut.so with a fresh shadow
cut_mount() {
	rm -rf "$SHADOW"
	IT_BD_ENV=(LD_PRELOAD="$PCLIB" POWERCUT_DIR="$STORE" POWERCUT_SHADOW="$SHADOW")
	bfs_mount "$STORE" "$MNT" "$1"
	IT_BD_ENV=()
}

# cut_power: kill -9 branchd and keep of its store only what was synced
cut_power() {
	local pid=${IT_MNTPID[$MNT]}
	kill -KILL "$pid" 2>/dev/null || true # phase 2 kills it itself
	_it_wait_gone "$pid" 20 || fail "branchd $pid survived kill -9"
	tmo 30 fusermount3 -uz "$MNT" || fail "fusermount3 -uz $MNT failed"
	python3 "$PCIMG" "$STORE" "$SHADOW" 1 synced >"$T/log/cut-$1.out" 2>&1 ||
		fail "powercut_image.py failed: $(cat "$T/log/cut-$1.out")"
	log "$(cut -c1-300 "$T/log/cut-$1.out")"
	grep -q ' [1-9][0-9]* changed since their last fsync' "$T/log/cut-$1.out" ||
		fail "the cut found nothing unsynced in the store: it would prove nothing"
}

py() { python3 -c "$@"; }
# put PATH TEXT [fsync]: write TEXT to PATH, fsync it if asked, close
put() {
	py 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, sys.argv[2].encode())
if len(sys.argv) > 3: os.fsync(fd)
os.close(fd)' "$@"
}
# wal_put PATH TEXT [FLAG]: write TEXT to a new file PATH opened with os.FLAG
# (O_DSYNC, O_SYNC), and no fsync, as Postgres writes WAL with
# wal_sync_method open_datasync or open_sync
wal_put() {
	py 'import os, sys
extra = getattr(os, sys.argv[3]) if len(sys.argv) > 3 else 0
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | extra, 0o600)
os.write(fd, sys.argv[2].encode())
os.close(fd)' "$@"
}
dirsync() { py 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd)' "$1"; }
expect_content() { # PATH TEXT
	local got
	got=$(cat "$1" 2>&1) || fail "$1 is gone after the power cut ($got)"
	[ "$got" = "$2" ] || fail "$1 holds '$got' after the power cut, expected '$2'"
}
expect_gone() { [ ! -e "$1" ] || fail "$1 survived the power cut without any sync: $(cat "$1" 2>&1 | head -c 80)"; }

# ---- 0. the library's first copy of a file is all or nothing ----
mkdir "$T/pc0"
head -c 4194304 /dev/urandom >"$T/pc0/file"
sum0=$(md5sum <"$T/pc0/file")
rc=0
(
	ulimit -f 1024
	LD_PRELOAD="$PCLIB" POWERCUT_DIR="$T/pc0" POWERCUT_SHADOW="$T/pc0.shadow" \
		python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"x", 0)' "$T/pc0/file"
) >"$T/log/pc0.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q 'shadow pwrite' "$T/log/pc0.out" ||
	fail "the writer under a 1 MiB file size limit did not die copying the 4 MiB file (rc $rc): $(head -c 300 "$T/log/pc0.out")"
python3 "$PCIMG" "$T/pc0" "$T/pc0.shadow" 1 synced >>"$T/log/pc0.out" 2>&1 || true
[ "$(md5sum <"$T/pc0/file")" = "$sum0" ] ||
	fail "a writer killed while the library copied the file left it changed ($(stat -c %s "$T/pc0/file") bytes of 4194304): a partial copy was taken for its synced content"
log "library: a writer killed during the first copy of a file leaves the file as it was"
# 0b: the new file must get the deleted one's inode number (the lowest free
# one in its group, usually); another process freeing a lower one in
# between makes the try prove nothing: try again
reused=0
for try in 1 2 3 4 5 6 7 8 9 10; do
	d=$T/pc1.$try
	mkdir "$d"
	LD_PRELOAD="$PCLIB" POWERCUT_DIR="$d" POWERCUT_SHADOW="$d.shadow" python3 -c 'import os, resource, sys
old, new = sys.argv[1] + "/old", sys.argv[1] + "/new"
fd = os.open(old, os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"old, synced")
os.fsync(fd)
print(os.fstat(fd).st_ino, flush=True)
os.close(fd)
os.unlink(old)
low = os.open("/dev/null", os.O_RDONLY)  # the lowest free descriptor
os.close(low)
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (low + 1, hard))
os.open(new, os.O_WRONLY | os.O_CREAT, 0o644)
print("not killed")' "$d" >"$d.out" 2>&1 && fail "the writer out of descriptors survived creating a file: $(cat "$d.out")"
	grep -q 'create shadow.*Too many open files' "$d.out" ||
		fail "the writer did not die creating the new file's shadow: $(head -c 300 "$d.out")"
	[ "$(stat -c %i "$d/new")" = "$(head -n1 "$d.out")" ] || continue
	reused=1
	python3 "$PCIMG" "$d" "$d.shadow" 1 synced >>"$d.out" 2>&1 || true
	[ ! -s "$d/new" ] ||
		fail "a file created just before the cut came back with the content of a deleted file that had its inode number: '$(head -c 80 "$d/new")'"
	break
done
[ $reused = 1 ] || fail "in 10 tries, no new file got the inode number of the file deleted just before: the test proved nothing"
log "library: a file killed at its creation, with a deleted file's inode number, stays empty (try $try)"

# ---- 1. commit off: only what was fsynced survives ----
cut_mount commit=0
mkdir "$MNT/main"
dirsync "$MNT"
mkdir "$MNT/main/pg_wal"
put "$MNT/main/synced" "one" fsync
put "$MNT/main/moved.tmp" "two" fsync
mv "$MNT/main/moved.tmp" "$MNT/main/moved"
dirsync "$MNT/main"
mkdir "$MNT/kept"
dirsync "$MNT"
# a WAL file's write with O_DSYNC or O_SYNC is durable when it returns (a
# pg_wal file open for writing is direct I/O: the kernel sends no FSYNC)
wal_put "$MNT/main/pg_wal/dsync" ten O_DSYNC
wal_put "$MNT/main/pg_wal/osync" eleven O_SYNC
put "$MNT/main/unsynced" "three"
wal_put "$MNT/main/pg_wal/plain" twelve
mkdir "$MNT/lost"
sleep 2
cut_power off
bfs_mount "$STORE" "$MNT" commit=0
expect_content "$MNT/main/synced" one
expect_content "$MNT/main/moved" two
[ ! -e "$MNT/main/moved.tmp" ] || fail "moved.tmp is back after its rename was made durable"
[ -d "$MNT/kept" ] || fail "branch kept (mkdir + fsync of the root) is gone after the power cut"
expect_gone "$MNT/main/unsynced"
expect_gone "$MNT/lost"
expect_content "$MNT/main/pg_wal/dsync" ten
expect_content "$MNT/main/pg_wal/osync" eleven
expect_gone "$MNT/main/pg_wal/plain"
log "commit off: fsynced file, rename and branch survived, and WAL writes with O_DSYNC and O_SYNC; unsynced file, WAL write and branch are gone"
bfs_umount

# ---- 2. commit=1: unsynced writes survive once a commit has passed ----
cut_mount commit=1
put "$MNT/main/closed" "four" # close(2) hands the data to branchd (FLUSH)
mkdir "$MNT/b2"
# a file still open: its pages wait in the kernel's writeback cache until
# sync(1) pushes them to branchd
py 'import os, subprocess, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"five")
subprocess.run(["sync"], check=True)
time.sleep(3)
print("open file written, sync(1) ran, 3 s passed")
os.kill(int(sys.argv[2]), 9)
time.sleep(0.5)' "$MNT/main/open" "${IT_MNTPID[$MNT]}" || true
# branchd is dead now: cut_power's kill finds it gone
cut_power commit
bfs_mount "$STORE" "$MNT" commit=1
expect_content "$MNT/main/closed" four
expect_content "$MNT/main/open" five
[ -d "$MNT/b2" ] || fail "branch b2 (mkdir, no fsync, then 3 s with commit=1) is gone after the power cut"
expect_content "$MNT/main/synced" one
log "commit=1: an unsynced closed file, an open file after sync(1) and an unsynced branch survived"
bfs_umount

# ---- 3. the commit bounds the loss; it is not a sync per write ----
cut_mount commit=30
put "$MNT/main/early" "six" fsync
sleep 1
put "$MNT/main/late" "seven"
cut_power bound
bfs_mount "$STORE" "$MNT"
expect_content "$MNT/main/early" six
expect_gone "$MNT/main/late"
log "commit=30: a write 1 s before the cut and after the last sync is gone, as it may be on ext4"
bfs_umount

# ---- 4. damage to synced journal records: refused, not opened without them ----
cut_mount commit=0
put "$MNT/main/j1" "eight" fsync
put "$MNT/main/j2" "nine" fsync
cut_power journal
JNL=$STORE/db/BRANCHFS-JOURNAL
py 'import struct, sys
with open(sys.argv[1], "r+b") as f:
    slots = f.read(1024)
    best = None
    for i in (0, 1):  # the valid header slot with the higher checkpoint number
        s = slots[i * 512:i * 512 + 56]
        if s[:8] == b"BFSJRNL1":
            no, start, ring = struct.unpack_from("<QQQ", s, 8)
            if best is None or no > best[0]:
                best = (no, start, ring)
    no, start, ring = best
    at = 4096 + start % ring
    f.seek(at)
    magic, ln, lsn = struct.unpack_from("<IIQ", f.read(16))
    if magic != 0x4a524642 or lsn != start:
        sys.exit("no record at the journal start (lsn %d)" % start)
    f.seek(at + 40 + ln // 2)
    b = f.read(1)[0]
    f.seek(at + 40 + ln // 2)
    f.write(bytes([b ^ 0x5a]))
    print("damaged the record at lsn %d (%d bytes)" % (lsn, ln))' "$JNL" >"$T/log/damage.out" ||
	fail "could not damage the journal: $(cat "$T/log/damage.out")"
log "$(cat "$T/log/damage.out")"
sum=$(md5sum <"$JNL")
rc=0
tmo 15 "$BRANCHD" -f "$STORE" "$MNT" >"$T/out" 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || fail "branchd on a journal with damaged synced records: exit $rc, expected 1: $(head -c 400 "$T/err")"
[ "$(grep -c . "$T/err")" -eq 1 ] || fail "expected one line on stderr, got: '$(cat "$T/err")'"
grep -qE "fsync journal '$JNL' is damaged: records from lsn [0-9]+ to [0-9]+ cannot be read.*synced up to" "$T/err" ||
	fail "the refusal does not name the journal and the lsns: $(cat "$T/err")"
[ "$(md5sum <"$JNL")" = "$sum" ] || fail "the refused open changed the journal"
log "refused: $(cat "$T/err")"
mv "$JNL" "$T/journal.aside"
bfs_mount "$STORE" "$MNT"
expect_content "$MNT/main/early" six
[ ! -e "$MNT/main/j1" ] && [ ! -e "$MNT/main/j2" ] ||
	fail "j1 or j2 is there with the journal moved aside: the damaged records were not the only copy"
log "journal moved aside: the store opens as its database holds it"
bfs_umount
log "all power-cut checks passed"
