#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
# t67: the files of a pg_wal directory are opened for writing in direct
# I/O, and whoever reads them through the cache still sees every write that
# has returned.  Without Postgres.
#
# With the writeback cache, a commit's WAL write went to branchd only at
# fdatasync, as a writeback WRITE queued behind every other one in the
# kernel's single line of them: behind a checkpoint's writeback of
# thousands of data pages a commit waited 0.2-0.5 s (tests/bench/HISTORY.md,
# session 28).  Opened for writing, a file in a directory named pg_wal (at
# any depth: 15/main/pg_wal too) now sends each write(2) to branchd at once.
# Seen here without timing: a branch made while the writer still holds its
# write unsynced has it (before, such a write stayed in the kernel's cache
# and the branch had zeros).  Readers (recovery, walsenders) keep the cache
# and its readahead: a reader's cached pages and a shared read-only mapping
# show each direct write once it has returned.  Files outside pg_wal keep
# the cache for writing; what the kernel holds dirty of the parent's files
# when a branch of it is made (mkdir, branchctl create, reset) is written
# back first (fs_branch_flush): a write to a file still open, and a store
# through a shared mapping, are in the branch (before, the branch had the
# file at its old size: empty, or zeros there).
source "$(dirname "$0")/lib.sh"
it_init
BRANCHCTL=${BRANCHCTL:-$IT_ROOT/bin/branchctl}
ctl_require

bfs_mount "$STORE" "$MNT"
mkdir "$MNT/main" || fail "mkdir main"
mkdir -p "$MNT/main/pg_wal" "$MNT/main/base" "$MNT/main/15/main/pg_wal" || fail "mkdir in main"

log "unsynced writes to pg_wal files reach the store at write(2)"
tmo 60 python3 - "$MNT" <<'PY' || fail "direct writes of pg_wal files (see above)"
import os, sys
mnt = sys.argv[1]
seg = "000000010000000000000001"
paths = [f"{mnt}/main/pg_wal/{seg}", f"{mnt}/main/15/main/pg_wal/{seg}",
         f"{mnt}/main/base/16384"]
fds = []
for p in paths:
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.pwrite(fd, b"\0" * (1 << 20), 0)
    os.fsync(fd)
    os.pwrite(fd, b"commit-1".ljust(8192, b"."), 8192)  # not synced
    fds.append(fd)
os.mkdir(f"{mnt}/b1")  # a branch of main while the writes are unsynced
bad = []
for p in paths:
    q = p.replace("/main/", "/b1/", 1)
    with open(q, "rb") as f:
        f.seek(8192)
        got = f.read(8)
    if got != b"commit-1":
        bad.append(f"{q}: {got!r} at 8192, want b'commit-1' (the write held in the kernel's cache)")
for fd in fds:
    os.close(fd)
if bad:
    sys.exit("\n".join(bad))
print("the pg_wal files' and a data file's unsynced writes are in the branch")
PY

log "what the kernel holds dirty is in a branch made by mkdir, create and reset"
mkdir "$MNT/r1" || fail "mkdir r1"
tmo 60 python3 - "$MNT" "$BRANCHCTL" <<'PY' || fail "dirty pages of the parent missing from a new branch (see above)"
import mmap, os, subprocess, sys
mnt, ctl = sys.argv[1], sys.argv[2]
bad = []
def check(branch, what, path, off, want):
    q = f"{mnt}/{branch}/{path}"
    try:
        with open(q, "rb") as f:
            f.seek(off)
            got = f.read(len(want))
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        got, size = repr(e), -1
    if got != want:
        bad.append(f"{what}: {q} has {got[:24]!r} at {off} (size {size}), want {want[:24]!r}")
def holder(f, g, how):
    # Another process writes and holds: any close(2) of a descriptor of
    # the file writes its dirty pages back, and a process that spawns
    # branchctl closes its copies of them in the child.
    rd, wr = os.pipe()
    rd2, wr2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        os.close(wr2)
        fd = os.open(f"{mnt}/main/{f}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.pwrite(fd, f"held-{how}".encode().ljust(20000, b"h"), 0)
        mfd = os.open(f"{mnt}/main/{g}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.pwrite(mfd, b"\0" * 65536, 0)
        os.fsync(mfd)
        m = mmap.mmap(mfd, 65536)
        os.close(mfd)
        m[40960:40960 + 16] = f"mapped-{how}".encode().ljust(16, b"m")
        os.write(wr, b"1")
        os.read(rd2, 1)
        os._exit(0)
    os.close(wr)
    os.close(rd2)
    if os.read(rd, 1) != b"1":
        sys.exit("the writer failed")
    os.close(rd)
    return pid, wr2
for rnd, how in enumerate(("mkdir", "create", "reset")):
    # a file written and held open, a page stored through a shared
    # mapping of a file whose descriptor is closed
    f, g = f"base/held{rnd}", f"base/mapped{rnd}"
    pid, go = holder(f, g, how)
    br = f"c{rnd}" if how != "reset" else "r1"
    if how == "mkdir":
        os.mkdir(f"{mnt}/{br}")
    else:
        args = ["create", br] if how == "create" else ["reset", br]
        r = subprocess.run([ctl, "--mount", mnt, *args, "--no-checkpoint"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode:
            bad.append(f"branchctl {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    check(br, f"{how}: a write held open", f, 0, f"held-{how}".encode().ljust(20000, b"h"))
    check(br, f"{how}: a store through a mapping", g, 40960, f"mapped-{how}".encode().ljust(16, b"m"))
    os.close(go)
    os.waitpid(pid, 0)
if bad:
    sys.exit("\n".join(bad))
print("3 of 3 branches (mkdir, branchctl create, reset) hold the parent's dirty pages")
PY

log "cached readers see every returned direct write"
tmo 60 python3 - "$MNT" <<'PY' || fail "readers of a pg_wal file see stale pages (see above)"
import mmap, os, sys
mnt = sys.argv[1]
p = f"{mnt}/main/pg_wal/000000010000000000000002"
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
os.pwrite(fd, b"z" * (4 << 20), 0)
os.fsync(fd)
os.close(fd)
r = os.open(p, os.O_RDONLY)
assert os.pread(r, 65536, 0) == b"z" * 65536  # cached, with readahead
m = mmap.mmap(r, 4 << 20, mmap.MAP_SHARED, mmap.PROT_READ)
assert m[3 << 20] == ord("z")
w = os.open(p, os.O_RDWR)
bad = []
for rnd in range(50):
    for off in (0, 8192 * (rnd + 1), 1 << 20, 3 << 20):
        data = f"r{rnd}o{off}".encode().ljust(8192, b"-")
        os.pwrite(w, data, off)
        # the mapping first: a read(2) may revalidate the whole cache
        if m[off:off + 16] != data[:16]:
            bad.append(f"mapping at {off} round {rnd}: {m[off:off + 16]!r}, want {data[:16]!r}")
        got = os.pread(r, 8192, off)
        if got != data:
            bad.append(f"read at {off} round {rnd}: {got[:16]!r}, want {data[:16]!r}")
os.fdatasync(w)
m.close()
os.close(w)
os.close(r)
r = os.open(p, os.O_RDONLY)  # a new reader after the writer closed
got = os.pread(r, 8192, 3 << 20)
os.close(r)
if not got.startswith(b"r49o"):
    bad.append(f"new reader at 3 MiB: {got[:16]!r}")
if bad:
    sys.exit("\n".join(bad[:10]) + f"\n({len(bad)} stale reads)")
print("reads and a shared mapping followed 200 direct writes")
PY

log "the data survive a remount"
bfs_umount "$MNT"
bfs_mount "$STORE" "$MNT"
tmo 30 python3 - "$MNT" <<'PY' || fail "pg_wal data after remount"
import sys
mnt = sys.argv[1]
with open(f"{mnt}/main/pg_wal/000000010000000000000002", "rb") as f:
    f.seek(3 << 20)
    got = f.read(4)
if got != b"r49o":
    sys.exit(f"after remount: {got!r} at 3 MiB")
PY
log "ok"
