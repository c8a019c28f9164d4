#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 240
# t58: the memory of the inodes the kernel forgot goes back to the kernel.
# branchd keeps an entry (48 bytes with malloc's header) for every inode the
# kernel caches, and a bucket array for them.  After a walk (stat of every
# file) the entries were freed when the kernel forgot the inodes (here:
# drop_caches), but glibc kept the freed memory in its arenas and the
# bucket array never shrank: after a walk of a million files branchd stayed
# about 50 MB larger for good.  Now the map halves as it empties and gives
# whole free pages back (malloc_trim).
#
# The bound is what the walk cannot keep: with a block cache of 1 MiB
# (cache_mb=1), after a warm-up walk (threads, arenas, caches all made) and
# drop_caches, branchd's RSS is measured; a walk of N nodes (the kernel
# must then hold N inodes of the mount) adds N * 48 bytes and more; once
# the kernel drops its caches again, at most half of what the walk added
# may stay (the old build stays about N * 50 bytes above the first figure,
# all of what it added; a fixed 10 MB bound met glibc's arena noise).
# Polled for up to 30 s: the kernel's FORGETs reach branchd
# asynchronously.
#
# Then the memory that writes free in many threads: RocksDB's memtables
# are allocated by the FUSE workers that write (each may have its own
# malloc arena) and freed by its flush thread; glibc kept what was freed
# in those arenas, so that after a load branchd's RSS stayed 150-300 MiB
# above what it used.  Now the daemon hands it back once writes stop.
# On a fresh daemon (default cache and memtables), "held" is its RSS
# less what malloc has handed out (branchctl status: rss_bytes,
# heap_bytes), sampled together: before, right after 4 writers each
# wrote 64 MiB (and fsynced), and then polled for 30 s; at most half of
# what the writes added to it may stay.
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

NFILES=50000
NBRANCH=10

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
drop_caches() { sync && echo 2 >/proc/sys/vm/drop_caches; }
# walk DIR...: stat every file below each DIR, in parallel, and print the
# number of files seen
walk() {
	tmo 120 python3 - "$@" <<'PY'
import os, sys
from concurrent.futures import ThreadPoolExecutor
def one(d):
    n = 0
    for root, dirs, files in os.walk(d):
        for f in files:
            os.stat(os.path.join(root, f))
            n += 1
    return n
with ThreadPoolExecutor(4) as ex:
    print(sum(ex.map(one, sys.argv[1:])))
PY
}

bfs_mount "$STORE" "$MNT" cache_mb=1
pid=${IT_MNTPID[$MNT]}
mkdir "$MNT/main"
t0=$(date +%s)
tmo 120 python3 - "$MNT/main" "$NFILES" <<'PY'
import os, stat, sys
from concurrent.futures import ThreadPoolExecutor
root, n = sys.argv[1], int(sys.argv[2])
def mk(d):
    dp = os.path.join(root, "d%03d" % d)
    os.mkdir(dp)
    for i in range(1000):
        os.mknod(os.path.join(dp, "f%04d" % i), stat.S_IFREG | 0o644)
with ThreadPoolExecutor(4) as ex:
    list(ex.map(mk, range(n // 1000)))
PY
log "made $NFILES files in $(($(date +%s) - t0)) s"
branches=()
for ((i = 1; i <= NBRANCH; i++)); do
	mkdir "$MNT/b$i"
	branches+=("$MNT/b$i")
done

# warm-up, as parallel as the walk but over fewer nodes (10 directories of
# each of 4 branches): every thread, arena and cache the walk needs exists
# afterwards, and little freed memory is left for the walk to reuse
warm=()
for ((i = 1; i <= 4; i++)); do
	for ((j = 0; j < 10; j++)); do warm+=("$MNT/b$i/d00$j"); done
done
[ "$(walk "${warm[@]}")" = 40000 ] || fail "the warm-up walk did not see 40000 files"
drop_caches
# the warm-up's FORGETs: wait until RSS stops falling (at most 10 s)
prev=0
for ((n = 0; n < 20; n++)); do
	cur=$(rss_kb "$pid")
	[ "$cur" != "$prev" ] || break
	prev=$cur
	sleep 0.5
done
rss0=$(rss_kb "$pid")
t0=$(date +%s)
seen=$(walk "${branches[@]}")
[ "$seen" = $((NFILES * NBRANCH)) ] || fail "the walk saw $seen files, not $((NFILES * NBRANCH))"
rss1=$(rss_kb "$pid")
nodes=$(grep -E '^fuse_inode ' /proc/slabinfo | awk '{ print $2 }')
log "walk of $seen files in $(($(date +%s) - t0)) s: RSS ${rss0} kB -> ${rss1} kB (kernel holds $nodes fuse inodes)"
[ "$nodes" -ge "$seen" ] ||
	fail "the kernel holds $nodes fuse inodes after the walk of $seen files: the test checks nothing"
drop_caches
# at most half of what the walk added may stay (the old build kept all
# of it: the node map's entries and buckets; this one 12-33%, the rest
# freed memory glibc keeps in the arenas of the other threads)
bound=$((rss0 + (rss1 - rss0) / 2))
for ((n = 0; n < 60; n++)); do
	rss2=$(rss_kb "$pid")
	[ "$rss2" -gt "$bound" ] || break
	sleep 0.5
done
log "after drop_caches: RSS ${rss2} kB (bound ${bound} kB)"
[ "$rss2" -le "$bound" ] ||
	fail "30 s after the kernel dropped its caches branchd's RSS is ${rss2} kB: $(((rss2 - rss0) * 100 / (rss1 - rss0)))% of the $(((rss1 - rss0) / 1024)) MB the walk of $seen files added stayed, more than half"
bfs_umount

# ---- the memory writes free goes back once they stop ----
STORE2=$T/store2
bfs_mount "$STORE2" "$MNT"
mkdir "$MNT/main"
# held: branchd's RSS less what malloc has handed out, in MiB
held() {
	ctl --json status
	[ "$CTL_RC" -eq 0 ] || fail "branchctl status failed: $CTL_ERR"
	jq_ "$CTL_OUT" '(d["rss_bytes"] - d["heap_bytes"]) >> 20'
}
sleep 1
h0=$(held)
t0=$(date +%s)
tmo 120 python3 - "$MNT/main" <<'PY'
import os, sys
from concurrent.futures import ThreadPoolExecutor
def one(i):
    fd = os.open(os.path.join(sys.argv[1], "w%d" % i), os.O_WRONLY | os.O_CREAT, 0o644)
    chunk = os.urandom(1 << 20)
    for _ in range(64):
        os.write(fd, chunk)
    os.fsync(fd)
    os.close(fd)
with ThreadPoolExecutor(4) as ex:
    list(ex.map(one, range(4)))
PY
h1=$(held)
log "4 x 64 MiB written in $(($(date +%s) - t0)) s: held ${h0} -> ${h1} MiB"
[ $((h1 - h0)) -ge 32 ] ||
	fail "the writes added only $((h1 - h0)) MiB to what branchd holds beyond what it uses: the test checks nothing"
bound=$((h0 + (h1 - h0) / 2))
for ((n = 0; n < 30; n++)); do
	h2=$(held)
	[ "$h2" -gt "$bound" ] || break
	sleep 1
done
log "after the writes: held ${h2} MiB (bound ${bound} MiB) after ${n} s"
[ "$h2" -le "$bound" ] ||
	fail "30 s after the writes stopped branchd holds ${h2} MiB beyond what it uses: $(((h2 - h0) * 100 / (h1 - h0)))% of the $((h1 - h0)) MiB the writes added stayed, more than half"
bfs_umount
log "PASS"
