#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""fs_model.py - seeded random file-system operations, run in lockstep on a
reference tree (ext4) and on branchfs, with every result compared.

usage: fs_model.py REF MNT BRANCHCTL STATE SEED NOPS [PROCS]
       fs_model.py --verify REF MNT STATE

A *world* is one branch and its reference twin: REF/NAME and MNT/NAME.
World 'main' is the branch main (made by the caller); a snapshot world is a
branch made while the model runs: `mkdir MNT/sN` (a branch of main, the
default parent), `branchctl create sN --from W` (a branch of any world),
or `branchctl create sN --from main --at seq:S` (time travel to a moment
recorded earlier); its twin is a `cp -a` of the reference tree at that
moment.  Snapshot worlds are also written to (copy-on-write over inherited
blocks), reset (`branchctl reset`: back to the parent's current state),
renamed and deleted.

Every operation runs on both sides and its outcome (value, or errno name)
must be the same: open/create with O_EXCL, O_TRUNC and O_APPEND, pread and
pwrite at any offset (8 KiB boundaries, sparse offsets, up to 4 MiB),
write at the file position, ftruncate and truncate up and down, lchown, fallocate
(mode 0, KEEP_SIZE, PUNCH_HOLE), fsync and fdatasync, writes through a
shared mmap, unlink (also of open files), rename (over files, dirs, into
and out of dirs), link, symlink and readlink, mkdir and rmdir, chmod,
utimens (times read back), stat, fstat and readdir; renameat2 with
RENAME_NOREPLACE and RENAME_EXCHANGE.  Every so often, and at
the end, every world is compared whole: names, types, modes, owners,
sizes, link counts, symlink targets and every byte.

Branch snapshots are crash images (DESIGN rule 4): what a power cut would
leave.  Before a snapshot the model fsyncs every file of the source world
(and its open descriptors), so that the image equals the reference tree.

With PROCS > 1 the file operations run in rounds of PROCS processes at
once, each in a subtree of its own (pK) of every world, so that the daemon
serves them concurrently while each process's results stay comparable; the
odd ones run as the postgres user, in subtrees it owns (permission checks:
modes it sets on its own files apply to it).  The branch operations and
comparisons run between rounds.

FS_MODEL_CHECK_EACH=1 makes each worker compare its own subtrees after
every operation, to find the first one that differs (slow; for a failing
seed).

The model state (worlds, parents, recorded seqs) is kept in STATE, so that
the caller can unmount, mount again and go on (or --verify only).  Exit 0
when everything matched; 1 with the differing operation and the last
operations done otherwise.  Runs as root.
"""
import ctypes
import errno
import hashlib
import json
import mmap
import os
import random
import shutil
import stat
import subprocess
import sys

libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                           ctypes.c_int64]
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                           ctypes.c_char_p, ctypes.c_uint]
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2

# a small name space, so that operations collide
DIRS = ["d0", "d1", "d1/d2", "d3"]
NAMES = ["f0", "f1", "f2", "f3", "d0/f4", "d0/f5", "d1/f6", "d1/d2/f7",
         "d3/f8", "d1/d2/d9", "d0/d10"]
PATHS = NAMES + DIRS + ["nope/f", "f0/x"]

history = []

try:
    import pwd
    PG_IDS = pwd.getpwnam("postgres")[2:4]
except (ImportError, KeyError):
    PG_IDS = (65534, 65534)


def die(msg):
    sys.stdout.flush()
    print("fs_model: MISMATCH%s: %s" % (
        " (worker %s)" % Model.sub if Model.sub else "", msg),
        file=sys.stderr)
    print("fs_model: the last operations (newest last):", file=sys.stderr)
    for h in history[-40:]:
        print("  " + h, file=sys.stderr)
    sys.exit(1)


def outcome(fn):
    """(True, value) or (False, errno name)."""
    try:
        return (True, fn())
    except OSError as e:
        return (False, errno.errorcode.get(e.errno, str(e.errno)))


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def pattern(rng, n):
    # compressible and incompressible runs, and zero runs (holes to be)
    kind = rng.randrange(4)
    if kind == 0:
        return bytes([rng.randrange(256)]) * n
    if kind == 1:
        return bytes(n)
    return rng.randbytes(n)


def fsync_path(p):
    fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root):
    for d, dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if stat.S_ISREG(os.lstat(p).st_mode):
                fsync_path(p)
        fsync_path(d)


def describe(root):
    """relpath -> descriptor of everything under root (root included)."""
    out = {}

    def walk_error(e):  # a directory a worker may not search
        out[os.path.relpath(e.filename, root) + "/*"] = errno.errorcode.get(
            e.errno, str(e.errno))
    for d, dirs, files in os.walk(root, onerror=walk_error):
        dirs.sort()
        for name in [""] + sorted(dirs + files):
            p = os.path.join(d, name) if name else d
            rel = os.path.relpath(p, root)
            if name == "" and rel != ".":
                continue
            ok, st = outcome(lambda: os.lstat(p))
            if not ok:
                out[rel] = [st]
                continue
            e = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                 st.st_uid, st.st_gid]
            if stat.S_ISREG(st.st_mode):
                def rd():
                    with open(p, "rb") as f:
                        return f.read()
                ok, data = outcome(rd)  # (a worker may not read it)
                if ok and len(data) != st.st_size:
                    e.append("read %d bytes of %d" % (len(data), st.st_size))
                e += [st.st_size, st.st_nlink, sha(data) if ok else data]
            elif stat.S_ISLNK(st.st_mode):
                e.append(outcome(lambda: os.readlink(p)))
            elif stat.S_ISDIR(st.st_mode):
                e.append(st.st_nlink)
            out[rel] = e
    return out


def compare_world(ref, bfs, what):
    a, b = describe(ref), describe(bfs)
    if a == b:
        return len(a)
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            die("%s: %s differs: ext4 %s, branchfs %s" %
                (what, k, a.get(k), b.get(k)))
    die("%s differs" % what)


class Model:
    def __init__(self, ref, mnt, ctl, state_path, seed):
        self.ref, self.mnt, self.ctl = ref, mnt, ctl
        self.state_path = state_path
        self.rng = random.Random(seed)
        self.fds = []  # [world, path, ref_fd, bfs_fd]
        self.ops = 0
        self.load()

    # ---- state
    def load(self):
        if os.path.exists(self.state_path):
            with open(self.state_path) as f:
                s = json.load(f)
        else:
            s = {"worlds": {"main": None}, "seqs": [], "next": 0}
        self.worlds = s["worlds"]  # name -> parent name (None for main)
        self.seqs = s["seqs"]      # [seq, name of the reference copy]
        self.next = s["next"]

    def save(self):
        with open(self.state_path, "w") as f:
            json.dump({"worlds": self.worlds, "seqs": self.seqs,
                       "next": self.next}, f)

    sub = ""  # a worker's own subtree of every world (--procs)

    def rp(self, w, p=""):
        return (os.path.join(self.ref, w, self.sub, p) if p
                else os.path.join(self.ref, w))

    def bp(self, w, p=""):
        return (os.path.join(self.mnt, w, self.sub, p) if p
                else os.path.join(self.mnt, w))

    def note(self, s):
        self.ops += 1
        history.append("%d %s" % (self.ops, s))

    def both(self, desc, fn):
        """fn(side_path_function) on both sides; outcomes must match."""
        a = outcome(lambda: fn(self.rp))
        b = outcome(lambda: fn(self.bp))
        self.note("%s -> %s" % (desc, a))
        if a != b:
            die("%s: ext4 %s, branchfs %s" % (desc, a, b))
        return a

    def ctl_run(self, *args):
        r = subprocess.run([self.ctl, "--mount", self.mnt] + list(args),
                           capture_output=True, text=True, timeout=120)
        self.note("branchctl %s -> %d %s" % (" ".join(args), r.returncode,
                                              r.stderr.strip()[:200]))
        return r

    def busy(self, w):
        """Open files and open directories make a branch busy (rule 7; a
        shell's current directory, which holds nothing open, does not)."""
        return any(f[0] == w for f in self.fds)

    def close_dirs(self, w):
        for f in [f for f in self.fds if f[0] == w and not f[5]]:
            self.fds.remove(f)
            self.note("%s: close %s (a directory)" % (f[0], f[1]))
            os.close(f[2])
            os.close(f[3])

    def children(self, w):
        return [c for c, p in self.worlds.items() if p == w]

    # ---- operations on paths
    def op_path(self):
        w = self.rng.choice(sorted(self.worlds))
        rng = self.rng
        p = rng.choice(PATHS)
        q = rng.choice(PATHS)
        k = rng.randrange(15)
        if k == 0:
            self.both("%s: mkdir %s" % (w, p),
                      lambda s: os.mkdir(s(w, p), 0o755))
        elif k == 1:
            self.both("%s: rmdir %s" % (w, p), lambda s: os.rmdir(s(w, p)))
        elif k == 2:
            self.both("%s: unlink %s" % (w, p), lambda s: os.unlink(s(w, p)))
        elif k == 3:
            self.both("%s: rename %s %s" % (w, p, q),
                      lambda s: os.rename(s(w, p), s(w, q)))
        elif k == 4:
            fl = rng.choice([RENAME_NOREPLACE, RENAME_EXCHANGE])

            def r2(s):
                if libc.renameat2(AT_FDCWD, s(w, p).encode(), AT_FDCWD,
                                  s(w, q).encode(), fl) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
            self.both("%s: renameat2 %s %s flags %d" % (w, p, q, fl), r2)
        elif k == 5:
            self.both("%s: link %s %s" % (w, p, q),
                      lambda s: os.link(s(w, p), s(w, q)))
        elif k == 6:
            # relative, without "..": a link never leads out of the
            # world (the model runs as root; a way out of the test's tree
            # would write to the machine's own files)
            tgt = rng.choice(["f1", "f0", "d1/d2", "d0/f4", "d3",
                              "x" * rng.randrange(1, 200)])
            self.both("%s: symlink %s -> %s" % (w, q, tgt),
                      lambda s: os.symlink(tgt, s(w, q)))
        elif k == 7:
            self.both("%s: readlink %s" % (w, p),
                      lambda s: os.readlink(s(w, p)))
        elif k == 8:
            mode = rng.choice([0o600, 0o644, 0o700, 0o750, 0o2755, 0o400])
            self.both("%s: chmod %s %o" % (w, p, mode),
                      lambda s: os.chmod(s(w, p), mode))
        elif k == 9:
            t = (rng.randrange(1, 2**33) * 10**9 + rng.randrange(10**9),
                 rng.randrange(1, 2**33) * 10**9 + rng.randrange(10**9))

            def ut(s):
                os.utime(s(w, p), ns=t, follow_symlinks=False)
                st = os.lstat(s(w, p))
                # the access time only right after: ext4 (relatime)
                # updates it when a path walk follows a symlink, branchfs
                # never on reads (noatime, branchd(8))
                return st.st_mtime_ns == t[1]
            self.both("%s: utimens %s" % (w, p), ut)
        elif k == 10:
            def st(s):
                x = os.lstat(s(w, p))
                r = [stat.S_IFMT(x.st_mode), stat.S_IMODE(x.st_mode),
                     x.st_nlink]
                if not stat.S_ISDIR(x.st_mode):
                    r.append(x.st_size)
                return r
            self.both("%s: lstat %s" % (w, p), st)
        elif k == 11:
            d = rng.choice(DIRS + ["."])
            self.both("%s: readdir %s" % (w, d),
                      lambda s: sorted(os.listdir(s(w, d))))
        elif k == 12:
            size = rng.choice([0, 1, 8191, 8192, 8193, 100000, 3 << 20])
            self.both("%s: truncate %s %d" % (w, p, size),
                      lambda s: os.truncate(s(w, p), size))
        elif k == 13:
            # root gives files away; anyone may try, and an owner may
            # change the group to one of its own (set-ID bits go)
            uid = rng.choice([-1, 0, os.getuid(), PG_IDS[0]])
            gid = rng.choice([-1, 0, os.getgid(), PG_IDS[1]])
            self.both("%s: lchown %s %d %d" % (w, p, uid, gid),
                      lambda s: os.lchown(s(w, p), uid, gid))
        else:
            self.op_open(w, p)

    def op_open(self, w, p):
        if len(self.fds) >= 12:
            return self.op_close()
        rng = self.rng
        flags = rng.choice([os.O_RDONLY, os.O_RDWR, os.O_WRONLY])
        for f in (os.O_CREAT, os.O_EXCL, os.O_TRUNC, os.O_APPEND):
            if rng.random() < 0.3:
                flags |= f
        if flags & os.O_TRUNC and (flags & 3) == os.O_RDONLY:
            flags &= ~os.O_TRUNC  # unspecified by POSIX
        mode = rng.choice([0o600, 0o644])
        desc = "%s: open %s 0x%x" % (w, p, flags)
        a = outcome(lambda: os.open(self.rp(w, p), flags, mode))
        b = outcome(lambda: os.open(self.bp(w, p), flags, mode))
        self.note("%s -> %s" % (desc, a[0] or a[1]))
        if a[0] != b[0] or (not a[0] and a != b):
            for x in (a, b):
                if x[0]:
                    os.close(x[1])
            die("%s: ext4 %s, branchfs %s" % (desc, a, b))
        if a[0]:
            isreg = stat.S_ISREG(os.fstat(a[1]).st_mode)
            self.fds.append([w, p, a[1], b[1], flags, isreg])

    def op_close(self):
        if not self.fds:
            return
        f = self.fds.pop(self.rng.randrange(len(self.fds)))
        self.note("%s: close %s" % (f[0], f[1]))
        os.close(f[2])
        os.close(f[3])

    def fd_both(self, f, desc, fn):
        a = outcome(lambda: fn(f[2]))
        b = outcome(lambda: fn(f[3]))
        self.note("%s: %s [fd of %s] -> %s" % (f[0], desc, f[1], a))
        if a != b:
            die("%s on fd of %s/%s (flags 0x%x): ext4 %s, branchfs %s" %
                (desc, f[0], f[1], f[4], a, b))
        return a

    def op_fd(self):
        if not self.fds:
            return self.op_path()
        rng = self.rng
        f = rng.choice(self.fds)
        k = rng.randrange(12)
        off = rng.choice([0, rng.randrange(1 << 16), 8192 * rng.randrange(512),
                          8192 * rng.randrange(512) - rng.randrange(1, 100),
                          rng.randrange(4 << 20)])
        n = rng.choice([1, 100, 8192, 8192 * 3 + 17, rng.randrange(1 << 17)])
        if k in (0, 1, 2):
            data = pattern(rng, n)
            self.fd_both(f, "pwrite %d@%d %s" % (n, off, sha(data)),
                         lambda fd: os.pwrite(fd, data, off))
        elif k == 3:
            data = pattern(rng, n)
            self.fd_both(f, "write %d %s" % (n, sha(data)),
                         lambda fd: os.write(fd, data))
        elif k in (4, 5):
            self.fd_both(f, "pread %d@%d" % (n, off),
                         lambda fd: sha(os.pread(fd, n, off)))
        elif k == 6:
            size = rng.choice([0, off, off + n, 8192, 1 << 20])
            self.fd_both(f, "ftruncate %d" % size,
                         lambda fd: os.ftruncate(fd, size))
        elif k == 7:
            mode = rng.choice([0, FALLOC_FL_KEEP_SIZE,
                               FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE])

            def fa(fd):
                if libc.fallocate(fd, mode, off, max(n, 1)) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
            self.fd_both(f, "fallocate mode %d %d@%d" % (mode, n, off), fa)
        elif k == 8:
            self.fd_both(f, "fsync", os.fsync if rng.random() < 0.5
                         else os.fdatasync)
        elif k == 9:
            def fst(fd):
                x = os.fstat(fd)
                # a directory's size is the file system's own business
                return [stat.S_IFMT(x.st_mode), x.st_nlink,
                        None if stat.S_ISDIR(x.st_mode) else x.st_size]
            self.fd_both(f, "fstat", fst)
        elif k == 10:
            self.op_mmap(f)
        else:
            self.op_close()

    def op_mmap(self, f):
        if (f[4] & 3) != os.O_RDWR:
            return
        sa, sb = os.fstat(f[2]).st_size, os.fstat(f[3]).st_size
        if sa != sb:
            die("fstat size of %s/%s: ext4 %d, branchfs %d" %
                (f[0], f[1], sa, sb))
        if sa < 4096:
            return
        length = min(sa, 1 << 18) & ~4095
        at = self.rng.randrange(length)
        data = self.rng.randbytes(min(self.rng.randrange(1, 9000),
                                      length - at))

        def mw(fd):
            m = mmap.mmap(fd, length, mmap.MAP_SHARED,
                          mmap.PROT_READ | mmap.PROT_WRITE)
            m[at:at + len(data)] = data
            m.flush()
            m.close()
        self.fd_both(f, "mmap write %d@%d" % (len(data), at), mw)

    # ---- branches
    def sync_world(self, w):
        for f in self.fds:
            if f[0] == w:
                os.fsync(f[3])
        fsync_tree(self.bp(w))

    def new_name(self):
        self.next += 1
        return "s%d" % self.next

    def op_branch(self):
        rng = self.rng
        k = rng.randrange(7)
        snaps = sorted(w for w in self.worlds if w != "main")
        if len(snaps) >= 12 and rng.random() < 0.5:
            k = 4  # keep the number of worlds (and verify's work) bounded
        if k == 0 or (k in (1, 2) and not snaps):
            # mkdir: a branch of main, the default parent
            name = self.new_name()
            self.sync_world("main")
            self.note("mkdir %s (branch of main)" % name)
            os.mkdir(self.bp(name))
            self.copy_ref("main", name)
            self.worlds[name] = "main"
        elif k == 1:
            src = rng.choice(snaps + ["main"])
            name = self.new_name()
            self.sync_world(src)
            r = self.ctl_run("create", name, "--from", src)
            if r.returncode != 0:
                die("branchctl create %s --from %s: %s" %
                    (name, src, r.stderr))
            self.copy_ref(src, name)
            self.worlds[name] = src
        elif k == 2:
            # record this moment of main, to travel back to later
            self.sync_world("main")
            r = subprocess.run([self.ctl, "--mount", self.mnt, "--json",
                                "status"], capture_output=True, text=True,
                               timeout=60)
            if r.returncode != 0:
                die("branchctl status: " + r.stderr)
            seq = json.loads(r.stdout)["seq"]
            keep = "at%d" % len(self.seqs)
            subprocess.run(["cp", "-a", self.rp("main"),
                            os.path.join(self.ref, "..", "at", keep)],
                           check=True)
            self.seqs.append([seq, keep])
            self.note("recorded main at seq %d as %s" % (seq, keep))
        elif k == 3 and self.seqs:
            seq, keep = rng.choice(self.seqs)
            name = self.new_name()
            r = self.ctl_run("create", name, "--from", "main", "--at",
                             "seq:%d" % seq)
            if r.returncode != 0:
                die("branchctl create --at seq:%d: %s" % (seq, r.stderr))
            subprocess.run(["cp", "-a", os.path.join(self.ref, "..", "at",
                                                     keep), self.rp(name)],
                           check=True)
            self.worlds[name] = "main"
            compare_world(self.rp(name), self.bp(name),
                          "branch %s of main as of seq %d" % (name, seq))
        elif k == 4 and snaps:
            w = rng.choice(snaps)
            if rng.random() < 0.5:  # else refused while a directory is open
                self.close_dirs(w)
            if self.busy(w) or self.children(w):
                r = self.ctl_run("delete", w)
                if r.returncode not in (6, 7):
                    die("branchctl delete of %s (open files or children) "
                        "exited %d, expected 6 or 7" % (w, r.returncode))
                return
            self.close_dirs(w)
            self.note("rmdir %s" % w)
            os.rmdir(self.bp(w))
            shutil.rmtree(self.rp(w))
            del self.worlds[w]
            if os.path.exists(self.bp(w)):
                die("branch %s still there after rmdir" % w)
        elif k == 5 and snaps:
            w = rng.choice(snaps)
            name = self.new_name()
            if rng.random() < 0.5:
                self.close_dirs(w)
            if self.busy(w):
                a = outcome(lambda: os.rename(self.bp(w), self.bp(name)))
                self.note("mv %s %s (open files) -> %s" % (w, name, a))
                if a != (False, "EBUSY"):
                    die("mv of branch %s with open files: %s, expected "
                        "EBUSY" % (w, a))
                return
            self.note("mv %s %s" % (w, name))
            os.rename(self.bp(w), self.bp(name))
            os.rename(self.rp(w), self.rp(name))
            self.worlds[name] = self.worlds.pop(w)
            for c in self.worlds:
                if self.worlds[c] == w:
                    self.worlds[c] = name
        elif k == 6 and snaps:
            w = rng.choice(snaps)
            if rng.random() < 0.5:
                self.close_dirs(w)
            if self.busy(w) or self.children(w):
                return
            par = self.worlds[w]
            self.close_dirs(w)
            describe(self.bp(w))  # the kernel caches the old content
            self.sync_world(par)
            r = self.ctl_run("reset", w)
            if r.returncode != 0:
                die("branchctl reset %s: %s" % (w, r.stderr))
            shutil.rmtree(self.rp(w))
            self.copy_ref(par, w)
            compare_world(self.rp(w), self.bp(w),
                          "branch %s right after its reset" % w)

    def copy_ref(self, src, dst):
        subprocess.run(["cp", "-a", self.rp(src), self.rp(dst)], check=True)

    # ---- the run
    def verify(self, what):
        n = 0
        for w in sorted(self.worlds):
            n += compare_world(self.rp(w), self.bp(w),
                               "%s: world %s" % (what, w))
        self.note("verified %d worlds, %d entries (%s)" %
                  (len(self.worlds), n, what))
        return n

    def work(self, nops):
        """A worker's round: file operations only, in its own subtree."""
        each = os.environ.get("FS_MODEL_CHECK_EACH") == "1"
        for i in range(nops):
            if self.rng.random() < 0.5:
                self.op_fd()
            else:
                self.op_path()
            for w in sorted(self.worlds) if each else []:
                if os.path.isdir(os.path.join(self.rp(w), self.sub)):
                    compare_world(os.path.join(self.rp(w), self.sub),
                                  os.path.join(self.bp(w), self.sub),
                                  "%s/%s after the operation" % (w, self.sub))
        while self.fds:
            self.op_close()

    def run_parallel(self, nops, procs, seed):
        """Rounds of procs workers at once (each in its own subtree pK of
        every world, so that each one's results stay comparable), and
        between rounds, with the workers gone, the branch operations."""
        # odd workers run as the postgres user (permission checks), in
        # subtrees it owns
        try:
            import pwd
            pg = pwd.getpwnam("postgres")
            user = (pg.pw_uid, pg.pw_gid)
        except (ImportError, KeyError):
            user = None
        for w in self.worlds:
            for k in range(procs):
                for side in (self.rp, self.bp):
                    d = os.path.join(side(w), "p%d" % k)
                    os.makedirs(d, exist_ok=True)
                    if user and k % 2 == 1:
                        os.chown(d, user[0], user[1])
        per = 150
        rounds = max(1, nops // (per * procs))
        for r in range(rounds):
            pids = {}
            for k in range(procs):
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        self.rng = random.Random(seed * 100003 + r * 101 + k)
                        Model.sub = "p%d" % k
                        del history[:]
                        if user and k % 2 == 1:
                            os.setgroups([])
                            os.setgid(user[1])
                            os.setuid(user[0])
                        self.work(per)
                        code = 0
                    except SystemExit as e:
                        code = e.code if isinstance(e.code, int) else 1
                    except BaseException as e:
                        print("fs_model: worker p%d: %r" % (k, e),
                              file=sys.stderr)
                    finally:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        os._exit(code)
                pids[pid] = k
            bad = []
            for pid, k in pids.items():
                _, st = os.waitpid(pid, 0)
                if st != 0:
                    bad.append(k)
            self.ops += per * procs
            if bad:
                die("round %d: worker(s) %s found a difference (above)" %
                    (r, ", ".join("p%d" % k for k in bad)))
            self.note("round %d: %d workers x %d operations" %
                      (r, procs, per))
            for i in range(self.rng.randrange(4)):
                self.op_branch()
            if self.rng.random() < 0.2:
                self.verify("after round %d" % r)
        for w in self.worlds:
            self.sync_world(w)
        return self.verify("end of the run")

    def run(self, nops):
        rng = self.rng
        for i in range(nops):
            x = rng.random()
            if x < 0.45:
                self.op_fd()
            elif x < 0.93:
                self.op_path()
            elif x < 0.95:
                self.op_branch()
            elif x < 0.955:
                self.note("drop caches")
                os.sync()
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
            elif x < 0.96:
                self.verify("after op %d" % self.ops)
            else:
                self.op_fd()
        while self.fds:
            self.op_close()
        for w in self.worlds:
            self.sync_world(w)
        return self.verify("end of the run")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--verify":
        m = Model(sys.argv[2], sys.argv[3], None, sys.argv[4], 0)
        n = m.verify("verify")
        print("fs_model: %d worlds, %d entries match" % (len(m.worlds), n))
        return
    if len(sys.argv) not in (7, 8):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    ref, mnt, ctl, state = sys.argv[1:5]
    seed, nops = int(sys.argv[5]), int(sys.argv[6])
    procs = int(sys.argv[7]) if len(sys.argv) == 8 else 1
    os.makedirs(os.path.join(ref, "..", "at"), exist_ok=True)
    m = Model(ref, mnt, ctl, state, seed)
    try:
        n = m.run_parallel(nops, procs, seed) if procs > 1 else m.run(nops)
    finally:
        m.save()
    print("fs_model: seed %d: %d operations, %d worlds (%d entries) and %d "
          "recorded moments match" % (seed, m.ops, len(m.worlds), n,
                                      len(m.seqs)))


if __name__ == "__main__":
    main()
