#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
# t52: fallocate PUNCH_HOLE and ZERO_RANGE cost what the file holds, not
# the length of the range: a hole punched over a sparse file of 2^62 bytes
# returns at once (it wrote a ZERO version for every 8 KiB block of the
# range, about 700 a second, holding the caller in an uninterruptible
# wait, a FUSE worker and the file's lock for ever, and an unmount only
# detached the mount: branchd kept writing), and leaves the data outside
# the range and the parent branch's copy alone; punches and zeroed ranges
# at odd offsets, over a file's own data and over data a branch inherits,
# give the same bytes and sizes as on the local disk.
source "$(dirname "$0")/lib.sh"
it_init

# falloc FILE SPEC...: apply "MODE OFF LEN" fallocate calls in order (MODE
# a number: 3 = PUNCH_HOLE|KEEP_SIZE, 16 = ZERO_RANGE, 17 = ZERO_RANGE|
# KEEP_SIZE), then print the size and the sha256 of the file
FALLOC_PY='
import ctypes, hashlib, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDWR)
for spec in sys.argv[2:]:
    mode, off, ln = (int(x) for x in spec.split())
    if libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(ln)) != 0:
        sys.exit("fallocate %s: %s" % (spec, os.strerror(ctypes.get_errno())))
size = os.fstat(fd).st_size
h = hashlib.sha256()
if size < (1 << 30):
    h.update(os.pread(fd, size, 0))
os.close(fd)
print(size, h.hexdigest())
'
falloc() { tmo 30 python3 -c "$FALLOC_PY" "$@"; }

bfs_mount
mkdir "$MNT/main"

# A sparse file of 2^62 bytes with data near both ends and in the middle.
tmo 30 python3 - "$MNT/main/big" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)
os.ftruncate(fd, 1 << 62)
os.pwrite(fd, b"C" * 100, 0)
os.pwrite(fd, b"A" * 20000, (1 << 40) + 100)
os.pwrite(fd, b"B" * 5000, (1 << 62) - 5000)
os.close(fd)
PY
mkdir "$MNT/b1"
# In the background: a caller stuck in the kernel cannot be timed out, only
# freed by the cleanup's stop of branchd.
t0=$(date +%s)
python3 -c "$FALLOC_PY" "$MNT/b1/big" "3 10 $(((1 << 62) - 20))" >"$T/punch.out" 2>&1 &
pid=$!
IT_BG+=("$pid")
for ((n = 0; n < 300; n++)); do
	_it_alive "$pid" || break
	sleep 0.1
done
! _it_alive "$pid" || fail "punching a hole over a sparse 2^62-byte file did not return within 30 s"
wait "$pid" || fail "punching a hole over a sparse 2^62-byte file failed: $(cat "$T/punch.out")"
log "hole over 2^62 bytes punched in $(($(date +%s) - t0)) s"
got=$(tmo 30 python3 - "$MNT/b1/big" "$MNT/main/big" <<'PY'
import os, sys
out = []
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    out.append("%d %r %r %r %r" % (os.fstat(fd).st_size, os.pread(fd, 12, 0),
               set(os.pread(fd, 20000, (1 << 40) + 100)),
               set(os.pread(fd, 4980, (1 << 62) - 5000)), os.pread(fd, 20, (1 << 62) - 20)))
    os.close(fd)
print("\n".join(out))
PY
)
want="$((1 << 62)) b'CCCCCCCCCC\\x00\\x00' {0} {0} b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00BBBBBBBBBB'
$((1 << 62)) b'CCCCCCCCCCCC' {65} {66} b'BBBBBBBBBBBBBBBBBBBB'"
[ "$got" = "$want" ] || fail "after the hole in b1 (first line b1, second main): got
$got
expected
$want"
log "the hole zeroed only its range, in b1 only"

# Odd ranges, over the file's own data and over inherited data, against
# the local disk.
REF=$T/ref.bin
head -c 100000 /dev/urandom >"$REF"
cp "$REF" "$MNT/main/small"
mkdir "$MNT/b2"
ops=("3 5000 65000" "3 0 10" "17 8192 8192" "3 99999 100001" "16 90000 60000" "3 16383 2" "17 1 8190")
want=$(falloc "$REF" "${ops[@]}")
for f in "$MNT/b2/small" "$MNT/main/small"; do
	got=$(falloc "$f" "${ops[@]}")
	[ "$got" = "$want" ] || fail "$f after ${ops[*]}: size and sha256 $got, the local disk has $want"
done
log "punched and zeroed ranges read back as on the local disk (in a branch over inherited data and in main)"
