#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""powercut_image.py - turn a directory into what a power cut would have left.

Usage: powercut_image.py DIR SHADOW SEED [synced]

Run after the process that wrote DIR under powercut.so (POWERCUT_DIR=DIR,
POWERCUT_SHADOW=SHADOW) is dead.  For every regular file of DIR that has a
shadow (SHADOW/<st_ino>.<generation>: its content as of its last fsync; the
inode's generation tells it from an earlier file that had the same inode
number, powercut.c), the file is
rewritten as the shadow plus a random subset of the sectors written since,
as a disk may have written any of them before the power went:

  - a third of such files keep exactly their synced content;
  - the others take each changed unit (512 B or 4 KiB, chosen per file, so
    that records torn inside a page happen too) with probability 0.1, 0.5
    or 0.9 (chosen per file); a file that grew keeps its synced size unless
    a unit beyond it was taken (then up to that unit; units skipped in
    between read as zeros), and a file that shrank keeps its synced size or
    takes the new one.

With "synced", every file keeps exactly its synced content (the outcome a
test can predict).  Files without a shadow were not written by that process
and stay as they are.  Exits 1 when SHADOW is missing or no file of DIR has
a shadow: the process did not run under powercut.so (a wrong LD_PRELOAD is
ignored by the loader with a warning), and a cut would prove nothing.
Prints one summary line; SEED makes the choice repeatable.
"""
import fcntl
import os
import random
import struct
import sys

FS_IOC_GETVERSION = 0x80087601  # _IOR('v', 1, long); the kernel writes an int


def generation(path):
    """The inode generation of path, 0 where the file system has none (as
    powercut.c names the shadows)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = fcntl.ioctl(fd, FS_IOC_GETVERSION, bytes(8))
        return struct.unpack('<I', buf[:4])[0]
    except OSError:
        return 0
    finally:
        os.close(fd)


def cut_file(path, shadow, rng, synced_only):
    with open(shadow, 'rb') as f:
        synced = f.read()
    with open(path, 'rb') as f:
        now = f.read()
    if synced == now:
        return None
    unit = rng.choice((512, 4096))
    keep_synced = synced_only or rng.random() < 1 / 3
    p = rng.choice((0.1, 0.5, 0.9))
    out = bytearray(synced)
    changed = taken = 0
    top = len(synced)  # the size the result gets, at least the synced one
    for off in range(0, max(len(synced), len(now)), unit):
        a, b = synced[off:off + unit], now[off:off + unit]
        if a == b or not b:
            continue
        changed += 1
        if keep_synced or rng.random() >= p:
            continue
        taken += 1
        end = off + len(b)
        if end > len(out):
            out.extend(bytes(end - len(out)))
        out[off:end] = b
        top = max(top, end)
    size = top
    if len(now) < len(synced) and not keep_synced and rng.random() < p:
        size = len(now)  # the truncation reached the disk
    del out[size:]
    if len(out) < size:
        out.extend(bytes(size - len(out)))
    with open(path, 'r+b') as f:
        f.write(out)
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())
    return changed, taken, keep_synced


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[4:] not in ([], ['synced']):
        sys.exit('usage: powercut_image.py DIR SHADOW SEED [synced]')
    top, shadow_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    synced_only = len(sys.argv) == 5
    rng = random.Random(seed)
    if not os.path.isdir(shadow_dir):
        sys.exit('powercut_image.py: no shadow directory %s: the process did not run under '
                 'powercut.so' % shadow_dir)
    files = tracked = cut = units = kept = 0
    inos = {n.split('.')[0] for n in os.listdir(shadow_dir)}
    names = []
    for root, dirs, fnames in os.walk(top):
        dirs.sort()
        for name in sorted(fnames):
            path = os.path.join(root, name)
            st = os.lstat(path)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            files += 1
            if str(st.st_ino) not in inos:
                continue
            shadow = os.path.join(shadow_dir, '%d.%d' % (st.st_ino, generation(path)))
            if not os.path.exists(shadow):
                continue
            tracked += 1
            r = cut_file(path, shadow, rng, synced_only)
            if r is None:
                continue
            cut += 1
            units += r[0]
            kept += r[1]
            names.append('%s(%d/%d%s)' % (os.path.relpath(path, top), r[1], r[0],
                                          ' synced' if r[2] else ''))
    if tracked == 0:
        sys.exit('powercut_image.py: none of the %d files of %s has a shadow in %s: the process '
                 'wrote nothing there under powercut.so' % (files, top, shadow_dir))
    print('powercut: %d files, %d written by the process, %d changed since their last '
          'fsync: %d unsynced units, %d of them kept: %s'
          % (files, tracked, cut, units, kept, ' '.join(names) or '-'))


if __name__ == '__main__':
    main()
