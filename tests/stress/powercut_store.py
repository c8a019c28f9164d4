#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""powercut_store.py BIN WORKDIR ITERATIONS SEED - power-cut loop on the store.

Not part of make check (minutes of run time).  Each iteration runs
`BIN run` (tests/stress/powercut_store.c) under build/powercut.so on the
same store, kills it with SIGKILL after a random time, rewrites the store
as a power cut would leave it (tests/powercut/powercut_image.py, random
unsynced sectors kept; in a fifth of the rounds nothing is cut: a kill -9
alone, after which every operation that returned must be there),
sometimes cuts the power again during the next open's journal replay, and
then checks with `BIN dump` that:
  - an open after a kill -9 alone (no power cut since) finds no hole in
    RocksDB's WAL (store/walscan.h): there the WAL is whole, and a cut
    would drop writes RocksDB may have synced; the opens' logs must not
    say "lost the batches of sequences" and db/BRANCHFS-WAL-HOLE must not
    change.  The cuts seen after power cuts are counted and printed;
  - a read-only open (as branchd --check) and then an open find no
    damage (store_check, journal damage held);
  - its state (branches, their parents, the files of their roots, the
    settings) is exactly the state after some prefix of the operations
    begun, and that prefix includes every operation that was durable when
    it returned (synced branch ops, settings, syncs).
The state model is kept here, starting from the verified state.
Exit 1 on the first failure, with the store copied to WORKDIR/fail-N.
"""
import copy
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PCLIB = os.environ.get('PS_PCLIB') or os.path.join(ROOT, 'build', 'powercut.so')
PCIMG = os.path.join(ROOT, 'tests', 'powercut', 'powercut_image.py')


def byte(pat, off):
    x = (off * 0x9E3779B97F4A7C15 + pat * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x ^= x >> 29
    return (x | 1) & 0xff


PERIOD = 8191  # prime, near a block: data zstd cannot shrink much
_tables = {}


def table(pat):
    if pat not in _tables:
        if len(_tables) > 4096:
            _tables.clear()
        _tables[pat] = bytes(byte(pat, j) for j in range(PERIOD))
    return _tables[pat]


class Model:
    def __init__(self):
        self.settings = {}
        self.br = {}  # uid -> dict(name, parent uid, files)
        self.next_uid = 1

    def by_name(self, name):
        for u, b in self.br.items():
            if b['name'] == name:
                return u
        raise KeyError('model has no branch %r' % name)

    def render(self):
        out = []
        for k in range(3):
            key = 'ps.k%d' % k
            out.append('setting %s %s' % (key, self.settings.get(key, '-')))
        for u in sorted(self.br, key=lambda u: self.br[u]['name'].encode()):
            b = self.br[u]
            par = self.br[b['parent']]['name'] if b['parent'] else '-'
            out.append('branch %s %s' % (b['name'], par))
            for f in sorted(b['files'], key=lambda f: f.encode()):
                d = bytes(b['files'][f])
                out.append('file %s %d %08x' % (f, len(d), zlib.crc32(d)))
        return '\n'.join(out) + '\n'


def apply(m, op, a, n, lastw):
    """Apply op to m; return the durable index it sets when acked (or None)."""
    if op in ('BC', 'BCL'):
        name, parent = a[0], a[1]
        u = m.next_uid
        m.next_uid += 1
        if parent == '-':
            m.br[u] = dict(name=name, parent=0, files={})
        else:
            p = m.by_name(parent)
            m.br[u] = dict(name=name, parent=p, files=copy.deepcopy(m.br[p]['files']))
        lastw[u] = n
        return None if op == 'BCL' else n
    if op in ('CR', 'W', 'T', 'U'):
        u = m.by_name(a[0])
        files = m.br[u]['files']
        f = a[1]
        if op == 'CR':
            files[f] = bytearray()
        elif op == 'W':
            off, ln, pat = int(a[2]), int(a[3]), int(a[4])
            d = files[f]
            if len(d) < off + ln:
                d.extend(bytes(off + ln - len(d)))
            t = table(pat)
            s0 = off % PERIOD
            d[off:off + ln] = (t * ((s0 + ln) // PERIOD + 1))[s0:s0 + ln]
        elif op == 'T':
            size = int(a[2])
            d = files[f]
            if size < len(d):
                del d[size:]
            else:
                d.extend(bytes(size - len(d)))
        else:
            del files[f]
        lastw[u] = n
        return None
    if op == 'S':
        if a[0] == '-':
            return n
        return lastw.get(m.by_name(a[0]), 0)
    if op == 'BD':
        u = m.by_name(a[0])
        del m.br[u]
        return n
    if op == 'BR':
        m.br[m.by_name(a[0])]['name'] = a[1]
        return n
    if op == 'BX':
        u = m.by_name(a[0])
        m.br[u]['files'] = copy.deepcopy(m.br[m.br[u]['parent']]['files'])
        lastw[u] = n
        return n
    if op == 'P':
        m.settings[a[0]] = a[1]
        return n
    if op in ('G', 'DD'):
        return None
    raise ValueError('unknown op %s' % op)


def read_log(path):
    ops, acked = [], {}
    with open(path) as f:
        for line in f:
            if not line.endswith('\n'):
                break
            w = line.split()
            if w[0] == 'B':
                ops.append((int(w[1]), w[2], w[3:]))
            elif w[0] == 'A':
                acked[int(w[1])] = int(w[2])
            elif w[0] == 'X':
                raise RuntimeError('driver failed: %s' % line.strip())
    return ops, acked


def verify(m0, logp, dump, killed_only):
    """The model state matching dump, or raise.  killed_only: the process
    was killed and nothing cut, so every operation that returned is kept."""
    ops, acked = read_log(logp)
    # the durable floor: replay once to find it
    m, lastw, floor = copy.deepcopy(m0), {}, -1
    for n, op, a in ops:
        d = apply(m, op, a, n, lastw)
        if n in acked and acked[n] != 0 and op not in ('G', 'DD'):
            raise RuntimeError('op %d %s %s failed: %d' % (n, op, a, acked[n]))
        if d is not None and n in acked:
            floor = max(floor, d)
        if killed_only and n in acked:
            floor = max(floor, n)
    m, lastw = copy.deepcopy(m0), {}
    if floor < 1 and m.render() == dump:
        return m, 0, len(ops), floor
    for n, op, a in ops:
        apply(m, op, a, n, lastw)
        if n >= floor:
            r = m.render()
            if r == dump:
                return m, n, len(ops), floor
    raise RuntimeError('recovered state matches no prefix at or after op %d (of %d ops)'
                       % (floor, len(ops)))


WAL_HOLE = 'lost the batches of sequences'  # walscan's words, cut or seen
WAL_CUT = 'cut before them'                 # walscan_cut's: it cut


def aside(store):
    """What walscan_cut kept: {name: size} of store/db/BRANCHFS-WAL-HOLE."""
    d = os.path.join(store, 'db', 'BRANCHFS-WAL-HOLE')
    if not os.path.isdir(d):
        return {}
    return {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)}


def run_cut(argv, env, store, shadow, t, seed, log, cut=True):
    shutil.rmtree(shadow, ignore_errors=True)
    e = dict(os.environ, LD_PRELOAD=PCLIB, POWERCUT_DIR=store, POWERCUT_SHADOW=shadow, **env)
    p = subprocess.Popen(argv, env=e, stdout=log, stderr=log)
    try:
        p.wait(timeout=t)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        if not cut:
            return 'killed', subprocess.CompletedProcess([], 0)
        r = subprocess.run([sys.executable, PCIMG, store, shadow, str(seed)],
                           capture_output=True, text=True)
        return 'killed', r
    return p.returncode, None


def main():
    binp, work, iters, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    store, shadow = os.path.join(work, 'store'), os.path.join(work, 'shadow')
    os.makedirs(work, exist_ok=True)
    shutil.rmtree(store, ignore_errors=True)
    m = Model()
    stats = dict(ops=0, replay_cuts=0, replay_cuts_empty=0, prefix_lag=0, wal_cuts=0, wal_cut_rounds=0,
                 clean_rounds=0)
    t0 = time.time()
    for it in range(1, iters + 1):
        logp = os.path.join(work, 'ops.log')
        if os.path.exists(logp):
            os.unlink(logp)
        with open(os.path.join(work, 'child.err'), 'w') as lf:
            killed_only = rng.random() < 0.2
            rc, img = run_cut([binp, 'run', store, logp, str(rng.randrange(1 << 30))], {},
                              store, shadow, rng.uniform(0.3, 2.5), rng.randrange(1 << 30), lf,
                              cut=not killed_only)
        if rc != 'killed':
            print('iteration %d: the driver exited %s: %s' % (it, rc,
                  open(os.path.join(work, 'child.err')).read()[-2000:]))
            return fail(work, it)
        if img.returncode != 0:
            print('iteration %d: powercut_image: %s %s' % (it, img.stdout, img.stderr))
            return fail(work, it)
        # walscan's oracle: after a kill -9 alone, no open may cut the WAL
        # (nor see a hole in it) until the power is cut again
        whole = killed_only
        aside0 = aside(store)
        said = ''  # what the opens of this round logged
        if rng.random() < 0.3:
            # cut again during the next open (journal replay, restart)
            with open(os.path.join(work, 'replay.err'), 'w') as lf:
                rc2, img2 = run_cut([binp, 'dump', store, os.path.join(work, 'ignored')],
                                    dict(PS_KILL_US=str(rng.randrange(40000))),
                                    store, shadow, 30, rng.randrange(1 << 30), lf)
            said += open(os.path.join(work, 'replay.err')).read()
            if whole and WAL_HOLE in said:
                print('iteration %d: after a kill -9 alone, the open cut the WAL: %s' % (
                    it, said[-1500:]))
                return fail(work, it)
            if rc2 == -signal.SIGKILL:
                img2 = subprocess.run([sys.executable, PCIMG, store, shadow,
                                       str(rng.randrange(1 << 30))],
                                      capture_output=True, text=True)
                if img2.returncode != 0 and 'wrote nothing there' in img2.stderr:
                    # killed before it wrote to the store: nothing to cut
                    stats['replay_cuts_empty'] += 1
                elif img2.returncode != 0:
                    print('iteration %d: powercut_image after the replay: %s %s' % (
                        it, img2.stdout, img2.stderr))
                    return fail(work, it)
                else:
                    whole = False
                    stats['replay_cuts'] += 1
            elif rc2 != 0:
                print('iteration %d: open during the replay cut failed %s: %s' % (it, rc2,
                      open(os.path.join(work, 'replay.err')).read()[-2000:]))
                return fail(work, it)
        if os.environ.get('PS_KEEP_IMAGE'):
            # the image as cut, before any open changes it, for a failure
            shutil.rmtree(os.path.join(work, 'image'), ignore_errors=True)
            shutil.copytree(store, os.path.join(work, 'image'), symlinks=True)
            with open(os.path.join(work, 'model.pickle'), 'wb') as f:
                pickle.dump(m, f)
        r = subprocess.run([binp, 'check', store], capture_output=True, text=True)
        said += r.stderr
        if r.returncode != 0:
            print('iteration %d: read-only check after the cut failed (%d): %s' % (
                it, r.returncode, r.stderr[-3000:]))
            return fail(work, it)
        dumpp = os.path.join(work, 'dump')
        r = subprocess.run([binp, 'dump', store, dumpp], capture_output=True, text=True)
        if r.returncode != 0:
            print('iteration %d: open/check after the cut failed (%d): %s' % (it, r.returncode,
                  r.stderr[-3000:]))
            return fail(work, it)
        if r.stderr.strip():
            print('iteration %d: open said: %s' % (it, r.stderr.strip()[-1500:]))
        said += r.stderr
        if whole and (WAL_HOLE in said or aside(store) != aside0):
            print('iteration %d: after a kill -9 alone, an open found a hole in the WAL '
                  '(BRANCHFS-WAL-HOLE %s, then %s)' % (it, aside0, aside(store)))
            return fail(work, it)
        stats['clean_rounds'] += whole
        stats['wal_cuts'] += said.count(WAL_CUT)
        stats['wal_cut_rounds'] += WAL_CUT in said
        dump = open(dumpp).read()
        try:
            m, k, nops, floor = verify(m, logp, dump, killed_only)
            ops = read_log(logp)[0]
            last = ops[-1][0] if ops else 0  # killed before its first op
        except RuntimeError as e:
            print('iteration %d: %s' % (it, e))
            return fail(work, it)
        stats['ops'] += nops
        if it % 10 == 0 or it == iters or os.environ.get('PS_VERBOSE'):
            print('iteration %d: %d ops (durable floor %d, recovered prefix %d); total %d ops, '
                  '%d replay cuts, %d WAL hole cuts, %.0f s, last begun %d' % (
                      it, nops, floor, k, stats['ops'], stats['replay_cuts'],
                      stats['wal_cuts'], time.time() - t0, last), flush=True)
    print('PASS: %d iterations, %d ops, %d replay cuts (and %d replays killed before they '
          'wrote); WAL holes cut: %d (in %d rounds), none in the %d rounds of a kill -9 alone' % (
              iters, stats['ops'], stats['replay_cuts'], stats['replay_cuts_empty'],
              stats['wal_cuts'], stats['wal_cut_rounds'], stats['clean_rounds']))
    return 0


def fail(work, it):
    dst = os.path.join(work, 'fail-%d' % it)
    shutil.copytree(os.path.join(work, 'store'), dst, symlinks=True)
    if os.path.isdir(os.path.join(work, 'image')):
        shutil.copytree(os.path.join(work, 'image'), dst + '.image', symlinks=True)
    for f in ('ops.log', 'dump', 'model.pickle'):
        if os.path.exists(os.path.join(work, f)):
            shutil.copy(os.path.join(work, f), dst + '.' + f)
    print('FAIL at iteration %d: store copied to %s' % (it, dst))
    return 1


if __name__ == '__main__':
    sys.exit(main())
