#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""soak.py - a long randomized soak of branchfs, used as a platform team would.

One store; branch `main` holds a pgbench dataset and a Postgres 15 server
running a steady, rate-limited pgbench read-write load, plus a `marker` table
into which one client commits the next integer every ~100 ms (each commit's
send and acknowledgement times are recorded).  Then, until the time is up,
one random operation per iteration:

  mkdir      a branch of the running main; Postgres on it must recover, hold
             every marker acknowledged before the mkdir and none sent after
             it returned, pass pg_amcheck --heapallindexed, pgbench's sums,
             and run a short pgbench
  at         `branchctl create --from main --at T` for a past moment T in the
             retention window: the same marker check against T (10 ms index
             resolution); or --from a branch at a moment after it was made
  child      a branch of a branch (`branchctl create --from B`, B stopped or
             running): same markers and lineage rows as B
  reset      `branchctl reset` of a stopped branch: its parent's state now
  rename     `mv` or `branchctl rename` of a stopped branch
  delete     `rmdir` or `branchctl delete` of a stopped branch with no child
  busy       rmdir/mv/reset/delete of a running branch or of one with
             children must be refused (EBUSY / exit 6 / exit 7)
  verify     start a stopped branch: its markers and lineage are unchanged
  gc         `branchctl gc`
  retention  shrink the retention window, gc, widen it again: from then on a
             create --at before the oldest retained moment (branchctl
             status) must exit 8, and one at or after it must succeed
Meanwhile a second client churns: it makes throw-away branches of main
(mkdir, or --at a past moment), reads files in them, deletes them and runs
`branchctl gc`, so that control operations and checkpoints overlap.
Every SOAK_REMOUNT_EVERY iterations everything stops, the store is unmounted
(fusermount3 -u) and mounted again, and main's server must hold every
acknowledged marker and the branches their rows.  Every SOAK_DRAIN_EVERY
iterations every branch but main is deleted and `branchctl gc` run, with
main's server and load going on, and the store's size and branchd's RSS are
taken: the store's size after the last drain must stay within 1.5 times the
largest of the first three (plus what main itself grew), or the run fails
(a steady climb is a leak); RSS is reported, not judged (glibc keeps freed
memory in its per-thread arenas).  With probability SOAK_KILL_PROB per
iteration branchd gets SIGKILL under load, alone or while a `branchctl gc`,
a mkdir, a reset or a rename runs: every server is killed, the dead mount
is unmounted, the store mounted again, and main (crash recovery) must hold
every acknowledged marker and its sums add up; a branch that was running
recovers with its acknowledged rows; a mkdir'd branch is there if the mkdir
returned (a crash image of main from its run), a reset branch is either
untouched or main's crash image from the reset's run (untouched only if the
reset had not returned), a renamed one has exactly one of its names.  branchd's RSS and the store's disk usage are
sampled every 5 s into samples.csv in the temp dir; the summary prints them
over time and the store size after each drain (all branches deleted + gc).

Run as root (real FUSE mounts, Postgres as user postgres):
    make soak                       # 3 minutes
    SOAK_SECONDS=3600 make soak     # an hour
Environment knobs:
    SOAK_SECONDS        duration of the random loop, default 180 (setup and
                        the final checks come on top: about 2 minutes)
    SOAK_SEED           random seed (default: time); printed at start
    SOAK_SCALE          pgbench scale of main, default 5
    SOAK_TPS            pgbench -R rate on main, default 100
    SOAK_RETENTION      retention window in seconds, default 90
    SOAK_GC_INTERVAL    background gc period, default 15
    SOAK_REMOUNT_EVERY  iterations between remount cycles, default 15
    SOAK_DRAIN_EVERY    iterations between drains (every branch but main
                        deleted, gc, store size and RSS taken), default 20
    SOAK_KILL_PROB      probability per iteration of a SIGKILL of branchd, 0.03
    SOAK_MAX_BRANCHES   branches besides main before deletes are preferred, 10
    SOAK_CHURN          1 (default): a second client makes branches of main
                        (mkdir, create --at), reads them and deletes them, and
                        runs gc, at the same time as the operations above
    SOAK_TMP            parent of the temp dir, default /var/tmp
    SOAK_KEEP           1: keep the temp dir (always kept on failure)
Exit 0 when every check passed; on failure the temp dir (logs, store) is kept
and its path printed.
"""

import calendar
import errno
import json
import os
import pwd
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BRANCHD = os.environ.get("BRANCHD", os.path.join(ROOT, "bin", "branchd"))
BRANCHCTL = os.environ.get("BRANCHCTL", os.path.join(ROOT, "bin", "branchctl"))
PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")
AS_PG = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


def env_num(name, default, kind=int):
    v = os.environ.get(name)
    return kind(v) if v not in (None, "") else default


SECONDS = env_num("SOAK_SECONDS", 180)
SEED = env_num("SOAK_SEED", int(time.time()) % 1000000)
SCALE = env_num("SOAK_SCALE", 5)
TPS = env_num("SOAK_TPS", 100)
RETENTION = env_num("SOAK_RETENTION", 90)
GC_INTERVAL = env_num("SOAK_GC_INTERVAL", 15)
REMOUNT_EVERY = env_num("SOAK_REMOUNT_EVERY", 15)
DRAIN_EVERY = env_num("SOAK_DRAIN_EVERY", 20)
KILL_PROB = env_num("SOAK_KILL_PROB", 0.03, float)
MAX_BRANCHES = env_num("SOAK_MAX_BRANCHES", 10)
CHURN = env_num("SOAK_CHURN", 1)
MAX_RUNNING = 2  # branch servers left running besides main


class SoakFail(Exception):
    pass


def now():
    return time.time()


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


class Soak:
    def __init__(self):
        self.t0 = now()
        base = os.environ.get("SOAK_TMP", "/var/tmp")
        self.T = tempfile.mkdtemp(prefix="bfs-soak.", dir=base)
        os.chmod(self.T, 0o755)
        self.log_dir = os.path.join(self.T, "log")
        self.sock = os.path.join(self.T, "sock")
        for d in (self.log_dir, self.sock):
            os.mkdir(d)
            os.chmod(d, 0o1777)
        self.store = os.path.join(self.T, "store")
        self.mnt = os.path.join(self.T, "mnt")
        os.mkdir(self.mnt)
        self.logf = open(os.path.join(self.T, "soak.log"), "a", buffering=1)
        self.rng = random.Random(SEED)
        self.bd = None  # Popen of branchd
        self.bd_gen = 0
        self.mounted = False
        self.pg = {}  # branch name -> {"port", "pid"}
        self.next_port = 5500  # sockets only, in our own directory
        # model: name -> {parent, mset (count,max,sum), lineage set, created, children}
        self.br = {}
        self.nbr = 0
        self.load = None
        self.mk_lock = threading.Lock()
        self.acked = []  # (id, sent, acked) of acknowledged markers
        self.sent = []  # (id, sent) of every attempt
        self.mk_next = 1
        self.mk_thread = None
        self.mk_stop = threading.Event()
        self.mk_err = None
        self.samples = []
        self.sampler_stop = threading.Event()
        self.iter = 0
        self.ops = {}
        self.made = 0
        self.floors = []
        self.kills = 0
        self.remounts = 0
        self.gc_out = []
        self.busy_waits = []
        self.ch_thread = None
        self.ch_err = None
        self.ch_n = 0
        self.ch_made = 0
        self.tok = 0

    # ---- logging and commands ----------------------------------------------

    def log(self, msg):
        line = "[soak %s +%5.0fs] %s" % (time.strftime("%H:%M:%S"), now() - self.t0, msg)
        print(line, flush=True)
        self.logf.write(line + "\n")

    def fail(self, msg):
        raise SoakFail(msg)

    def run(self, argv, timeout=120, check=True, as_pg=False, cwd=None, **kw):
        if as_pg:
            argv = AS_PG + argv
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=timeout,
                               cwd=cwd or self.T, **kw)
        except subprocess.TimeoutExpired:
            self.fail("timed out after %ss: %s" % (timeout, " ".join(argv)))
        if check and p.returncode != 0:
            self.fail("%s exited %d: %s %s" % (" ".join(argv), p.returncode,
                                               p.stdout[-800:], p.stderr[-800:]))
        return p

    def ctl(self, *args, timeout=300):
        return self.run([BRANCHCTL, "--mount", self.mnt] + list(args), timeout=timeout,
                        check=False)

    def ctl_ok(self, *args, timeout=300):
        p = self.ctl(*args, timeout=timeout)
        if p.returncode != 0:
            self.fail("branchctl %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
        return p

    def q(self, port, sql, timeout=300):
        p = self.run([PGBIN + "/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.sock,
                      "-p", str(port), "-U", "postgres", "-d", "postgres", "-c", sql],
                     timeout=timeout)
        return p.stdout.strip()

    def try_op(self, fn, *args):
        try:
            fn(*args)
            return "OK"
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))

    # ---- branchd ------------------------------------------------------------

    def mount(self):
        logf = os.path.join(self.log_dir, "branchd-%d.log" % self.bd_gen)
        self.bd_gen += 1
        opts = "retention=%d,gc_interval=%d,pidfile=%s" % (RETENTION, GC_INTERVAL,
                                                          os.path.join(self.T, "branchd.pid"))
        self.bd = subprocess.Popen([BRANCHD, "-f", "-o", opts, self.store, self.mnt],
                                   stdin=subprocess.DEVNULL, stdout=open(logf, "w"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.bd_log = logf
        for _ in range(300):
            if os.path.ismount(self.mnt):
                break
            if self.bd.poll() is not None:
                self.fail("branchd exited %s before mounting: %s" % (self.bd.returncode,
                                                                      open(logf).read()[-800:]))
            time.sleep(0.1)
        else:
            self.fail("mount not ready after 30 s")
        self.mounted = True
        self.log("mounted (branchd pid %d)" % self.bd.pid)

    def bd_alive(self):
        return self.bd is not None and self.bd.poll() is None

    def check_bd(self):
        if self.bd is not None and self.bd.poll() is not None:
            self.fail("branchd exited on its own with %s: %s" % (
                self.bd.returncode, open(self.bd_log).read()[-1500:]))

    def umount(self):
        t = now()
        p = self.run(["fusermount3", "-u", self.mnt], check=False, timeout=60)
        if p.returncode != 0:
            self.fail("fusermount3 -u failed: %s" % p.stderr.strip())
        try:
            self.bd.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.fail("branchd still running 120 s after the unmount")
        if self.bd.returncode != 0:
            self.fail("branchd exited %d after a clean unmount: %s" % (
                self.bd.returncode, open(self.bd_log).read()[-1500:]))
        self.mounted = False
        self.bd = None
        self.log("unmounted in %.1fs" % (now() - t))

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.bd.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, AttributeError):
            pass
        return -1

    def store_bytes(self):
        tot = 0
        for d, _, files in os.walk(self.store):
            for fn in files:
                try:
                    tot += os.lstat(os.path.join(d, fn)).st_blocks * 512
                except OSError:
                    pass
        return tot

    def sampler(self):
        with open(os.path.join(self.T, "samples.csv"), "w", buffering=1) as f:
            f.write("elapsed_s,iter,rss_kb,store_bytes,branches\n")
            while not self.sampler_stop.wait(5):
                if not self.bd_alive():
                    continue
                s = (round(now() - self.t0), self.iter, self.rss_kb(), self.store_bytes(),
                     len(self.br))
                self.samples.append(s)
                f.write("%d,%d,%d,%d,%d\n" % s)

    # ---- Postgres -----------------------------------------------------------

    def pg_start(self, name, expect_recovery=None):
        d = os.path.join(self.mnt, name)
        port = self.next_port
        self.next_port = 5500 + (self.next_port - 5500 + 1) % 1000
        logf = os.path.join(self.log_dir, "pg-%s-%d.log" % (name, port))
        sb = "128MB" if name == "main" else "32MB"
        t = now()
        self.run([PGBIN + "/pg_ctl", "-D", d, "-l", logf, "-w", "-t", "300", "-o",
                  "-p %d -k %s -c listen_addresses='' -c fsync=on -c shared_buffers=%s "
                  "-c max_connections=30" % (port, self.sock, sb), "start"],
                 as_pg=True, timeout=330)
        with open(os.path.join(d, "postmaster.pid")) as f:
            pid = int(f.readline())
        self.pg[name] = {"port": port, "pid": pid, "dir": d}
        text = open(logf).read()
        rec = "not properly shut down" in text or "was interrupted" in text
        if expect_recovery is True and not rec:
            self.fail("postgres on %s did not run crash recovery (log %s)" % (name, logf))
        self.log("postgres on %s port %d pid %d up in %.1fs%s" % (
            name, port, pid, now() - t, " (crash recovery)" if rec else ""))
        return port

    def pg_stop(self, name, mode="fast"):
        info = self.pg.pop(name)
        self.run([PGBIN + "/pg_ctl", "-D", info["dir"], "stop", "-m", mode, "-w", "-t", "200"],
                 as_pg=True, timeout=230)
        for _ in range(200):
            if not os.path.exists("/proc/%d" % info["pid"]):
                break
            time.sleep(0.1)
        else:
            self.fail("postmaster %d of %s alive after stop" % (info["pid"], name))

    def pg_children(self, pid):
        kids = []
        for e in os.listdir("/proc"):
            if not e.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % e) as f:
                    st = f.read()
                ppid = int(st[st.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
            if ppid == pid:
                kids.append(int(e))
        return kids

    def pg_kill_all(self):
        """SIGKILL every server of ours and its children (the mount is dead)."""
        for name, info in list(self.pg.items()):
            pid = info["pid"]
            kids = self.pg_children(pid)
            for k in [pid] + kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for k in [pid] + kids:
                for _ in range(300):
                    if not os.path.exists("/proc/%d" % k):
                        break
                    time.sleep(0.1)
                else:
                    self.log("warning: process %d of %s did not exit" % (k, name))
            self.pg.pop(name)

    # ---- load on main ---------------------------------------------------------

    def load_start(self):
        port = self.pg["main"]["port"]
        out = open(os.path.join(self.log_dir, "load-%d.out" % int(now())), "w")
        self.load = subprocess.Popen(
            [PGBIN + "/pgbench", "-n", "-c", "2", "-j", "1", "-R", str(TPS), "-T", "1000000",
             "-P", "60", "-h", self.sock, "-p", str(port), "-U", "postgres", "postgres"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.load_out = out.name
        self.mk_start(port)

    def load_check(self):
        if self.load is not None and self.load.poll() is not None:
            self.fail("pgbench load on main ended (%s): %s" % (
                self.load.returncode, open(self.load_out).read()[-800:]))
        if self.mk_err:
            self.fail("marker writer: %s" % self.mk_err)

    def load_stop(self):
        self.mk_halt()
        if self.load is not None:
            if self.load.poll() is None:
                self.load.send_signal(signal.SIGINT)
                try:
                    self.load.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.load.kill()
                    self.load.wait()
            self.load = None

    # one client commits marker ids through a long-lived psql: an id counts
    # as acknowledged when its RETURNING row is printed before the \echo
    def mk_start(self, port):
        self.mk_stop.clear()
        self.mk_err = None
        self.mk_thread = threading.Thread(target=self.mk_loop, args=(port,), daemon=True)
        self.mk_thread.start()

    def mk_halt(self):
        self.mk_stop.set()
        if self.mk_thread is not None:
            self.mk_thread.join(timeout=120)
            if self.mk_thread.is_alive():
                self.fail("marker writer did not stop")
            self.mk_thread = None

    def mk_loop(self, port):
        psql = None
        buf = b""
        errf = open(os.path.join(self.log_dir, "marker-psql.err"), "a")
        try:
            while not self.mk_stop.is_set():
                if psql is None:
                    psql = subprocess.Popen(
                        [PGBIN + "/psql", "-X", "-q", "-At", "-h", self.sock, "-p", str(port),
                         "-U", "postgres", "-d", "postgres"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf)
                    buf = b""
                i = self.mk_next
                self.mk_next += 1
                sent = now()
                with self.mk_lock:
                    self.sent.append((i, sent))
                try:
                    psql.stdin.write(b"insert into marker values (%d, now()) returning id;\n"
                                     b"\\echo ack %d\n" % (i, i))
                    psql.stdin.flush()
                except (BrokenPipeError, OSError):
                    psql = self.mk_drop(psql)
                    continue
                got_row = False
                done = False
                deadline = now() + 60
                while not done:
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line == b"%d" % i:
                            got_row = True
                        elif line == b"ack %d" % i:
                            done = True
                            break
                    if done:
                        break
                    left = deadline - now()
                    if left <= 0:
                        break
                    r, _, _ = select.select([psql.stdout], [], [], min(left, 1.0))
                    if r:
                        chunk = os.read(psql.stdout.fileno(), 65536)
                        if not chunk:
                            break
                        buf += chunk
                if done and got_row:
                    with self.mk_lock:
                        self.acked.append((i, sent, now()))
                elif not done:
                    psql = self.mk_drop(psql)
                    if self.mk_stop.wait(0.5):
                        break
                if self.mk_stop.wait(0.1):
                    break
        except Exception as e:  # noqa: BLE001 - reported to the main thread
            self.mk_err = repr(e)
        finally:
            if psql is not None:
                self.mk_drop(psql)

    def mk_drop(self, psql):
        try:
            psql.stdin.close()
        except OSError:
            pass
        try:
            psql.wait(timeout=10)
        except subprocess.TimeoutExpired:
            psql.kill()
            psql.wait()
        return None

    # ---- model checks ---------------------------------------------------------

    def markers_of(self, port):
        out = self.q(port, "select count(*), coalesce(max(id),0), coalesce(sum(id),0) from marker")
        c, m, s = (int(x) for x in out.split("|"))
        return (c, m, s)

    def marker_ids(self, port):
        out = self.q(port, "select id from marker order by id")
        return [int(x) for x in out.split()] if out else []

    def check_window(self, name, port, lo_t, hi_t):
        """The branch holds a crash image of some instant in [lo_t, hi_t]:
        every marker acked by lo_t, nothing sent at or after hi_t, and every
        acked marker up to its highest id."""
        ids = self.marker_ids(port)
        have = set(ids)
        mx = ids[-1] if ids else 0
        with self.mk_lock:
            acked = list(self.acked)
            sent = list(self.sent)
        kmin = max([i for (i, _, a) in acked if a <= lo_t], default=0)
        kmax = max([i for (i, s) in sent if s < hi_t], default=0)
        if not (kmin <= mx <= kmax):
            self.fail("%s: highest marker %d, expected between %d (acked before %s) and %d "
                      "(sent before %s)" % (name, mx, kmin, iso(lo_t), kmax, iso(hi_t)))
        missing = [i for (i, _, _) in acked if i <= mx and i not in have]
        if missing:
            self.fail("%s: acknowledged markers missing below its highest (%d): %s" % (
                name, mx, missing[:20]))
        sent_ids = set(i for (i, _) in sent)
        bogus = [i for i in ids if i not in sent_ids]
        if bogus:
            self.fail("%s: markers never sent: %s" % (name, bogus[:20]))
        return (len(ids), mx, sum(ids)), kmin, kmax

    def check_sums(self, name, port):
        ok = self.q(port, "select (select sum(abalance) from pgbench_accounts) = "
                          "(select coalesce(sum(delta), 0) from pgbench_history) and "
                          "(select sum(bbalance) from pgbench_branches) = "
                          "(select coalesce(sum(delta), 0) from pgbench_history)")
        if ok != "t":
            self.fail("%s: pgbench balances do not add up" % name)

    def amcheck(self, name, port):
        t = now()
        p = self.run([PGBIN + "/pg_amcheck", "-h", self.sock, "-p", str(port), "-U", "postgres",
                      "--all", "--install-missing", "--heapallindexed"], timeout=900, check=False,
                     env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
        if p.returncode != 0 or p.stdout.strip() or p.stderr.strip():
            self.fail("pg_amcheck on %s: rc %d %s %s" % (name, p.returncode, p.stdout[-1500:],
                                                         p.stderr[-1500:]))
        self.log("%s: pg_amcheck --heapallindexed clean (%.1fs)" % (name, now() - t))

    def lineage_of(self, port):
        out = self.q(port, "select name from lineage")
        return set(out.split("\n")) if out else set()

    def short_pgbench(self, name, port):
        p = self.run([PGBIN + "/pgbench", "-n", "-c", "2", "-j", "1", "-T", "3", "-h", self.sock,
                      "-p", str(port), "-U", "postgres", "postgres"], timeout=120, check=False)
        if p.returncode != 0 or "number of failed transactions: 0 " not in p.stdout:
            self.fail("pgbench on %s: rc %d %s %s" % (name, p.returncode, p.stdout[-600:],
                                                      p.stderr[-600:]))

    def check_branch(self, name, lo_t=None, hi_t=None, expect=None, recovery=None, full=True,
                     new=True):
        """Start NAME, check it, write a lineage row, then stop it or leave it
        running.  lo_t/hi_t: a crash image of main in that window; expect:
        (marker signature, lineage set) it must equal."""
        if new and os.path.exists(os.path.join(self.mnt, name, "postmaster.pid")):
            self.fail("new branch %s carries a postmaster.pid" % name)
        port = self.pg_start(name, expect_recovery=recovery)
        b = self.br[name]
        if lo_t is not None:
            sig, kmin, kmax = self.check_window(name, port, lo_t, hi_t)
            lin = self.lineage_of(port)
            if lin != set():
                self.fail("%s: a branch of main has lineage rows %s" % (name, sorted(lin)))
            b["mset"], b["lineage"] = sig, set()
            self.log("%s: markers 1..%d (allowed %d..%d) ok" % (name, sig[1], kmin, kmax))
        elif expect is not None:
            sig = self.markers_of(port)
            lin = self.lineage_of(port)
            esig, must, may = expect
            if sig != esig:
                self.fail("%s: markers (count, max, sum) %s, expected %s" % (name, sig, esig))
            if not (must <= lin <= must | may):
                self.fail("%s: lineage %s, expected %s plus any of %s" % (
                    name, sorted(lin), sorted(must), sorted(may)))
            b["mset"], b["lineage"] = sig, lin
            self.log("%s: markers %s and lineage (%d rows) as expected" % (name, sig, len(lin)))
        self.check_sums(name, port)
        if full:
            self.amcheck(name, port)
            self.short_pgbench(name, port)
            self.check_sums(name, port)
        self.tok += 1
        tok = "%s#%d" % (name, self.tok)
        t = now()
        self.q(port, "insert into lineage values ('%s')" % tok)
        b["lineage"] = b["lineage"] | {tok}
        b["own"][tok] = (t, now())
        running = [n for n in self.pg if n != "main"]
        if len(running) > MAX_RUNNING or self.rng.random() < 0.6:
            self.pg_stop(name)

    # ---- operations -----------------------------------------------------------

    def new_name(self):
        self.nbr += 1
        return "b%04d" % self.nbr

    def add_branch(self, name, parent):
        self.br[name] = {"parent": parent, "mset": None, "lineage": set(),
                         "created": now(), "own": {}, "born": now()}
        self.made += 1

    def children(self, name):
        return [n for n, b in self.br.items() if b["parent"] == name]

    def stopped(self, leaf=False):
        return [n for n in self.br if n != "main" and n not in self.pg and
                (not leaf or not self.children(n))]

    def settle(self, what, fn):
        """Run FN (an os call, or a branchctl call returning a CompletedProcess)
        on a branch whose server just stopped: FUSE delivers the release of
        its files asynchronously, so EBUSY / exit 6 is retried for up to 5 s."""
        for n in range(50):
            retry = False
            try:
                r = fn()
            except OSError as e:
                if e.errno != errno.EBUSY or n == 49:
                    raise
                retry = True
            if not retry and getattr(r, "returncode", 0) == 6 and n < 49:
                retry = True
            if not retry:
                if n:
                    self.busy_waits.append((what, n * 100))
                    self.log("note: %s was busy for %d ms" % (what, n * 100))
                return r
            time.sleep(0.1)

    def oldest(self):
        """The oldest moment the store still retains (branchctl status)."""
        p = self.ctl_ok("--json", "status")
        o = json.loads(p.stdout)["oldest"]
        sec, ms = o.rstrip("Z").split(".")
        return calendar.timegm(time.strptime(sec, "%Y-%m-%dT%H:%M:%S")) + int(ms) / 1000.0

    def create_at(self, name, src, T):
        """branchctl create NAME --from SRC --at T: must succeed when T is
        at or after the oldest retained moment, and exit 8 (not retained)
        when it is before it.  Returns whether the branch was made."""
        p = self.ctl("create", name, "--from", src, "--at", iso(T))
        old = self.oldest()
        if p.returncode == 8 and T < old + 0.001:
            self.log("create %s --at %s: not retained (oldest %s), as expected" % (
                name, iso(T), iso(old)))
            return False
        if p.returncode != 0:
            self.fail("create %s --from %s --at %s (oldest retained %s) exited %d: %s" % (
                name, src, iso(T), iso(old), p.returncode, p.stderr.strip()))
        if T < old - 0.001:
            self.fail("create %s --at %s succeeded, but the oldest moment retained is %s" % (
                name, iso(T), iso(old)))
        self.add_branch(name, src)
        self.log("create %s --from %s --at %s (%.1fs ago)" % (name, src, iso(T), now() - T))
        return True

    def oldest_quiet(self):
        try:
            return self.oldest()
        except SoakFail:
            return 0

    def op_retention(self):
        """Shrink the retention window, collect, and widen it again: the
        moments GC took must be refused from then on (exit 8), the others
        still give the right crash image."""
        r1 = self.rng.randint(3, max(4, RETENTION // 3))
        self.ctl_ok("retention", str(r1))
        self.op_gc()
        self.ctl_ok("retention", str(RETENTION))
        self.log("retention %d s for one gc, then %d s again: oldest retained %s (%.1fs ago)" % (
            r1, RETENTION, iso(self.oldest()), now() - self.oldest()))

    def op_mkdir(self):
        name = self.new_name()
        t0 = now()
        os.mkdir(os.path.join(self.mnt, name))
        t1 = now()
        self.add_branch(name, "main")
        self.log("mkdir %s took %.0f ms" % (name, (t1 - t0) * 1000))
        st = os.stat(os.path.join(self.mnt, name))
        if st.st_uid != self.pg_uid or (st.st_mode & 0o777) != 0o700:
            self.fail("branch %s has uid %d mode %o" % (name, st.st_uid, st.st_mode & 0o777))
        self.check_branch(name, lo_t=t0, hi_t=t1, recovery=True)

    def op_at(self):
        cands = [n for n in self.br if n != "main" and self.br[n]["mset"] is not None and
                 now() - self.br[n]["created"] > 3 and now() - self.br[n]["created"] < RETENTION - 15]
        name = self.new_name()
        resets = [n for n in self.br if n != "main" and "reset_t0" in self.br[n] and
                  self.br[n]["reset_t0"] - self.br[n]["born"] > 2 and
                  now() - self.br[n]["born"] < RETENTION - 15]
        if resets and self.rng.random() < 0.3:
            # a reset drops the branch's past: a moment before it is refused
            src = self.rng.choice(resets)
            b = self.br[src]
            T = self.rng.uniform(b["born"] + 1, b["reset_t0"] - 0.5)
            p = self.ctl("create", name, "--from", src, "--at", iso(T))
            if p.returncode != 8:
                self.fail("create %s --from %s --at %s, before its reset at %s, exited %d, "
                          "expected 8: %s" % (name, src, iso(T), iso(b["reset_t0"]), p.returncode,
                                              p.stderr.strip()))
            self.log("create %s --from %s --at %s (before its reset) refused: %s" % (
                name, src, iso(T), p.stderr.strip()[:120]))
            return
        if cands and self.rng.random() < 0.3:
            src = self.rng.choice(cands)
            b = self.br[src]
            lo = b["created"] + 1
            T = self.rng.uniform(lo, now() - 0.5)
            if not self.create_at(name, src, T):
                return
            # SRC's own lineage rows are there when their insert returned
            # before T, not when it began after T (+10 ms); inherited rows
            # always
            must, may = set(b["lineage"]), set()
            for tok, (ts, ta) in b["own"].items():
                if ta <= T:
                    continue
                must.discard(tok)
                if ts < T + 0.010:
                    may.add(tok)
            self.check_branch(name, expect=(b["mset"], must, may),
                              full=self.rng.random() < 0.3)
            return
        lo = max(self.main_since + 1, now() - RETENTION + 10)
        if lo > now() - 1:
            return self.op_mkdir()
        T = self.rng.uniform(lo, now() - 0.5)
        if not self.create_at(name, "main", T):
            return
        # the time index has a 10 ms resolution
        self.check_branch(name, lo_t=T, hi_t=T + 0.010)

    def op_child(self):
        cands = [n for n in self.br if n != "main" and self.br[n]["mset"] is not None]
        if not cands:
            return self.op_mkdir()
        src = self.rng.choice(cands)
        b = self.br[src]
        name = self.new_name()
        self.ctl_ok("create", name, "--from", src)
        self.add_branch(name, src)
        self.log("create %s --from %s (%s)" % (name, src, "running" if src in self.pg else "stopped"))
        self.check_branch(name, expect=(b["mset"], set(b["lineage"]), set()),
                          recovery=(src in self.pg), full=self.rng.random() < 0.5)

    def op_reset(self):
        cands = self.stopped(leaf=True)
        if not cands:
            return self.op_mkdir()
        name = self.rng.choice(cands)
        par = self.br[name]["parent"]
        if par != "main" and self.br[par]["mset"] is None:
            return self.op_gc()
        t0 = now()
        p = self.settle("reset " + name, lambda: self.ctl("reset", name))
        if p.returncode != 0:
            self.fail("branchctl reset %s exited %d: %s" % (name, p.returncode, p.stderr.strip()))
        t1 = now()
        self.br[name]["created"] = t1
        self.br[name]["reset_t0"] = t0
        self.br[name]["own"] = {}
        self.log("reset %s (parent %s) took %.0f ms" % (name, par, (t1 - t0) * 1000))
        if par == "main":
            self.check_branch(name, lo_t=t0, hi_t=t1, recovery=True, full=self.rng.random() < 0.5)
        else:
            pb = self.br[par]
            self.check_branch(name, expect=(pb["mset"], set(pb["lineage"]), set()),
                              full=self.rng.random() < 0.3)

    def op_rename(self):
        cands = self.stopped()
        if not cands:
            return self.op_gc()
        old = self.rng.choice(cands)
        new = "r%04d" % (self.nbr + 1)
        self.nbr += 1
        if self.rng.random() < 0.5:
            self.settle("mv " + old, lambda: os.rename(os.path.join(self.mnt, old),
                                                       os.path.join(self.mnt, new)))
            how = "mv"
        else:
            p = self.settle("rename " + old, lambda: self.ctl("rename", old, new))
            if p.returncode != 0:
                self.fail("branchctl rename %s exited %d: %s" % (old, p.returncode, p.stderr))
            how = "branchctl rename"
        self.br[new] = self.br.pop(old)
        for b in self.br.values():
            if b["parent"] == old:
                b["parent"] = new
        self.log("%s %s %s" % (how, old, new))

    def op_delete(self):
        cands = self.stopped(leaf=True)
        if not cands:
            return self.op_gc()
        name = self.rng.choice(cands)
        self.delete(name)

    def delete(self, name):
        if self.rng.random() < 0.5:
            self.settle("rmdir " + name, lambda: os.rmdir(os.path.join(self.mnt, name)))
            how = "rmdir"
        else:
            p = self.settle("delete " + name, lambda: self.ctl("delete", name))
            if p.returncode != 0:
                self.fail("branchctl delete %s exited %d: %s" % (name, p.returncode, p.stderr))
            how = "branchctl delete"
        del self.br[name]
        if os.path.exists(os.path.join(self.mnt, name)):
            self.fail("%s still there after %s" % (name, how))
        self.log("%s %s" % (how, name))

    def op_busy(self):
        running = [n for n in self.pg if n != "main"]
        parents = [n for n in self.br if n != "main" and self.children(n) and n not in self.pg]
        if running and (not parents or self.rng.random() < 0.5):
            name = self.rng.choice(running)
            why = "running"
        elif parents:
            name = self.rng.choice(parents)
            why = "has children"
        else:
            name, why = "main", "running"
        path = os.path.join(self.mnt, name)
        k = self.rng.randrange(4)
        if k == 0:
            got = self.try_op(os.rmdir, path)
            if got != "EBUSY":
                self.fail("rmdir of %s (%s) gave %s, expected EBUSY" % (name, why, got))
        elif k == 1:
            if why != "running":
                return self.op_gc()
            got = self.try_op(os.rename, path, path + "-x")
            if got != "EBUSY":
                self.fail("mv of %s (%s) gave %s, expected EBUSY" % (name, why, got))
        elif k == 2:
            if name == "main":
                return self.op_gc()
            p = self.ctl("reset", name)
            if p.returncode != 6 and not (why == "has children" and p.returncode == 7):
                self.fail("reset of %s (%s) exited %d: %s" % (name, why, p.returncode, p.stderr))
            got = "exit %d" % p.returncode
        else:
            p = self.ctl("delete", name)
            want = 6 if why == "running" else 7
            if p.returncode != want:
                self.fail("delete of %s (%s) exited %d, expected %d: %s" % (
                    name, why, p.returncode, want, p.stderr))
            got = "exit %d" % p.returncode
        self.log("busy: %s (%s) refused: %s" % (name, why, got))

    def op_verify(self):
        cands = [n for n in self.stopped() if self.br[n]["mset"] is not None]
        if not cands:
            return self.op_gc()
        name = self.rng.choice(cands)
        b = self.br[name]
        self.check_branch(name, expect=(b["mset"], set(b["lineage"]), set()), full=False,
                          new=False)

    def op_gc(self):
        t = now()
        p = self.ctl_ok("gc")
        out = " ".join(p.stdout.split())
        self.gc_out.append(out)
        self.log("gc (%.1fs): %s" % (now() - t, out[:200]))

    # ---- the churning client ---------------------------------------------------

    def churn_start(self):
        if not CHURN:
            return
        self.ch_stop = threading.Event()
        self.ch_err = None
        self.ch_thread = threading.Thread(target=self.churn_loop, daemon=True)
        self.ch_thread.start()

    def churn_halt(self):
        if self.ch_thread is None:
            return
        self.ch_stop.set()
        self.ch_thread.join(timeout=600)
        if self.ch_thread.is_alive():
            self.fail("the churning client did not stop in 600 s")
        self.ch_thread = None
        if self.ch_err:
            self.fail("churn: %s" % self.ch_err)

    def churn_retry(self, fn):
        # FUSE delivers the release of a closed file asynchronously
        for n in range(50):
            try:
                return fn()
            except OSError as e:
                if e.errno != errno.EBUSY or n == 49:
                    raise
            time.sleep(0.1)

    def churn_loop(self):
        rng = random.Random(SEED + 1)
        what = "start"
        try:
            while not self.ch_stop.wait(rng.uniform(0.2, 1.5)):
                self.ch_n += 1
                name = "c%05d" % self.ch_n
                path = os.path.join(self.mnt, name)
                k = rng.random()
                lo = max(self.main_since + 1, now() - RETENTION + 10)
                if k < 0.15:
                    what = "gc"
                    p = subprocess.run([BRANCHCTL, "--mount", self.mnt, "gc"], text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
                    if p.returncode != 0:
                        raise RuntimeError("gc exited %d: %s" % (p.returncode, p.stderr.strip()))
                    continue
                if k < 0.6 or lo > now() - 1:
                    what = "mkdir " + name
                    os.mkdir(path)
                else:
                    T = rng.uniform(lo, now() - 0.5)
                    what = "create %s --at %s" % (name, iso(T))
                    p = subprocess.run([BRANCHCTL, "--mount", self.mnt, "create", name, "--at",
                                        iso(T)], text=True, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, timeout=600)
                    if p.returncode == 8 and T < self.oldest_quiet() + 0.001:
                        continue  # op_retention moved the horizon
                    if p.returncode != 0:
                        raise RuntimeError("exited %d: %s" % (p.returncode, p.stderr.strip()))
                what = "read " + name
                with open(os.path.join(path, "global", "pg_control"), "rb") as f:
                    if len(f.read()) != 8192:
                        raise RuntimeError("pg_control is not 8192 bytes")
                with open(os.path.join(path, "PG_VERSION")) as f:
                    if f.read().strip() != "15":
                        raise RuntimeError("PG_VERSION is not 15")
                if os.path.exists(os.path.join(path, "postmaster.pid")):
                    raise RuntimeError("the branch carries postmaster.pid")
                if len(os.listdir(os.path.join(path, "base"))) < 3:
                    raise RuntimeError("base/ has fewer than 3 databases")
                if rng.random() < 0.5:
                    what = "rmdir " + name
                    self.churn_retry(lambda: os.rmdir(path))
                else:
                    what = "delete " + name
                    for n in range(50):
                        p = subprocess.run([BRANCHCTL, "--mount", self.mnt, "delete", name],
                                           text=True, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, timeout=600)
                        if p.returncode != 6:
                            break
                        time.sleep(0.1)
                    if p.returncode != 0:
                        raise RuntimeError("exited %d: %s" % (p.returncode, p.stderr.strip()))
                self.ch_made += 1
        except Exception as e:  # noqa: BLE001 - reported to the main thread
            self.ch_err = "%s: %r" % (what, e)

    # ---- cycles ---------------------------------------------------------------

    def check_main(self, full=False):
        port = self.pg["main"]["port"]
        ids = set(self.marker_ids(port))
        with self.mk_lock:
            acked = [i for (i, _, _) in self.acked]
        missing = [i for i in acked if i not in ids]
        if missing:
            self.fail("main lost %d acknowledged markers: %s" % (len(missing), missing[:20]))
        if self.lineage_of(port):
            self.fail("main has lineage rows of branches: %s" % sorted(self.lineage_of(port)))
        self.check_sums("main", port)
        if full:
            self.amcheck("main", port)
        self.log("main holds all %d acknowledged markers" % len(acked))

    def stop_all(self):
        t = now()
        self.load_stop()
        t1 = now()
        for n in [n for n in self.pg if n != "main"]:
            self.pg_stop(n)
        t2 = now()
        if "main" in self.pg:
            self.pg_stop("main")
        self.log("stopped: load %.1fs, branches %.1fs, main %.1fs" % (t1 - t, t2 - t1, now() - t2))

    def drain(self):
        """Delete every branch but main (leaves first), gc, and measure."""
        while True:
            leaves = self.stopped(leaf=True)
            if not leaves:
                break
            for n in leaves:
                self.delete(n)
        if len(self.br) != 1:
            self.fail("drain left branches: %s" % sorted(self.br))
        self.op_gc()
        self.op_gc()
        p = self.ctl_ok("--json", "list")
        lb = [b["logical_bytes"] for b in json.loads(p.stdout)["branches"] if b["name"] == "main"][0]
        sb = self.store_bytes()
        self.floors.append((round(now() - self.t0), self.iter, sb, lb, self.rss_kb()))
        self.log("drain: store %.1f MiB, main's logical size %.1f MiB, branchd RSS %d KiB" % (
            sb / 2**20, lb / 2**20, self.rss_kb()))
        if len(self.floors) >= 4:
            base = max(f[2] for f in self.floors[:3])
            grew = max(0, lb - self.floors[0][3])
            if sb > 1.5 * base + grew:
                self.fail("the store after a drain is %.1f MiB, the first three drains left at "
                          "most %.1f MiB (main grew %.1f MiB since): space is not coming back" % (
                              sb / 2**20, base / 2**20, grew / 2**20))

    def cycle_remount(self):
        self.log("== remount cycle")
        self.stop_all()
        names = set(self.ctl_list())
        self.umount()
        self.mount()
        self.remounts += 1
        got = set(self.ctl_list())
        if got != names:
            self.fail("branches after the remount %s, before %s" % (sorted(got), sorted(names)))
        self.pg_start("main", expect_recovery=False)
        self.check_main(full=True)
        self.load_start()

    def ctl_list(self):
        p = self.ctl_ok("--json", "list")
        return [b["name"] for b in json.loads(p.stdout)["branches"]]

    def cycle_kill(self):
        running = [n for n in self.pg if n != "main"]
        # the kill lands during the load alone, a `branchctl gc`, or a
        # mkdir of main (in its checkpoint, or just after)
        kind = self.rng.choice(["load", "gc", "mkdir", "reset", "rename"])
        rs_cands = [n for n in self.stopped(leaf=True) if self.br[n]["parent"] == "main" and
                    self.br[n]["mset"] is not None]
        if kind in ("reset", "rename") and not rs_cands:
            kind = "load"
        self.log("== SIGKILL branchd during %s (running: main %s)" % (kind, " ".join(running)))
        gc = th = rs = None
        res = {}
        if kind in ("reset", "rename"):
            rs = self.rng.choice(rs_cands)
            old = (self.br[rs]["mset"], set(self.br[rs]["lineage"]))
            rn = "r%04d" % (self.nbr + 1)
            self.nbr += 1

            def do_ctl():
                res["t0"] = now()
                args = ("reset", rs) if kind == "reset" else ("rename", rs, rn)
                p = subprocess.run([BRANCHCTL, "--mount", self.mnt] + list(args), text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
                res["t1"] = now()
                res["rc"] = p.returncode
                res["err"] = p.stderr.strip()

            th = threading.Thread(target=do_ctl)
            th.start()
            time.sleep(self.rng.uniform(0, 1.5))
        if kind == "gc":
            gc = subprocess.Popen([BRANCHCTL, "--mount", self.mnt, "gc"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
            time.sleep(self.rng.uniform(0, 1))
        elif kind == "mkdir":
            mk = self.new_name()

            def do_mkdir():
                res["t0"] = now()
                try:
                    os.mkdir(os.path.join(self.mnt, mk))
                    res["t1"] = now()
                except OSError as e:
                    res["err"] = e.strerror

            th = threading.Thread(target=do_mkdir)
            th.start()
            time.sleep(self.rng.uniform(0, 1.5))
        else:
            time.sleep(self.rng.uniform(0, 2))
        tk = now()
        self.bd.kill()
        self.bd.wait()
        self.kills += 1
        if gc is not None:
            gc.wait(timeout=120)
        if th is not None:
            th.join(timeout=120)
        done = "t1" in res and res["t1"] < tk and res.get("rc", 0) == 0
        if kind == "mkdir":
            self.log("mkdir %s: %s" % (mk, "returned %.0f ms before the kill" % (
                (tk - res["t1"]) * 1000) if "t1" in res else res.get("err", "?")))
        elif rs is not None:
            self.log("%s of %s: %s" % (kind, rs, "returned %.0f ms before the kill" % (
                (tk - res["t1"]) * 1000) if done else "exit %s: %s" % (res.get("rc"),
                                                                       res.get("err"))))
        self.pg_kill_all()
        self.load_stop()
        p = self.run(["fusermount3", "-u", self.mnt], check=False, timeout=60)
        if p.returncode != 0:
            self.log("fusermount3 -u: %s; lazy" % p.stderr.strip())
            self.run(["fusermount3", "-uz", self.mnt], timeout=60)
        self.mounted = False
        self.bd = None
        self.mount()
        got = set(self.ctl_list())
        if kind == "mkdir" and mk in got:
            self.add_branch(mk, "main")
        elif kind == "mkdir" and "t1" in res and res["t1"] < tk:
            self.fail("branch %s, made by a mkdir that returned before the kill, is gone" % mk)
        if kind == "rename":
            if rn in got and rs not in got:
                self.br[rn] = self.br.pop(rs)
                self.log("rename %s %s: done before the kill" % (rs, rn))
                rs = rn
            elif done:
                self.fail("rename %s %s returned 0 before the kill, but after it: %s" % (
                    rs, rn, sorted(got)))
        if got != set(self.br):
            self.fail("branches after the crash %s, model %s" % (sorted(got), sorted(self.br)))
        self.pg_start("main", expect_recovery=True)
        self.check_main(full=True)
        if kind == "reset":
            port = self.pg_start(rs)
            sig = self.markers_of(port)
            lin = self.lineage_of(port)
            if sig == old[0] and lin == old[1] and not done:
                self.log("%s: the reset did not happen before the kill: old state intact" % rs)
            else:
                hi = min(res["t1"], tk) if "t1" in res else tk
                sig, kmin, kmax = self.check_window(rs, port, res["t0"], hi)
                if lin:
                    self.fail("%s: reset to main, but lineage rows %s" % (rs, sorted(lin)))
                b = self.br[rs]
                b["mset"], b["lineage"], b["own"], b["created"] = sig, set(), {}, hi
                b["reset_t0"] = res["t0"]
                self.log("%s: reset before the kill: markers 1..%d (allowed %d..%d)" % (
                    rs, sig[1], kmin, kmax))
            self.check_sums(rs, port)
            self.pg_stop(rs)
        if kind == "mkdir" and mk in got:
            # a crash image of main between the mkdir's start and its return
            # (or the kill)
            self.check_branch(mk, lo_t=res["t0"], hi_t=min(res.get("t1", tk), tk))
        for n in running:
            b = self.br[n]
            # acked lineage rows survive; markers are fixed since creation
            port = self.pg_start(n, expect_recovery=True)
            sig = self.markers_of(port)
            lin = self.lineage_of(port)
            if sig != b["mset"] or lin != b["lineage"]:
                self.fail("%s after the crash: markers %s lineage %s, expected %s %s" % (
                    n, sig, sorted(lin), b["mset"], sorted(b["lineage"])))
            self.check_sums(n, port)
            self.log("%s recovered with its markers and lineage" % n)
            self.pg_stop(n)
        self.load_start()

    # ---- main -----------------------------------------------------------------

    def setup(self):
        self.pg_uid = pwd.getpwnam("postgres").pw_uid
        self.log("seed %d, %d s, scale %d, %d tps, retention %d s, gc every %d s, remount every %d, "
                 "kill p=%.2f, temp dir %s" % (SEED, SECONDS, SCALE, TPS, RETENTION, GC_INTERVAL,
                                               REMOUNT_EVERY, KILL_PROB, self.T))
        threading.Thread(target=self.sampler, daemon=True).start()
        self.mount()
        main = os.path.join(self.mnt, "main")
        os.mkdir(main)
        os.chown(main, self.pg_uid, -1)
        os.chmod(main, 0o700)
        self.br["main"] = {"parent": None, "mset": None, "lineage": set(), "created": now(),
                           "own": {}}
        self.run([PGBIN + "/initdb", "-D", main, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C"], as_pg=True, timeout=600)
        port = self.pg_start("main")
        self.q(port, "create table marker(id int primary key, at timestamptz not null); "
                     "create table lineage(name text primary key)")
        t = now()
        self.run([PGBIN + "/pgbench", "-i", "-q", "-s", str(SCALE), "-h", self.sock, "-p",
                  str(port), "-U", "postgres", "postgres"], timeout=1200)
        self.log("pgbench -i -s %d took %.0f s" % (SCALE, now() - t))
        self.main_since = now()
        self.load_start()
        time.sleep(3)
        self.load_check()

    def soak(self):
        ops = [("mkdir", self.op_mkdir, 5), ("at", self.op_at, 4), ("child", self.op_child, 3),
               ("reset", self.op_reset, 3), ("rename", self.op_rename, 2),
               ("delete", self.op_delete, 4), ("busy", self.op_busy, 2),
               ("verify", self.op_verify, 2), ("gc", self.op_gc, 2),
               ("retention", self.op_retention, 1)]
        end = now() + SECONDS
        while now() < end:
            self.iter += 1
            self.check_bd()
            self.load_check()
            if self.ch_err:
                self.churn_halt()
            if self.ch_thread is None:
                self.churn_start()
            pause = (self.iter % REMOUNT_EVERY == 0 or self.iter % DRAIN_EVERY == 0 or
                     (self.iter > 3 and self.rng.random() < KILL_PROB))
            if pause:
                self.churn_halt()
            if self.iter % REMOUNT_EVERY == 0:
                self.cycle_remount()
                self.ops["remount"] = self.ops.get("remount", 0) + 1
                continue
            if self.iter % DRAIN_EVERY == 0:
                self.log("== drain")
                for n in [n for n in self.pg if n != "main"]:
                    self.pg_stop(n)
                self.drain()
                self.ops["drain"] = self.ops.get("drain", 0) + 1
                continue
            if pause:
                self.cycle_kill()
                self.ops["kill"] = self.ops.get("kill", 0) + 1
                continue
            if len(self.br) - 1 > MAX_BRANCHES and self.stopped(leaf=True):
                name, fn = "delete", self.op_delete
            else:
                name, fn, _ = self.rng.choices(ops, weights=[w for (_, _, w) in ops])[0]
            self.log("-- iteration %d: %s" % (self.iter, name))
            fn()
            self.ops[name] = self.ops.get(name, 0) + 1
        self.churn_halt()
        self.log("== final: drain, stop, remount, check")
        for n in [n for n in self.pg if n != "main"]:
            self.pg_stop(n)
        self.drain()
        self.stop_all()
        self.umount()
        self.mount()
        self.pg_start("main", expect_recovery=False)
        self.check_main(full=True)
        self.pg_stop("main")
        self.umount()

    def summary(self):
        self.log("iterations %d, branches made %d, remounts %d, branchd kills %d" % (
            self.iter, self.made, self.remounts, self.kills))
        self.log("churning client: %d branches made, read and deleted" % self.ch_made)
        self.log("operations: %s" % ", ".join("%s %d" % kv for kv in sorted(self.ops.items())))
        if self.busy_waits:
            self.log("busy right after a server stopped: %d times, at most %d ms" % (
                len(self.busy_waits), max(ms for (_, ms) in self.busy_waits)))
        with self.mk_lock:
            self.log("markers acknowledged %d of %d sent" % (len(self.acked), len(self.sent)))
        if self.samples:
            n = len(self.samples)
            pick = sorted(set([0, n - 1] + [n * k // 10 for k in range(1, 10)]))
            self.log("samples (elapsed s, iteration, branchd RSS MiB, store MiB, branches):")
            for k in pick:
                e, it, rss, sb, nb = self.samples[k]
                self.log("  %6d %5d %8.1f %9.1f %4d" % (e, it, rss / 1024, sb / 2**20, nb))
            rss = [s[2] for s in self.samples if s[2] >= 0]
            self.log("branchd RSS min/max %.1f/%.1f MiB; store min/max %.1f/%.1f MiB" % (
                min(rss, default=0) / 1024, max(rss, default=0) / 1024,
                min(s[3] for s in self.samples) / 2**20, max(s[3] for s in self.samples) / 2**20))
        if self.floors:
            self.log("after each drain (elapsed s, iteration, store MiB, main logical MiB, RSS MiB):")
            for e, it, sb, lb, rss in self.floors:
                self.log("  %6d %5d %9.1f %9.1f %8.1f" % (e, it, sb / 2**20, lb / 2**20, rss / 1024))

    def cleanup(self, ok):
        self.sampler_stop.set()
        if self.ch_thread is not None:
            self.ch_stop.set()
            self.ch_thread.join(timeout=300)
        try:
            self.mk_halt()
        except SoakFail:
            pass
        if self.load is not None and self.load.poll() is None:
            self.load.kill()
            self.load.wait()
        for name, info in list(self.pg.items()):
            if self.bd_alive():
                subprocess.run(AS_PG + [PGBIN + "/pg_ctl", "-D", info["dir"], "stop", "-m",
                                        "immediate", "-w", "-t", "60"], cwd=self.T,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90)
        self.pg_kill_all()
        if os.path.ismount(self.mnt) or self.mounted:
            r = subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL)
            if r.returncode != 0:
                subprocess.run(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)
        if self.bd is not None:
            try:
                self.bd.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.bd.kill()
                self.bd.wait()
        if ok and os.environ.get("SOAK_KEEP", "0") != "1":
            shutil.rmtree(self.T, ignore_errors=True)
        else:
            self.log("temp dir kept: %s" % self.T)


def main():
    if os.geteuid() != 0:
        sys.exit("soak.py must run as root (FUSE mounts, Postgres as user postgres)")
    for b in (BRANCHD, BRANCHCTL, PGBIN + "/pg_ctl", PGBIN + "/pg_amcheck", PGBIN + "/pgbench"):
        if not os.access(b, os.X_OK):
            sys.exit("soak.py: %s is missing (make all; PostgreSQL 15)" % b)
    s = Soak()
    ok = False

    def on_term(sig, frm):
        raise SoakFail("caught signal %d" % sig)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        s.setup()
        s.soak()
        ok = True
    except SoakFail as e:
        s.log("FAIL at iteration %d: %s" % (s.iter, e))
        s.log(traceback.format_exc().strip().splitlines()[-3])
        if s.bd is not None:
            s.log("tail of %s:\n%s" % (s.bd_log, open(s.bd_log).read()[-2000:]))
    except Exception:  # noqa: BLE001 - a bug of the harness fails the run too
        s.log("FAIL at iteration %d: harness error\n%s" % (s.iter, traceback.format_exc()))
    finally:
        s.summary()
        s.cleanup(ok)
    s.log("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
