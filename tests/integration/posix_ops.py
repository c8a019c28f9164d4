#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""posix_ops.py DIR - exercise every POSIX call Postgres makes on its data
directory, inside DIR (which must exist and be empty), and print one line per
check: "name: ok [values]" or "name: err ERRNO".

The output holds only what must be identical on any POSIX filesystem that
Postgres can trust: file types, modes, owners, link counts, sizes, contents
(as SHA-256), explicitly set timestamps and errno names.  Inode numbers,
devices, block counts and implicit timestamps are never printed, so the
output of a run on ext4 and a run in a branchfs branch can be diffed.

Run as root: the permission checks fork a child that drops to the postgres
uid (or nobody).
"""
import ctypes
import errno
import fcntl
import hashlib
import mmap
import os
import pwd
import shutil
import socket
import stat
import struct
import subprocess
import sys
import time

D = sys.argv[1]
os.chdir(D)
os.umask(0o022)
os.chmod(".", 0o755)

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
SYNC_FILE_RANGE_WRITE = 2
SYNC_FILE_RANGE_WAIT_BEFORE = 1
SYNC_FILE_RANGE_WAIT_AFTER = 4

PAGE = 8192


def ename(e):
    return errno.errorcode.get(e, str(e))


def check(name, fn):
    try:
        r = fn()
        line = "%s: ok%s" % (name, "" if r is None else " " + str(r))
    except OSError as e:
        line = "%s: err %s" % (name, ename(e.errno))
    except AssertionError as e:
        line = "%s: ASSERT %s" % (name, e)
    print(line, flush=True)


def libc_call(fn, *args):
    rc = fn(*args)
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def desc(path, follow=True):
    s = os.stat(path) if follow else os.lstat(path)
    return desc_st(s)


def desc_st(s):
    m = s.st_mode
    if stat.S_ISDIR(m):
        return "dir mode=%o uid=%d gid=%d" % (stat.S_IMODE(m), s.st_uid, s.st_gid)
    t = "file" if stat.S_ISREG(m) else "link" if stat.S_ISLNK(m) else "other%o" % stat.S_IFMT(m)
    return "%s mode=%o nlink=%d uid=%d gid=%d size=%d" % (
        t, stat.S_IMODE(m), s.st_nlink, s.st_uid, s.st_gid, s.st_size)


def content(path):
    with open(path, "rb") as f:
        b = f.read()
    return "len=%d sha=%s" % (len(b), sha(b))


def pat(n, seed):
    b = bytes((i * 7 + seed) & 0xFF for i in range(256))
    return (b * (n // 256 + 1))[:n]


def put(path, data, mode=0o600):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    os.write(fd, data)
    os.close(fd)


# ---- open / create -----------------------------------------------------------

def t_create_excl():
    fd = os.open("f1", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    os.close(fd)
    return desc("f1")


def t_create_excl_again():
    os.open("f1", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)


def t_open_missing():
    os.open("nope", os.O_RDONLY)


def t_open_creat_existing():
    put("f2", b"keep me")
    fd = os.open("f2", os.O_CREAT | os.O_RDWR, 0o644)
    os.close(fd)
    return content("f2") + " " + desc("f2")


def t_trunc():
    put("f3", pat(3 * PAGE, 1))
    fd = os.open("f3", os.O_RDWR | os.O_TRUNC)
    st = os.fstat(fd)
    os.close(fd)
    return "fstat_size=%d %s" % (st.st_size, content("f3"))


def t_append():
    put("f4", b"0123")
    fd = os.open("f4", os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"abc")
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"def")
    os.close(fd)
    with open("f4", "rb") as f:
        return f.read().decode()


def t_open_dir_flags():
    put("f5", b"x")
    r = []
    for name, path, flags in (("odirectory_on_file", "f5", os.O_RDONLY | os.O_DIRECTORY),
                              ("wronly_on_dir", ".", os.O_WRONLY),
                              ("creat_on_dir", ".", os.O_CREAT | os.O_RDWR),
                              ("excl_on_dir", ".", os.O_CREAT | os.O_EXCL | os.O_RDWR),
                              ("missing_parent", "nodir/x", os.O_CREAT | os.O_RDWR),
                              ("file_as_dir", "f5/x", os.O_CREAT | os.O_RDWR)):
        try:
            fd = os.open(path, flags, 0o600)
            os.close(fd)
            r.append(name + "=ok")
        except OSError as e:
            r.append(name + "=" + ename(e.errno))
    return " ".join(r)


def t_name_max():
    fd = os.open("n" * 255, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    r = "255=ok"
    try:
        os.open("n" * 256, os.O_CREAT | os.O_RDWR, 0o600)
        r += " 256=ok"
    except OSError as e:
        r += " 256=" + ename(e.errno)
    os.unlink("n" * 255)
    return r


# ---- pread / pwrite / truncate / fallocate -----------------------------------

def t_pwrite_pread():
    fd = os.open("rel", os.O_CREAT | os.O_RDWR, 0o600)
    os.pwrite(fd, pat(PAGE, 2), 0)
    os.pwrite(fd, pat(PAGE, 3), 3 * PAGE)          # leaves a hole of two pages
    os.pwrite(fd, b"mid", PAGE + 100)               # small write inside the hole
    os.pwrite(fd, pat(100, 4), 3 * PAGE + 8000)     # crosses the end of file
    size = os.fstat(fd).st_size
    whole = os.pread(fd, 10 * PAGE, 0)
    hole = os.pread(fd, PAGE, 2 * PAGE)
    eof = os.pread(fd, 100, size)
    part = os.pread(fd, 1000, size - 50)
    os.close(fd)
    return "size=%d whole=%s hole_zero=%s eof_len=%d part_len=%d" % (
        size, sha(whole), hole == bytes(PAGE), len(eof), len(part))


def t_unaligned():
    fd = os.open("unal", os.O_CREAT | os.O_RDWR, 0o600)
    for i in range(50):
        os.pwrite(fd, pat(1000 + i, i), i * 777)
    data = os.pread(fd, 1 << 20, 0)
    os.close(fd)
    return "size=%d sha=%s" % (len(data), sha(data))


def t_big_sequential():
    data = pat(3 << 20, 9)
    fd = os.open("big", os.O_CREAT | os.O_RDWR, 0o600)
    off = 0
    while off < len(data):
        off += os.write(fd, data[off:off + 131072])
    os.fsync(fd)
    os.close(fd)
    with open("big", "rb") as f:
        back = f.read()
    return "len=%d same=%s" % (len(back), back == data)


def t_segment_boundary():
    # a 1 GiB Postgres segment: write across the 1 GiB boundary of a sparse file
    fd = os.open("seg", os.O_CREAT | os.O_RDWR, 0o600)
    off = (1 << 30) - 4096
    os.pwrite(fd, pat(PAGE, 5), off)
    size = os.fstat(fd).st_size
    back = os.pread(fd, PAGE, off)
    before = os.pread(fd, PAGE, off - PAGE)
    os.close(fd)
    return "size=%d same=%s zeros_before=%s" % (size, back == pat(PAGE, 5), before == bytes(PAGE))


def t_ftruncate():
    fd = os.open("tr", os.O_CREAT | os.O_RDWR, 0o600)
    os.pwrite(fd, pat(5 * PAGE, 6), 0)
    r = []
    os.ftruncate(fd, 100000)
    r.append("up=%d tail_zero=%s" % (os.fstat(fd).st_size, os.pread(fd, 100000 - 5 * PAGE, 5 * PAGE) == bytes(100000 - 5 * PAGE)))
    os.ftruncate(fd, 5000)
    r.append("down=%d" % os.fstat(fd).st_size)
    os.ftruncate(fd, 3 * PAGE)
    # data cut off by the shrink must not come back when the file grows again
    regrown = os.pread(fd, 3 * PAGE, 0)
    r.append("regrow=%d keep=%s zero_after=%s" % (
        os.fstat(fd).st_size, regrown[:5000] == pat(5000, 6), regrown[5000:] == bytes(3 * PAGE - 5000)))
    os.ftruncate(fd, 0)
    r.append("zero=%d read=%d" % (os.fstat(fd).st_size, len(os.pread(fd, 10, 0))))
    os.close(fd)
    os.truncate("tr", PAGE)
    r.append("path_truncate=%d" % os.stat("tr").st_size)
    return " ".join(r)


def t_ftruncate_negative():
    fd = os.open("trn", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, -1)
    finally:
        os.close(fd)


def t_ftruncate_rdonly():
    put("tro", b"abc")
    fd = os.open("tro", os.O_RDONLY)
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def t_posix_fallocate():
    fd = os.open("pfa", os.O_CREAT | os.O_RDWR, 0o600)
    os.pwrite(fd, b"head", 0)
    os.posix_fallocate(fd, 0, 16 * PAGE)
    size1 = os.fstat(fd).st_size
    os.posix_fallocate(fd, 0, PAGE)       # inside the file: size unchanged
    size2 = os.fstat(fd).st_size
    data = os.pread(fd, 16 * PAGE, 0)
    os.close(fd)
    return "size=%d,%d head=%s rest_zero=%s" % (size1, size2, data[:4] == b"head", data[4:] == bytes(16 * PAGE - 4))


def t_fallocate_mode0():
    fd = os.open("fa", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        libc_call(libc.fallocate, fd, 0, PAGE, 4 * PAGE)
        data = os.pread(fd, 8 * PAGE, 0)
        return "size=%d zero=%s" % (os.fstat(fd).st_size, data == bytes(5 * PAGE))
    finally:
        os.close(fd)


def t_fallocate_zero_range():
    """FALLOC_FL_ZERO_RANGE, with and without KEEP_SIZE, inside the file
    and past its end (through the page cache: written, not yet synced)."""
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE = 0x01, 0x10
    fd = os.open("fz", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.pwrite(fd, pat(6 * PAGE, 11), 0)
        libc_call(libc.fallocate, fd, FALLOC_FL_ZERO_RANGE, PAGE + 100, 2 * PAGE)
        a = os.pread(fd, 6 * PAGE, 0)
        libc_call(libc.fallocate, fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 5 * PAGE, 4 * PAGE)
        size1 = os.fstat(fd).st_size
        libc_call(libc.fallocate, fd, FALLOC_FL_ZERO_RANGE, 5 * PAGE + 7, 4 * PAGE)
        size2 = os.fstat(fd).st_size
        b = os.pread(fd, 10 * PAGE, 0)
        return "size=%d,%d first=%s all=%s" % (size1, size2, sha(a), sha(b))
    finally:
        os.close(fd)


def t_fallocate_unaligned():
    """PUNCH_HOLE and ZERO_RANGE at byte offsets over ranges that touch
    two blocks of 8 KiB, longer than one block (they once read zeros past
    the end of a one-block buffer: the file got branchd's memory), inside
    the file and across its end."""
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 0x01, 0x02, 0x10
    r = []
    for name, mode, off, ln in (("punch", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * PAGE + 1, 2 * PAGE - 2),
                                ("zero", FALLOC_FL_ZERO_RANGE, 3 * PAGE + 100, PAGE + 7000),
                                ("zero_keep", FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 3 * PAGE + 3, 2 * PAGE - 10),
                                ("zero_past_eof", FALLOC_FL_ZERO_RANGE, 4 * PAGE + 5000, 3 * PAGE),
                                ("punch_past_eof", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * PAGE + 5000, 3 * PAGE)):
        fd = os.open("fu_" + name, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            os.pwrite(fd, pat(5 * PAGE, 12), 0)
            os.fsync(fd)    # the range reaches branchd as stored blocks
            libc_call(libc.fallocate, fd, mode, off, ln)
            data = os.pread(fd, 10 * PAGE, 0)
            r.append("%s=%d,%s" % (name, os.fstat(fd).st_size, sha(data)))
        finally:
            os.close(fd)
    return " ".join(r)


# ---- durability calls ---------------------------------------------------------

def t_fsync_file():
    fd = os.open("sy", os.O_CREAT | os.O_RDWR, 0o600)
    os.write(fd, pat(PAGE, 7))
    os.fsync(fd)
    os.pwrite(fd, b"x", 10)
    os.fdatasync(fd)
    os.close(fd)
    return content("sy")


def t_blocks_while_open():
    """A file written and still open in another process has st_blocks > 0
    (branchd sees the data only when the kernel writes it back): GNU tar
    --sparse archives a file of a non-zero size in 0 blocks as all hole,
    without reading it.  The writer is a child, so that neither stat nor
    tar runs in a process that has the file open (its exit or exec would
    close the file, and a close writes the data back)."""
    data = pat(256 << 10, 14)
    rd, wr = os.pipe()
    rd2, wr2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        os.close(wr2)
        fd = os.open("bo", os.O_CREAT | os.O_RDWR, 0o600)
        os.write(fd, data)
        os.write(wr, b"w")
        os.read(rd2, 1)
        os.close(fd)
        os._exit(0)
    os.close(wr)
    os.close(rd2)
    try:
        assert os.read(rd, 1) == b"w", "the writer died"
        s1 = os.stat("bo")
        time.sleep(1.2)     # past the attribute timeout: the kernel asks again
        s2 = os.stat("bo")
        tar = "no tar"
        if shutil.which("tar"):
            arch = subprocess.run(["tar", "-cSf", "-", "bo"], stdout=subprocess.PIPE, check=True).stdout
            back = subprocess.run(["tar", "-xOf", "-"], input=arch, stdout=subprocess.PIPE, check=True).stdout
            tar = "same" if back == data else "differs(len=%d zero=%s)" % (len(back), back == bytes(len(back)))
    finally:
        os.write(wr2, b"c")
        os.close(wr2)
        os.close(rd)
        os.waitpid(pid, 0)
    s3 = os.stat("bo")
    return "size=%d blocks_pos=%s,%s tar_sparse=%s closed_blocks_ge_size=%s" % (
        s1.st_size, s1.st_blocks > 0, s2.st_blocks > 0, tar, s3.st_blocks * 512 >= s3.st_size)


def t_fsync_rdonly():
    fd = os.open("sy", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def t_sync_file_range():
    fd = os.open("sfr", os.O_CREAT | os.O_RDWR, 0o600)
    os.write(fd, pat(4 * PAGE, 8))
    libc_call(libc.sync_file_range, fd, 0, 0, SYNC_FILE_RANGE_WRITE)
    libc_call(libc.sync_file_range, fd, PAGE, PAGE,
              SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER)
    os.close(fd)
    return content("sfr")


def t_fsync_dir():
    os.mkdir("sd")
    fd = os.open("sd", os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
    fd = os.open(".", os.O_RDONLY)
    os.fsync(fd)
    os.fdatasync(fd)
    os.close(fd)


def t_syncfs():
    fd = os.open(".", os.O_RDONLY)
    try:
        libc_call(libc.syncfs, fd)
    finally:
        os.close(fd)


# ---- rename / unlink / link / symlink -----------------------------------------

def t_rename_over():
    put("r1", b"new contents")
    put("r2", b"old contents")
    fd = os.open("r2", os.O_RDONLY)
    os.rename("r1", "r2")
    old = os.pread(fd, 100, 0)
    os.close(fd)
    gone = not os.path.exists("r1")
    return "%s old_fd=%s r1_gone=%s %s" % (content("r2"), old.decode(), gone, desc("r2"))


def t_rename_cases():
    os.makedirs("rd/a/sub")
    os.makedirs("rd/b")
    os.makedirs("rd/c")
    put("rd/f", b"f")
    put("rd/a/sub/x", b"x")
    r = []
    for name, a, b in (("dir_over_nonempty", "rd/c", "rd/a"),
                       ("dir_over_empty", "rd/c", "rd/b"),
                       ("file_over_dir", "rd/f", "rd/b"),
                       ("dir_over_file", "rd/b", "rd/f"),
                       ("missing_src", "rd/zz", "rd/yy"),
                       ("into_own_sub", "rd/a", "rd/a/sub/y"),
                       ("cross_dir", "rd/a/sub/x", "rd/b/x2"),
                       ("self", "rd/f", "rd/f"),
                       ("dir_rename", "rd/a", "rd/a2")):
        try:
            os.rename(a, b)
            r.append(name + "=ok")
        except OSError as e:
            r.append(name + "=" + ename(e.errno))
    r.append("tree=" + ",".join(sorted(
        os.path.join(dp, n) for dp, dns, fns in os.walk("rd") for n in dns + fns)))
    return " ".join(r)


def t_unlink_open():
    put("u1", pat(2 * PAGE, 11))
    fd = os.open("u1", os.O_RDWR)
    os.unlink("u1")
    st = os.fstat(fd)
    os.pwrite(fd, b"still here", 0)
    back = os.pread(fd, 10, 0)
    listed = "u1" in os.listdir(".")
    os.fsync(fd)
    os.close(fd)
    return "nlink=%d size=%d rw=%s listed=%s exists=%s" % (
        st.st_nlink, st.st_size, back == b"still here", listed, os.path.exists("u1"))


def t_unlink_errors():
    os.mkdir("ud")
    r = []
    for name, fn in (("unlink_dir", lambda: os.unlink("ud")),
                     ("unlink_missing", lambda: os.unlink("nothing")),
                     ("unlink_in_file", lambda: os.unlink("sy/x"))):
        try:
            fn()
            r.append(name + "=ok")
        except OSError as e:
            r.append(name + "=" + ename(e.errno))
    return " ".join(r)


def t_link():
    put("l1", b"linked")
    os.link("l1", "l2")
    a = desc("l1")
    fd = os.open("l2", os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"+more")
    os.close(fd)
    c1 = content("l1")
    os.unlink("l1")
    r = "%s via_l1=%s after_unlink=%s" % (a, c1, desc("l2"))
    for name, a_, b_ in (("exists", "l2", "f2"), ("dir", "sd", "sdlink"), ("missing", "zz", "l3")):
        try:
            os.link(a_, b_)
            r += " %s=ok" % name
        except OSError as e:
            r += " %s=%s" % (name, ename(e.errno))
    return r


def t_symlink():
    os.mkdir("tbs")
    put("tbs/PG_VERSION", b"15\n")
    os.mkdir("pg_tblspc")
    os.symlink("../tbs", "pg_tblspc/16384")
    r = [os.readlink("pg_tblspc/16384"), desc("pg_tblspc/16384", follow=False).split(" size")[0],
         content("pg_tblspc/16384/PG_VERSION"), str(os.listdir("pg_tblspc/16384"))]
    os.symlink("dangling/target", "dl")
    for name, fn in (("stat_dangling", lambda: os.stat("dl")),
                     ("readlink_file", lambda: os.readlink("f2")),
                     ("symlink_exists", lambda: os.symlink("x", "f2")),
                     ("readlink_missing", lambda: os.readlink("nothing"))):
        try:
            fn()
            r.append(name + "=ok")
        except OSError as e:
            r.append(name + "=" + ename(e.errno))
    r.append("lstat_size=%d" % os.lstat("dl").st_size)
    os.unlink("pg_tblspc/16384")
    r.append("tbs_kept=%s" % os.path.exists("tbs/PG_VERSION"))
    return " ".join(r)


# ---- directories ------------------------------------------------------------------

def t_mkdir_rmdir():
    r = []
    os.mkdir("md", 0o700)
    r.append(desc("md"))
    put("md/x", b"x")
    for name, fn in (("mkdir_exists", lambda: os.mkdir("md")),
                     ("mkdir_over_file", lambda: os.mkdir("f2")),
                     ("mkdir_no_parent", lambda: os.mkdir("nodir/x")),
                     ("rmdir_nonempty", lambda: os.rmdir("md")),
                     ("rmdir_file", lambda: os.rmdir("f2")),
                     ("rmdir_dot", lambda: os.rmdir("md/.")),
                     ("unlink_then_rmdir", lambda: (os.unlink("md/x"), os.rmdir("md"))),
                     ("rmdir_again", lambda: os.rmdir("md"))):
        try:
            fn()
            r.append(name + "=ok")
        except OSError as e:
            r.append(name + "=" + ename(e.errno))
    os.makedirs("deep/a/b/c/d/e", 0o750)
    r.append(desc("deep/a/b/c/d/e"))
    return " ".join(r)


def t_readdir():
    os.mkdir("rdir")
    names = ["%05d" % i for i in range(300)]
    for n in names:
        put("rdir/" + n, n.encode())
    for n in names[::3]:
        os.unlink("rdir/" + n)
    os.mkdir("rdir/sub")
    os.symlink("00001", "rdir/sym")
    entries = sorted((e.name, "d" if e.is_dir(follow_symlinks=False) else
                      "l" if e.is_symlink() else "f") for e in os.scandir("rdir"))
    fd = os.open("rdir", os.O_RDONLY | os.O_DIRECTORY)
    via_fd = sorted(os.listdir(fd))
    os.close(fd)
    h = sha(repr(entries).encode())
    return "n=%d sha=%s fd_same=%s" % (len(entries), h, via_fd == sorted(e[0] for e in entries))


def t_readdir_errors():
    os.listdir("f2")


def t_readdir_while_changing():
    os.mkdir("rw")
    for i in range(100):
        put("rw/%03d" % i, b"")
    seen = set()
    with os.scandir("rw") as it:
        for i, e in enumerate(it):
            seen.add(e.name)
            if i == 10:
                put("rw/new", b"")
    # every entry present for the whole loop must have been seen exactly once
    return "all_old_seen=%s" % all("%03d" % i in seen for i in range(100))


def t_rewinddir():
    """A rewind (lseek to 0, rewinddir(3)) shows the directory as it is
    now: a clean-up loop that unlinks what it reads and rewinds until the
    directory reads empty must end with an empty directory."""
    os.mkdir("rwd")
    fd = os.open("rwd", os.O_RDONLY | os.O_DIRECTORY)
    first = sorted(os.listdir(fd))
    put("rwd/a", b"")
    put("rwd/b", b"")
    os.lseek(fd, 0, os.SEEK_SET)
    second = sorted(os.listdir(fd))
    os.unlink("rwd/a")
    put("rwd/c", b"")
    os.lseek(fd, 0, os.SEEK_SET)
    third = sorted(os.listdir(fd))
    os.close(fd)
    libc.opendir.restype = ctypes.c_void_p
    libc.opendir.argtypes = [ctypes.c_char_p]
    libc.readdir.restype = ctypes.c_void_p
    libc.readdir.argtypes = [ctypes.c_void_p]
    libc.rewinddir.argtypes = [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]
    dp = libc.opendir(b"rwd")
    assert dp, "opendir failed"
    rounds = 0
    while True:
        names = []
        while True:
            ent = libc.readdir(dp)
            if not ent:
                break
            # struct dirent64: d_ino 8, d_off 8, d_reclen 2, d_type 1, d_name
            names.append(ctypes.string_at(ent + 19).decode())
        names = [n for n in names if n not in (".", "..")]
        if not names or rounds == 5:
            break
        for n in names:
            os.unlink("rwd/" + n)
        libc.rewinddir(dp)
        rounds += 1
    libc.closedir(dp)
    return "first=%s second=%s third=%s cleanup_rounds=%d left=%s" % (
        first, second, third, rounds, sorted(os.listdir("rwd")))


def t_statfs():
    s = os.statvfs(".")
    return "namemax=%d bsize_pos=%s blocks_pos=%s avail_le_free=%s free_le_blocks=%s files_pos=%s" % (
        s.f_namemax, s.f_bsize > 0, s.f_blocks > 0, s.f_bavail <= s.f_bfree,
        s.f_bfree <= s.f_blocks, s.f_files > 0)


# ---- attributes ----------------------------------------------------------------------

def t_utimens():
    put("ut", b"t")
    os.utime("ut", ns=(1600000000123456789, 1500000000987654321))
    s = os.stat("ut")
    r = "atime=%d mtime=%d" % (s.st_atime_ns, s.st_mtime_ns)
    fd = os.open("ut", os.O_RDWR)
    os.utime(fd, ns=(1400000000000000001, 1300000000000000002))
    s = os.fstat(fd)
    os.close(fd)
    r += " f_atime=%d f_mtime=%d" % (s.st_atime_ns, s.st_mtime_ns)
    os.mkdir("utd")
    os.utime("utd", ns=(1200000000000000003, 1100000000000000004))
    s = os.stat("utd")
    r += " d_mtime=%d" % s.st_mtime_ns
    before = time.time_ns()
    os.utime("ut")                         # UTIME_NOW
    s = os.stat("ut")
    r += " now_recent=%s" % (s.st_mtime_ns >= before - 2_000_000_000)
    return r


def t_mtime_moves():
    put("mt", b"a")
    os.utime("mt", ns=(1000000000000000000, 1000000000000000000))
    fd = os.open("mt", os.O_WRONLY)
    os.pwrite(fd, b"b", 0)
    os.close(fd)
    s = os.stat("mt")
    return "mtime_updated_by_write=%s" % (s.st_mtime_ns > 1000000000000000000)


def t_times_not_backwards():
    """A write(2) never moves a file's mtime or ctime backwards, also right
    after the file was made: the kernel stamps a write with its coarse
    clock (the last tick), and branchd once stamped a new file with the
    fine clock, so the write in the same tick made the new file older than
    it was created, every time (make, pollers comparing mtimes)."""
    back = {}
    for i in range(40):
        fd = os.open("tb", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        for what, change in (("create", None), ("fchmod", lambda: os.fchmod(fd, 0o640)),
                             ("ftruncate", lambda: os.ftruncate(fd, 0))):
            if change:
                change()
            s0 = os.fstat(fd)
            os.write(fd, b"x")
            s1 = os.fstat(fd)
            back[what] = back.get(what, 0) + (s1.st_mtime_ns < s0.st_mtime_ns or s1.st_ctime_ns < s0.st_ctime_ns)
        os.close(fd)
        os.unlink("tb")
    return " ".join("%s_backwards=%d" % kv for kv in sorted(back.items()))


def t_chmod_chown():
    put("cm", b"c", 0o644)
    r = []
    os.chmod("cm", 0o640)
    r.append(desc("cm"))
    fd = os.open("cm", os.O_RDONLY)
    os.fchmod(fd, 0o600)
    os.close(fd)
    r.append(desc("cm"))
    os.mkdir("cmd", 0o755)
    os.chmod("cmd", 0o2750)
    if os.geteuid() != 0:
        # an unprivileged owner: chown to itself, chgrp to one of its groups
        uid, gid = os.getuid(), os.getgid()
        os.chown("cm", uid, gid)
        r.append("self=" + desc("cm").replace("uid=%d gid=%d" % (uid, gid), "uid=me gid=mine"))
        others = [g for g in os.getgroups() if g != gid]
        if others:
            os.chown("cm", -1, others[0])
            r.append("chgrp_supplementary=%s" % (os.stat("cm").st_gid == others[0]))
        for name, fn in (("chown_to_root", lambda: os.chown("cm", 0, -1)),
                         ("chgrp_foreign", lambda: os.chown("cm", -1, 0))):
            try:
                fn()
                r.append(name + "=ok")
            except OSError as e:
                r.append(name + "=" + ename(e.errno))
        return " | ".join(r)
    os.chown("cm", 999, 998)
    r.append(desc("cm"))
    os.chown("cm", -1, 0)
    r.append(desc("cm"))
    os.chown("cmd", 101, 104)
    r.append(desc("cmd"))
    os.symlink("cm", "cml")
    os.lchown("cml", 5, 6)
    s = os.lstat("cml")
    r.append("link_owner=%d:%d target=%s" % (s.st_uid, s.st_gid, desc("cm")))
    return " | ".join(r)


def t_suid_cleared_on_chown():
    put("sg", b"s", 0o755)
    os.chmod("sg", 0o4755)
    os.chown("sg", 1, 1)
    return desc("sg")


def t_suid_cleared_on_trunc_and_write():
    """open(O_TRUNC), of an empty file too, and write(2) by a caller
    without CAP_FSETID clear set-user-ID and set-group-ID (with group
    execute); root keeps them."""
    out = []
    for name, data, how in (("st0", b"", "trunc"), ("st1", b"abc", "trunc"),
                            ("sw", b"abc", "write")):
        put(name, data, 0o755)
        os.chmod(name, 0o6775)
        if how == "trunc":
            os.close(os.open(name, os.O_WRONLY | os.O_TRUNC))
        else:
            fd = os.open(name, os.O_WRONLY)
            os.pwrite(fd, b"x", 1)
            os.close(fd)
        out.append("%s %s %o" % (name, how, stat.S_IMODE(os.stat(name).st_mode)))
    return " ".join(out)


def t_access():
    put("ac", b"a", 0o400)
    return "R=%s W=%s X=%s F=%s" % (os.access("ac", os.R_OK), os.access("ac", os.W_OK),
                                    os.access("ac", os.X_OK), os.access("nothing", os.F_OK))


UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


def utimens(path, a, m):
    """utimensat(2) with an atime and mtime of UTIME_NOW, UTIME_OMIT or
    whole seconds."""
    class TS(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    def ts(v):
        return TS(0, v) if v in (UTIME_NOW, UTIME_OMIT) else TS(v, 0)

    libc_call(libc.utimensat, -100, path.encode(), (TS * 2)(ts(a), ts(m)), 0)


def as_user_checks():
    """Fork, drop to an unprivileged uid, report what it may and may not do."""
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pw = pwd.getpwnam("nobody")
    uid, gid = pw.pw_uid, pw.pw_gid
    os.mkdir("priv", 0o700)                       # root's, closed
    put("priv/secret", b"s", 0o600)
    os.mkdir("open")                              # world-writable
    os.chmod("open", 0o777)
    os.mkdir("owned", 0o700)
    os.chown("owned", uid, gid)
    put("rootfile", b"r", 0o644)
    os.mkdir("sticky")
    os.chmod("sticky", 0o1777)
    put("sticky/roots", b"r", 0o666)
    put("open/rootw", b"w", 0o666)
    os.chmod("open/rootw", 0o666)
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        res = []
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

            def attempt(name, fn):
                try:
                    v = fn()
                    res.append(name + "=ok" + ("" if v is None else ":" + str(v)))
                except OSError as e:
                    res.append(name + "=" + ename(e.errno))

            def create(path, mode=0o600):
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode)
                os.write(fd, b"u")
                os.close(fd)
                s = os.stat(path)
                return "%d:%d:%o" % (s.st_uid == uid, s.st_gid == gid, stat.S_IMODE(s.st_mode))

            attempt("list_priv", lambda: os.listdir("priv"))
            attempt("read_priv", lambda: os.open("priv/secret", os.O_RDONLY))
            attempt("create_in_root_dir", lambda: create("x"))
            attempt("write_rootfile", lambda: os.open("rootfile", os.O_WRONLY))
            attempt("read_rootfile", lambda: os.close(os.open("rootfile", os.O_RDONLY)))
            attempt("chmod_rootfile", lambda: os.chmod("rootfile", 0o666))
            attempt("chown_rootfile", lambda: os.chown("rootfile", uid, gid))
            attempt("utime_rootfile", lambda: os.utime("rootfile", ns=(1, 1)))
            attempt("utime_now_rootfile", lambda: os.utime("rootfile"))
            attempt("create_in_open", lambda: create("open/mine", 0o640))
            attempt("create_in_owned", lambda: create("owned/mine"))
            attempt("mkdir_in_owned", lambda: os.mkdir("owned/d", 0o700))
            attempt("chmod_own", lambda: os.chmod("owned/mine", 0o644))
            attempt("chown_own_to_root", lambda: os.chown("owned/mine", 0, 0))
            attempt("unlink_in_sticky", lambda: os.unlink("sticky/roots"))
            attempt("rename_rootfile", lambda: os.rename("rootfile", "owned/stolen"))
            attempt("truncate_own", lambda: os.truncate("owned/mine", 0))
            attempt("link_rootfile", lambda: os.link("rootfile", "owned/hl"))
            attempt("access_priv", lambda: os.access("priv/secret", os.R_OK))
            # utimensat(2): any writer may set both times to now; only the
            # owner may set them to a value, or one to now and one kept
            attempt("utime_now_writable", lambda: utimens("open/rootw", UTIME_NOW, UTIME_NOW))
            attempt("utime_set_writable", lambda: utimens("open/rootw", 1, 2))
            attempt("utime_now_omit_writable", lambda: utimens("open/rootw", UTIME_NOW, UTIME_OMIT))
            attempt("utime_omit_omit_rootfile", lambda: utimens("rootfile", UTIME_OMIT, UTIME_OMIT))
            attempt("truncate_writable", lambda: os.truncate("open/rootw", 0))
            attempt("truncate_rootfile", lambda: os.truncate("rootfile", 0))
        except Exception as e:                  # noqa: BLE001 - report, never hang
            res.append("child_exception=" + repr(e))
        os.write(wr, " ".join(res).encode())
        os._exit(0)
    os.close(wr)
    out = b""
    while True:
        b = os.read(rd, 65536)
        if not b:
            break
        out += b
    os.close(rd)
    os.waitpid(pid, 0)
    return out.decode()


# ---- locks and mmap -------------------------------------------------------------------

def in_child(fn):
    """Run fn in a forked child; return its result string (locks are per process)."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        try:
            r = fn()
        except OSError as e:
            r = ename(e.errno)
        except Exception as e:                  # noqa: BLE001
            r = "exception " + repr(e)
        os.write(wr, str(r).encode())
        os._exit(0)
    os.close(wr)
    out = os.read(rd, 65536)
    os.close(rd)
    os.waitpid(pid, 0)
    return out.decode()


def t_flock():
    put("fl", b"lock")
    a = os.open("fl", os.O_RDWR)
    b = os.open("fl", os.O_RDWR)
    fcntl.flock(a, fcntl.LOCK_EX)
    r = []
    try:
        fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r.append("second_ex=ok")
    except OSError as e:
        r.append("second_ex=" + ename(e.errno))
    try:
        fcntl.flock(b, fcntl.LOCK_SH | fcntl.LOCK_NB)
        r.append("second_sh=ok")
    except OSError as e:
        r.append("second_sh=" + ename(e.errno))
    fcntl.flock(a, fcntl.LOCK_UN)
    fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
    r.append("after_unlock=ok")
    fcntl.flock(b, fcntl.LOCK_UN)
    fcntl.flock(a, fcntl.LOCK_SH)
    fcntl.flock(b, fcntl.LOCK_SH | fcntl.LOCK_NB)
    r.append("shared_twice=ok")
    os.close(a)
    os.close(b)
    return " ".join(r)


def t_fcntl_locks():
    put("pl", pat(4 * PAGE, 1))
    fd = os.open("pl", os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, PAGE, 0)     # bytes 0..8191
    me = os.getpid()

    def child_try():
        c = os.open("pl", os.O_RDWR)
        r = []
        try:
            fcntl.lockf(c, fcntl.LOCK_EX | fcntl.LOCK_NB, PAGE, 0)
            r.append("conflict=ok")
        except OSError as e:
            r.append("conflict=" + ("EAGAIN/EACCES" if e.errno in (errno.EAGAIN, errno.EACCES) else ename(e.errno)))
        try:
            fcntl.lockf(c, fcntl.LOCK_EX | fcntl.LOCK_NB, PAGE, PAGE)
            r.append("other_range=ok")
        except OSError as e:
            r.append("other_range=" + ename(e.errno))
        # F_GETLK: who holds byte 0?
        flk = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
        got = fcntl.fcntl(c, fcntl.F_GETLK, flk)
        typ, _, start, length, pid = struct.unpack("hhqqi", got)
        r.append("getlk_type=%s start=%d len=%d pid_is_parent=%s" % (
            "W" if typ == fcntl.F_WRLCK else "R" if typ == fcntl.F_RDLCK else "U", start, length, pid == me))
        os.close(c)
        return " ".join(r)

    r1 = in_child(child_try)
    fcntl.lockf(fd, fcntl.LOCK_UN, PAGE, 0)

    def child_after():
        c = os.open("pl", os.O_RDWR)
        fcntl.lockf(c, fcntl.LOCK_EX | fcntl.LOCK_NB, PAGE, 0)
        os.close(c)
        return "after_unlock=ok"

    r2 = in_child(child_after)
    # closing any fd of the file drops this process's POSIX locks
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 0)
    other = os.open("pl", os.O_RDONLY)
    os.close(other)
    r3 = in_child(child_after)
    os.close(fd)
    return "%s %s close_drops=%s" % (r1, r2, r3)


def t_mmap():
    put("mm", pat(4 * PAGE, 12))
    fd = os.open("mm", os.O_RDWR)
    m = mmap.mmap(fd, 4 * PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    first = m[:16] == pat(16, 12)
    m[PAGE:PAGE + 5] = b"MMAP!"
    m.flush()
    other = os.open("mm", os.O_RDONLY)
    seen = os.pread(other, 5, PAGE)
    os.pwrite(fd, b"PWRITE", 2 * PAGE)
    in_map = m[2 * PAGE:2 * PAGE + 6]
    m.close()
    os.fsync(fd)
    os.close(other)
    os.close(fd)
    with open("mm", "rb") as f:
        data = f.read()
    return "map_read=%s pread_sees_map=%s map_sees_pwrite=%s %s" % (
        first, seen == b"MMAP!", in_map == b"PWRITE", "len=%d sha=%s" % (len(data), sha(data)))


def t_mmap_private():
    put("mp", pat(PAGE, 13))
    fd = os.open("mp", os.O_RDONLY)
    m = mmap.mmap(fd, PAGE, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
    m[0:3] = b"xyz"
    m.close()
    os.close(fd)
    return content("mp")


def t_copy_ranges():
    """copy_file_range(2), sendfile(2) and splice(2) between files of the
    directory (the kernel's generic paths: branchd has no request of its
    own for them), with offsets, and the errnos cp(1) and friends meet."""
    src = pat(300000, 15)
    put("cr_src", src)
    a = os.open("cr_src", os.O_RDONLY)
    b = os.open("cr_dst", os.O_CREAT | os.O_RDWR, 0o600)
    n = 0
    while n < len(src):
        k = os.copy_file_range(a, b, len(src) - n)
        if k == 0:
            break
        n += k
    r = ["cfr=%d" % n, "at=%d" % os.copy_file_range(a, b, 5000, 1000, 400000),
         "past_eof=%d" % os.copy_file_range(a, b, 100, 400000, 0)]
    os.close(b)
    r.append("cfr_data=%s" % content("cr_dst"))
    try:
        os.copy_file_range(a, a, 10)
        r.append("to_rdonly=ok")
    except OSError as e:
        r.append("to_rdonly=" + ename(e.errno))
    c = os.open("cr_sf", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    n = 0
    while True:
        k = os.sendfile(c, a, n, 65536)
        if k == 0:
            break
        n += k
    os.close(c)
    r.append("sendfile=%d %s" % (n, content("cr_sf")))
    rp, wp = os.pipe()
    r.append("splice_out=%d" % os.splice(a, wp, 4096, offset_src=8192))
    r.append("pipe_ok=%s" % (os.read(rp, 8192) == src[8192:12288]))
    os.write(wp, b"S" * 3000)
    d = os.open("cr_sp", os.O_CREAT | os.O_RDWR, 0o600)
    r.append("splice_in=%d" % os.splice(rp, d, 3000, offset_dst=100))
    os.close(d)
    os.close(rp)
    os.close(wp)
    os.close(a)
    r.append("splice_data=%s" % content("cr_sp"))
    return " ".join(r)


def t_fifo_socket():
    """A fifo and a unix socket in the directory (Postgres may keep its
    socket in the data directory): data through both, and the errnos of a
    second bind and of a connect after the socket file is gone."""
    os.mkfifo("fifo", 0o600)
    r = [desc("fifo")]
    pid = os.fork()
    if pid == 0:
        w = os.open("fifo", os.O_WRONLY)
        os.write(w, b"through the fifo")
        os.close(w)
        os._exit(0)
    rd = os.open("fifo", os.O_RDONLY)
    got = b""
    while True:
        b = os.read(rd, 100)
        if not b:
            break
        got += b
    os.close(rd)
    os.waitpid(pid, 0)
    r.append("fifo_data=%s" % got.decode())
    os.unlink("fifo")   # t05's diff -r of the child branch cannot compare fifos
    path = ".s.PGSQL.5432"     # relative: any length of the test's directory
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    r.append("sock_type=%s" % stat.S_ISSOCK(os.lstat(path).st_mode))
    cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cli.connect(path)
    acc, _ = srv.accept()
    cli.sendall(b"hello")
    r.append("sock_data=%s" % acc.recv(10).decode())
    acc.close()
    cli.close()
    for name, fn in (("bind_again", lambda s: s.bind(path)),
                     ("connect_gone", lambda s: (os.unlink(path), s.connect(path)))):
        s2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            fn(s2)
            r.append(name + "=ok")
        except OSError as e:
            r.append(name + "=" + ename(e.errno))
        s2.close()
    srv.close()
    return " ".join(r)


def t_ofd_locks():
    """Open file description locks (F_OFD_SETLK) conflict between two
    opens in one process and with another process's POSIX lock, and go
    with the last close of their open; flock and POSIX locks are
    independent of each other."""
    F_OFD_GETLK, F_OFD_SETLK = 36, 37
    put("ofd", pat(4096, 2))
    a = os.open("ofd", os.O_RDWR)
    b = os.open("ofd", os.O_RDWR)
    wr = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 100, 0)
    fcntl.fcntl(a, F_OFD_SETLK, wr)
    r = []
    try:
        fcntl.fcntl(b, F_OFD_SETLK, wr)
        r.append("second_open=ok")
    except OSError as e:
        r.append("second_open=" + ("EAGAIN/EACCES" if e.errno in (errno.EAGAIN, errno.EACCES) else ename(e.errno)))
    got = struct.unpack("hhqqi", fcntl.fcntl(b, F_OFD_GETLK, struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 50, 1, 0)))
    r.append("getlk=%s,%d,%d,%d" % ("W" if got[0] == fcntl.F_WRLCK else got[0], got[2], got[3], got[4]))

    def child_posix():
        c = os.open("ofd", os.O_RDWR)
        try:
            fcntl.lockf(c, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
            return "ok"
        except OSError as e:
            return "EAGAIN/EACCES" if e.errno in (errno.EAGAIN, errno.EACCES) else ename(e.errno)
        finally:
            os.close(c)

    r.append("child_posix=" + in_child(child_posix))
    fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
    r.append("flock_beside_ofd=ok")
    os.close(a)
    fcntl.fcntl(b, F_OFD_SETLK, wr)
    r.append("after_close=ok")
    os.close(b)
    r.append("all_closed_child=" + in_child(child_posix))
    return " ".join(r)


def t_append_two_procs():
    """O_APPEND writes of two processes at once: none lost, none torn."""
    put("ap2", b"")
    pids = []
    for who in b"AB":
        pid = os.fork()
        if pid == 0:
            fd = os.open("ap2", os.O_WRONLY | os.O_APPEND)
            for _ in range(200):
                os.write(fd, bytes([who]) * 999 + b"\n")
            os.close(fd)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    with open("ap2", "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    os.unlink("ap2")    # the order of the lines is the scheduler's
    return "lines=%d whole=%s A=%d B=%d" % (
        len(lines), all(len(ln) == 999 and ln == ln[:1] * 999 for ln in lines),
        sum(ln[:1] == b"A" for ln in lines), sum(ln[:1] == b"B" for ln in lines))


def t_renameat2_dirs():
    """renameat2 flags across directories and onto directories, with the
    parents' link counts after each (a directory's ".." counts)."""
    os.makedirs("rx/d1/sub")
    os.makedirs("rx/d2/full/x")
    put("rx/d2/f", b"f")
    put("rx/d1/g", b"g")

    def nl():
        return "nl=%s" % ",".join(str(os.lstat(p).st_nlink) for p in ("rx", "rx/d1", "rx/d2"))

    r = [nl()]
    for name, a, b, fl in (("x_dir_file_cross", "rx/d1/sub", "rx/d2/f", RENAME_EXCHANGE),
                           ("x_back", "rx/d2/f", "rx/d1/sub", RENAME_EXCHANGE),
                           ("x_dir_dir_cross", "rx/d1/sub", "rx/d2/full", RENAME_EXCHANGE),
                           ("x_missing", "rx/d1/g", "rx/d2/nothing", RENAME_EXCHANGE),
                           ("x_with_own_sub", "rx/d2", "rx/d2/full", RENAME_EXCHANGE),
                           ("x_and_noreplace", "rx/d1/g", "rx/d2/f", RENAME_EXCHANGE | RENAME_NOREPLACE),
                           ("nr_dir_onto_empty_dir", "rx/d1/sub", "rx/d2/full", RENAME_NOREPLACE),
                           ("nr_file_cross", "rx/d1/g", "rx/d2/g2", RENAME_NOREPLACE),
                           ("dir_onto_nonempty", "rx/d2/full", "rx/d1/sub", 0),
                           ("dir_cross", "rx/d1/sub", "rx/d2/moved", 0),
                           ("dir_onto_empty_dir", "rx/d2/moved", "rx/d2/full", 0)):
        rc = libc.renameat2(-100, a.encode(), -100, b.encode(), fl)
        r.append("%s=%s %s" % (name, "ok" if rc == 0 else ename(ctypes.get_errno()), nl()))
    r.append("tree=" + ",".join(sorted(
        os.path.join(dp, n) for dp, dns, fns in os.walk("rx") for n in dns + fns)))
    return " ".join(r)


def t_final_tree():
    out = []
    for dp, dns, fns in os.walk(".", followlinks=False):
        dns.sort()
        for n in sorted(dns + fns):
            p = os.path.join(dp, n)
            s = os.lstat(p)
            line = p + " " + desc_st(s)
            if stat.S_ISREG(s.st_mode) and s.st_size < (64 << 20):
                line += " " + content(p)
            elif stat.S_ISLNK(s.st_mode):
                line += " -> " + os.readlink(p)
            out.append(line)
    return "entries=%d sha=%s" % (len(out), sha("\n".join(out).encode()))


TESTS = [
    t_create_excl, t_create_excl_again, t_open_missing, t_open_creat_existing, t_trunc, t_append,
    t_open_dir_flags, t_name_max,
    t_pwrite_pread, t_unaligned, t_big_sequential, t_segment_boundary, t_ftruncate,
    t_ftruncate_negative, t_ftruncate_rdonly, t_posix_fallocate, t_fallocate_mode0, t_fallocate_zero_range, t_fallocate_unaligned,
    t_fsync_file, t_blocks_while_open, t_fsync_rdonly, t_sync_file_range, t_fsync_dir, t_syncfs,
    t_rename_over, t_rename_cases, t_unlink_open, t_unlink_errors, t_link, t_symlink,
    t_mkdir_rmdir, t_readdir, t_readdir_errors, t_readdir_while_changing, t_rewinddir, t_statfs,
    t_utimens, t_mtime_moves, t_times_not_backwards, t_chmod_chown, t_suid_cleared_on_chown,
    t_suid_cleared_on_trunc_and_write, t_access,
    t_flock, t_fcntl_locks, t_mmap, t_mmap_private,
    t_copy_ranges, t_fifo_socket, t_ofd_locks, t_append_two_procs, t_renameat2_dirs,
]

if __name__ == "__main__":
    for t in TESTS:
        check(t.__name__[2:], t)
    if os.geteuid() == 0:
        check("as_user", as_user_checks)
    else:
        print("as_user: not root, skipped")
    check("final_tree", t_final_tree)
