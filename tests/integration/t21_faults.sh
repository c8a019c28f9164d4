#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 420
# t21: faults and bad input.
#  1. bad daemon input: a second branchd on a store in use, a store dir
#     that is not a store (a directory of other files, a regular file), a
#     mount point that is not empty, is a file or does not exist: one-line
#     error, exit status != 0, nothing changed (no mount, no store created,
#     the running daemon's pidfile, mount and data untouched); garbage on
#     the control socket does not hurt the daemon.
#  2. corruption: a file of incompressible data in a branch, unmount, bytes
#     flipped in the middle of the store's .sst files, remount: reading the
#     file fails with EIO for the damaged blocks and never returns wrong
#     bytes; branchd stays up and logs a line naming the branch and file;
#     branchd --check exits 1 naming the damage.
#  2b. one block value rewritten with ldb (valid RocksDB checksums, wrong
#     content): that block reads EIO, the others are intact, the log and
#     branchd --check name the branch, the file and the block.
#  3. disk full: the store on a small tmpfs, Postgres and a plain writer
#     fill it: writes fail with ENOSPC, branchd stays up and serves reads;
#     after the space is freed Postgres restarts with every committed row
#     and pg_amcheck is clean.
source "$(dirname "$0")/lib.sh"
it_init


# Problems of the bad-input part are collected (soft) so that one refusal
# the daemon gets wrong does not hide the corruption and disk-full results;
# the test fails at the end if any was found.
declare -a SOFT=()
soft() {
	SOFT+=("$*")
	printf '[%s %s] PROBLEM: %s\n' "$IT_NAME" "$(date +%H:%M:%S)" "$*" >&2
}

# run_bd_refused WHAT ARGS...: run branchd in the foreground; it must
# refuse: exit != 0 within 15 s, exactly one line on stderr, nothing on
# stdout.  If it wrongly mounted, the mount is undone here.
run_bd_refused() {
	local what=$1 rc=0 out err mp
	shift
	out=$T/bd-$RANDOM.out
	err=$T/bd-$RANDOM.err
	mp=${*: -1}
	tmo 15 "$BRANCHD" -f "$@" >"$out" 2>"$err" || rc=$?
	if [ $# -gt 0 ] && [ "$mp" != "$MNT" ] && mountpoint -q "$mp" 2>/dev/null; then
		soft "$what: branchd MOUNTED $mp instead of refusing (exit $rc after the timeout)"
		tmo 20 fusermount3 -u "$mp" || tmo 20 fusermount3 -uz "$mp" || true
		return 0
	fi
	if [ $rc -eq 0 ]; then soft "$what: branchd exited 0 (args: $*)"; return 0; fi
	if [ $rc -eq 124 ]; then soft "$what: branchd did not return within 15 s (args: $*)"; return 0; fi
	[ "$(grep -c . "$err")" -eq 1 ] || soft "$what: expected one line on stderr, got: $(cat "$err")"
	[ ! -s "$out" ] || soft "$what: branchd printed on stdout: $(cat "$out")"
	log "$what -> exit $rc: $(cat "$err")"
}

snapshot_dir() { (cd "$1" && find . -printf '%p %y %m %s\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum) | sha256sum; }

# ============================ 1. bad daemon input ============================
log "--- bad daemon input"
bfs_mount
mkdir "$MNT/main"
head -c 1000000 /dev/urandom >"$MNT/main/data"
sync "$MNT/main/data"
want=$(sha256sum <"$MNT/main/data")
pidf=$T/branchd-$(basename "$MNT").pid
pid0=$(cat "$pidf")
list0=$(ls "$MNT")

# a second branchd on the store in use (also pointing at the same pidfile)
mkdir "$T/mnt2"
run_bd_refused "second branchd on a store in use" -o "pidfile=$pidf" "$STORE" "$T/mnt2"
! mountpoint -q "$T/mnt2" || soft "second branchd left a mount at $T/mnt2"
[ "$(cat "$pidf")" = "$pid0" ] || soft "second branchd overwrote the running daemon's pidfile: $(cat "$pidf")"
_it_alive "$pid0" || soft "the running branchd died when a second one was started"
[ "$(sha256sum <"$MNT/main/data")" = "$want" ] || soft "data changed after a second branchd was refused"
[ "$(ls "$MNT")" = "$list0" ] || soft "branch list changed after a second branchd was refused"

# a directory that is not a store
mkdir -p "$T/notastore/sub"
echo "precious" >"$T/notastore/notes.txt"
head -c 5000 /dev/urandom >"$T/notastore/sub/blob"
before=$(snapshot_dir "$T/notastore")
run_bd_refused "store dir that is not a store" "$T/notastore" "$T/mnt2"
[ "$(snapshot_dir "$T/notastore")" = "$before" ] || soft "branchd changed the non-store directory $T/notastore"
! mountpoint -q "$T/mnt2" || soft "branchd mounted a non-store"
# a regular file as the store
echo "just a file" >"$T/afile"
run_bd_refused "store path that is a regular file" "$T/afile" "$T/mnt2"
[ "$(cat "$T/afile")" = "just a file" ] || soft "branchd changed the regular file given as the store"
! mountpoint -q "$T/mnt2" || soft "branchd mounted a regular file as a store"

# bad mount points: not empty, a file, missing.  The (new) store must not be created.
mkdir -p "$T/full"
echo x >"$T/full/f"
run_bd_refused "mount point not empty" "$T/newstore" "$T/full"
[ ! -e "$T/newstore" ] || soft "refused branchd (mount point not empty) created the store $T/newstore"
rm -rf "$T/newstore"
[ "$(ls "$T/full")" = f ] && ! mountpoint -q "$T/full" || soft "mount point not empty: it changed"
run_bd_refused "mount point is a file" "$T/newstore" "$T/afile"
[ ! -e "$T/newstore" ] || soft "refused branchd (mount point is a file) created the store"
run_bd_refused "mount point does not exist" "$T/newstore" "$T/nonexistent"
[ ! -e "$T/newstore" ] && [ ! -e "$T/nonexistent" ] || soft "refused branchd (no mount point) created something"
# the mount point of the running daemon
run_bd_refused "mount point already mounted" "$T/newstore" "$MNT"
[ ! -e "$T/newstore" ] || soft "refused branchd (mount point in use) created the store"
# usage errors
run_bd_refused "no arguments" 
run_bd_refused "unknown option" -o no_such_option "$T/newstore" "$T/mnt2"
[ ! -e "$T/newstore" ] || soft "refused branchd (bad option) created the store"
run_bd_refused "bad commit interval" -o commit=-1 "$T/newstore" "$T/mnt2"
run_bd_refused "commit interval over a day" -o commit=86401 "$T/newstore" "$T/mnt2"
[ ! -e "$T/newstore" ] || soft "refused branchd (bad commit) created the store"
# what would fail after the store was opened is refused before it is made
mkdir -p "$T/mnt2"
run_bd_refused "socket in a missing directory" -o "socket=$T/no/such/dir/x.sock" "$T/newstore" "$T/mnt2"
run_bd_refused "pid file in a missing directory" -o "pidfile=$T/no/such/x.pid" "$T/newstore" "$T/mnt2"
[ ! -e "$T/newstore" ] || soft "refused branchd (socket or pid file in a missing directory) created the store"
run_bd_refused "store inside the mount point" "$T/mnt2/store" "$T/mnt2"
[ ! -e "$T/mnt2/store" ] || soft "refused branchd (store inside the mount point) created the store"

# garbage on the control socket
csock=$(sed -n 's/^branchd: control socket \(.*\)$/\1/p' "$T"/log/branchd-*.log | tail -n 1)
if [ -n "$csock" ] && [ -S "$csock" ]; then
	python3 - "$csock" <<'EOF' || fail "control socket garbage test failed"
import os, socket, sys
path = sys.argv[1]
payloads = [b"\n", b"{\n", b"not json at all\n", b"{\"cmd\": 12}\n", b"{\"cmd\":\"create\",\"name\":\"a\x01b\"}\n",
            b"{\"cmd\":\"delete\",\"name\":\"main\"\n", b"\x00\xff\xfe" * 1000 + b"\n", b"[" * 100000 + b"\n",
            b"{\"cmd\":\"create\",\"name\":\"" + b"x" * 300000 + b"\"}\n", os.urandom(65536)]
for p in payloads:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    try:
        s.sendall(p)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.close()
EOF
	_it_alive "$pid0" || fail "branchd died on garbage sent to its control socket"
	tmo 30 "$IT_ROOT/bin/branchctl" --mount "$MNT" list >/dev/null || fail "branchctl list fails after control socket garbage"
	[ "$(ls "$MNT")" = "$list0" ] || fail "branch list changed by control socket garbage: $(ls "$MNT" | tr '\n' ' ')"
	log "garbage on the control socket $csock: daemon fine"
else
	fail "no control socket found in the branchd log"
fi
[ "$(sha256sum <"$MNT/main/data")" = "$want" ] || fail "data changed by the bad-input tests"
bfs_umount
rc=0
out=$(tmo 300 "$BRANCHD" --check "$STORE" 2>&1) || rc=$?
[ $rc -eq 0 ] || fail "branchd --check of the store after the bad-input tests: exit $rc: $out"
rc=0
out=$(tmo 60 "$BRANCHD" --check "$T/notastore" 2>&1) || rc=$?
[ $rc -ne 0 ] || fail "branchd --check on a directory that is not a store exited 0: $out"
[ "$(snapshot_dir "$T/notastore")" = "$before" ] || fail "branchd --check changed $T/notastore"
log "branchd --check on a non-store: exit $rc: $out"

# ============================ 2. corruption ============================
log "--- corruption"
CST=$T/cstore
CMNT=$T/cmnt
bfs_mount "$CST" "$CMNT"
mkdir "$CMNT/victim"
SIZE=$((150 * 1024 * 1024)) # > 2 memtables (64 MiB): most of it ends up in .sst files
head -c "$SIZE" /dev/urandom >"$T/orig"
cp "$T/orig" "$CMNT/victim/payload"
sync "$CMNT/victim/payload"
cmp -s "$T/orig" "$CMNT/victim/payload" || fail "payload differs right after writing"
payload_ino=$(stat -c %i "$CMNT/victim/payload")
bfs_umount "$CMNT"
ls "$CST"/db/*.sst >/dev/null 2>&1 || fail "no .sst file in $CST/db after unmount: $(ls "$CST/db")"
# flip bytes in the middle of every large .sst (which hold the blocks)
nsst=0
for f in "$CST"/db/*.sst; do
	sz=$(stat -c %s "$f")
	[ "$sz" -gt $((4 * 1024 * 1024)) ] || continue
	python3 - "$f" <<'EOF'
import os, sys
f = sys.argv[1]
sz = os.path.getsize(f)
with open(f, "r+b") as h:
    for frac in (0.35, 0.5, 0.65):
        off = int(sz * frac)
        h.seek(off)
        b = bytearray(h.read(512))
        h.seek(off)
        h.write(bytes(x ^ 0x5A for x in b))
EOF
	nsst=$((nsst + 1))
	log "flipped 3x512 bytes in ${f##*/} ($sz bytes)"
done
[ $nsst -gt 0 ] || fail "no .sst larger than 4 MiB holds the payload: $(ls -l "$CST"/db/*.sst)"
rc=0
out=$(tmo 600 "$BRANCHD" --check "$CST" 2>&1) || rc=$?
[ $rc -eq 1 ] || fail "branchd --check on the damaged store exited $rc (expected 1): $(tail -n 5 <<<"$out")"
log "branchd --check on the damaged store: exit 1: $(head -n 3 <<<"$out" | tr '\n' '|')"
# every damaged place is reported, not only the first: the check goes on
# after a table block RocksDB cannot read (3 flips in each large .sst)
nplaces=$(grep -c "cannot be read" <<<"$out" || true)
log "branchd --check: $nplaces unreadable places reported, $(wc -l <<<"$out") lines in all"
[ "$nplaces" -ge $((3 * nsst)) ] ||
	soft "branchd --check reported $nplaces unreadable places, expected at least $((3 * nsst)) (3 flips in each of $nsst .sst files): $(grep "cannot be read" <<<"$out" | head -n 8)"
grep -q "victim" <<<"$out" || soft "branchd --check does not name the damaged branch 'victim': $(head -n 5 <<<"$out")"
grep -qE "payload|inode $payload_ino|ino $payload_ino|$payload_ino" <<<"$out" ||
	soft "branchd --check does not name the damaged file (payload, inode $payload_ino): $(head -n 5 <<<"$out")"

if ! bfs_try_mount "$CST" "$CMNT"; then
	soft "branchd does not start on a store with a damaged .sst (expected: it mounts and only the damaged reads fail with EIO): $(tail -n 2 "$(ls -t "$T"/log/branchd-cmnt-*.log | head -n 1)" | tr '\n' ' ')"
else
cpid=${IT_MNTPID[$CMNT]}
res=$(tmo 300 python3 - "$CMNT/victim/payload" "$T/orig" <<'EOF'
import errno, os, sys
path, orig = sys.argv[1], sys.argv[2]
bs = 65536
fd = os.open(path, os.O_RDONLY)
o = open(orig, "rb").read()
eio = wrong = good = other = 0
off = 0
# A read that meets a damaged page returns what it read before it (a
# short read, as POSIX allows); the next read at that point gets EIO.
while off < len(o):
    step = bs
    try:
        b = os.pread(fd, bs, off)
        if len(b) == 0 or b != o[off:off + len(b)]:
            wrong += 1
        else:
            good += 1
            step = len(b)
    except OSError as e:
        if e.errno == errno.EIO:
            eio += 1
        else:
            other += 1
            print("errno %d at %d" % (e.errno, off), file=sys.stderr)
    off += step
print(eio, wrong, good, other)
EOF
) || fail "reading the damaged file failed unexpectedly"
read -r eio wrong good other <<<"$res"
log "damaged file read in 64 KiB chunks: $eio EIO, $wrong wrong, $good good, $other other errors"
[ "$wrong" -eq 0 ] || fail "$wrong chunks of the damaged file came back with WRONG BYTES instead of EIO"
[ "$other" -eq 0 ] || fail "$other chunks failed with an errno other than EIO"
[ "$eio" -gt 0 ] || fail "no read of the damaged file failed with EIO"
msg=$(cat "$CMNT/victim/payload" 2>&1 >/dev/null) && fail "cat of the damaged file succeeded"
[[ "$msg" == *"Input/output error"* ]] || fail "cat of the damaged file said: $msg"
_it_alive "$cpid" || fail "branchd died reading a damaged store"
ls "$CMNT/victim" >/dev/null || fail "the branch is not listable after the EIO"
clog=$(ls -t "$T"/log/branchd-cmnt-*.log | head -n 1)
grep -iE "victim" "$clog" | grep -qiE "payload|$payload_ino" ||
	soft "no branchd log line names branch 'victim' and the file (payload / inode $payload_ino): $(grep -iE 'corrupt|checksum|hash|EIO|damag' "$clog" | head -n 3)"
log "branchd log: $(grep -i victim "$clog" | grep -iE "payload|$payload_ino" | head -n 1)"
# other files of the store still work
echo fine >"$CMNT/victim/other" && [ "$(cat "$CMNT/victim/other")" = fine ] || fail "cannot write a new file after the EIO"
bfs_umount "$CMNT"
fi

# ---- 2b. one block's stored value damaged behind RocksDB's back ----------
# (valid RocksDB checksums, wrong content: the store's own block hash must
# catch it).  ldb (rocksdb-tools) rewrites the value of block 5 of the file.
log "--- corruption of one block value (store hash)"
command -v ldb >/dev/null || fail "ldb not found: install rocksdb-tools (scripts/install-deps.sh)"
HST=$T/hstore
HMNT=$T/hmnt
bfs_mount "$HST" "$HMNT"
mkdir "$HMNT/victim2"
head -c $((1024 * 1024)) /dev/urandom >"$T/orig2"
cp "$T/orig2" "$HMNT/victim2/payload2"
sync "$HMNT/victim2/payload2"
bfs_umount "$HMNT"
tmo 120 ldb --db="$HST/db" --column_family=block --hex scan >"$T/blocks.txt" 2>"$T/ldb.err" ||
	fail "ldb scan of the block column family failed: $(tail -n 3 "$T/ldb.err")"
# key: branch(8) inode(8) block(8) ~seq(8), hex; take block 5 of the one file
key=$(awk '{k = $1; if (substr(k, 35, 16) == "0000000000000005") {print k; exit}}' "$T/blocks.txt")
[ -n "$key" ] || fail "no key for block 5 in the block column family: $(head -c 300 "$T/blocks.txt")"
hino=$((16#$(cut -c19-34 <<<"$key")))
val=$(tmo 60 ldb --db="$HST/db" --column_family=block --hex get "$key" 2>/dev/null) || fail "ldb get $key failed"
bad=$(python3 -c 'import sys; v = sys.argv[1]; i = len(v) - 41; print(v[:i] + "%X" % (int(v[i], 16) ^ 5) + v[i + 1:])' "$val")
tmo 60 ldb --db="$HST/db" --column_family=block --hex put "$key" "$bad" >/dev/null 2>&1 || fail "ldb put of the damaged value failed"
log "rewrote block 5 of inode $hino ($key) with one flipped nibble"
bfs_mount "$HST" "$HMNT"
hpid=${IT_MNTPID[$HMNT]}
res=$(tmo 120 python3 - "$HMNT/victim2/payload2" "$T/orig2" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
o = open(sys.argv[2], "rb").read()
out = []
for b in range(len(o) // 8192):
    try:
        d = os.pread(fd, 8192, b * 8192)
        out.append("ok" if d == o[b * 8192:(b + 1) * 8192] else "WRONG")
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(" ".join("%d:%s" % (i, r) for i, r in enumerate(out) if r != "ok") or "none")
EOF
) || fail "reading the file with a damaged block failed unexpectedly"
log "blocks of payload2 that did not read back correctly: $res"
[ "$res" = "5:EIO" ] || soft "damaged block 5: expected exactly '5:EIO' (other blocks intact), got: $res"
_it_alive "$hpid" || fail "branchd died reading a damaged block"
hlog=$(ls -t "$T"/log/branchd-hmnt-*.log | head -n 1)
line=$(grep -iE "corrupt|damag|checksum|mismatch" "$hlog" | head -n 1)
[ -n "$line" ] || soft "no branchd log line about the damaged block"
log "branchd log: $line"
grep -q "victim2" <<<"$line" || soft "the branchd log line does not name the branch 'victim2' (by name): $line"
grep -qE "payload2|inode $hino|$(stat -c %i "$HMNT/victim2/payload2")" <<<"$line" || soft "the branchd log line does not name the file: $line"
cmp -s <(tail -c +$((6 * 8192 + 1)) "$HMNT/victim2/payload2") <(tail -c +$((6 * 8192 + 1)) "$T/orig2") ||
	soft "the blocks after the damaged one do not read back correctly"
bfs_umount "$HMNT"
rc=0
out=$(tmo 300 "$BRANCHD" --check "$HST" 2>&1) || rc=$?
[ $rc -eq 1 ] || soft "branchd --check with one damaged block exited $rc (expected 1): $out"
log "branchd --check: exit $rc: $(tr '\n' '|' <<<"$out")"
grep -q "victim2" <<<"$out" && grep -qE "payload2|inode $hino" <<<"$out" && grep -q "block 5" <<<"$out" ||
	soft "branchd --check does not name branch victim2, the file and block 5: $out"

# ============================ 3. disk full ============================
log "--- disk full"
SMALL=$T/small
it_mount_tmpfs "$SMALL" 400m
DST=$SMALL/store
DMNT=$T/dmnt
bfs_mount "$DST" "$DMNT"
dpid=${IT_MNTPID[$DMNT]}
DM=$DMNT/main
mkdir "$DM"
chown postgres: "$DM"
chmod 0700 "$DM"
pg_initdb "$DM"
free_port DP
pg_start "$DM" "$DP"
q "$DP" "create table fill(batch int, n int, pad text); create table meta(k int primary key)" >/dev/null
q "$DP" checkpoint >/dev/null
mkdir "$DMNT/files"
free_kb=$(df -k --output=avail "$SMALL" | tail -n 1)
log "tmpfs free after setup: $((free_kb / 1024)) MiB"
# leave ~60 MiB free: a ballast file on the same file system
bal=$((free_kb / 1024 - 60))
[ $bal -gt 0 ] && head -c "${bal}M" /dev/zero >"$SMALL/ballast"
log "ballast ${bal} MiB, free now $(($(df -k --output=avail "$SMALL" | tail -n 1) / 1024)) MiB"

# Postgres: batches of incompressible rows, each its own transaction; the
# batch number is recorded only once the COMMIT was acknowledged
: >"$T/dacked"
enospc_pg=""
for ((i = 1; i <= 2000; i++)); do
	if out=$(tmo 120 "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$DP" -U postgres -d postgres \
		-c "insert into fill select $i, g, string_agg(md5(random()::text || g::text || x::text), '') from generate_series(1, 200) g, generate_series(1, 40) x group by g" 2>&1); then
		echo "$i" >>"$T/dacked"
	else
		enospc_pg=$out
		break
	fi
done
nacked=$(wc -l <"$T/dacked")
log "Postgres stopped committing after $nacked acknowledged batches: $(head -n 2 <<<"$enospc_pg" | tr '\n' ' ')"
[ -n "$enospc_pg" ] || fail "2000 batches fit: the file system never filled up"
grep -qiE "No space left on device|could not (extend|write)|terminat|server closed|PANIC" <<<"$enospc_pg" ||
	fail "Postgres failed with an unexpected error: $enospc_pg"
dead=0
if ! _it_alive "$dpid"; then
	dead=1
	soft "branchd died when the disk filled up: $(tail -n 1 "$(ls -t "$T"/log/branchd-dmnt-*.log | head -n 1)")"
fi
if [ $dead = 0 ]; then
	mountpoint -q "$DMNT" || soft "the mount is gone after the disk filled up"
	# a plain writer must see ENOSPC (not EIO, not success)
	wres=$(tmo 300 python3 - "$DMNT/files/big" <<'EOF'
import errno, os, sys
total = 0
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for i in range(4096):
        os.write(fd, os.urandom(1 << 20))
        os.fsync(fd)
        total += 1
    print("NOERROR", total)
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)), total)
EOF
	)
	log "plain writer (1 MiB writes + fsync): $wres"
	[[ "$wres" == ENOSPC* ]] || soft "writing to a full store gave '$wres', expected ENOSPC"
	if _it_alive "$dpid"; then
		# reads still work on a full disk
		[ "$(cat "$DM/PG_VERSION")" = 15 ] || soft "cannot read PG_VERSION on the full store"
		ls "$DMNT" >/dev/null || soft "cannot list the branch root on the full store"
	else
		dead=1
		soft "branchd died after a plain write hit ENOSPC: $(tail -n 1 "$(ls -t "$T"/log/branchd-dmnt-*.log | head -n 1)")"
	fi
fi

# free the space, restart Postgres, every acknowledged batch must be there
_it_pg_kill "$DM"
rm -f "$SMALL/ballast"
log "space freed: $(($(df -k --output=avail "$SMALL" | tail -n 1) / 1024)) MiB available"
if [ $dead = 1 ]; then
	# the daemon is gone: clear the dead mount and start it again; then
	# at least nothing acknowledged may be lost
	tmo 30 fusermount3 -uz "$DMNT" || true
	bfs_mount "$DST" "$DMNT"
else
	# the daemon must take writes again once there is space (up to 30 s)
	ok=0
	for ((n = 0; n < 30; n++)); do
		if tmo 30 python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644); os.write(fd, b"x" * 8192); os.fsync(fd)' "$DMNT/files/probe" 2>/dev/null; then
			ok=1
			break
		fi
		sleep 1
	done
	if [ $ok = 1 ]; then
		log "writes work again $n s after space was freed"
		rm -f "$DMNT/files/big" || soft "rm of the partial file failed after space was freed"
	else
		soft "writes still fail 30 s after space was freed ($(tmo 30 python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644); os.fsync(fd)' "$DMNT/files/probe2" 2>&1 | tail -n 1)); restarting branchd"
		tmo 30 fusermount3 -u "$DMNT" || tmo 30 fusermount3 -uz "$DMNT" || true
		_it_wait_gone "$dpid" 30 || { soft "branchd did not exit after unmount"; kill -KILL "$dpid"; }
		bfs_mount "$DST" "$DMNT"
	fi
fi
pg_start "$DM" "$DP"
got=$(q "$DP" "select count(distinct batch) from fill where batch <= $nacked")
[ "$got" -eq "$nacked" ] || fail "after the disk-full restart only $got of $nacked acknowledged batches are present"
bad=$(q "$DP" "select count(*) from (select batch from fill group by batch having count(*) <> 200) s")
[ "$bad" -eq 0 ] || fail "$bad batches are partially present (not atomic)"
amcheck "$DP"
# and the store takes writes again
q "$DP" "insert into meta values (1); checkpoint" >/dev/null || fail "Postgres cannot write after space was freed"
head -c 5000000 /dev/urandom >"$DMNT/files/after"
sync "$DMNT/files/after" || fail "fsync after space was freed failed"
log "disk full: $nacked acknowledged batches all present after freeing space; writes work again"
pg_stop "$DM"
dpid=${IT_MNTPID[$DMNT]}
bfs_umount "$DMNT"
st=0
wait "$dpid" 2>/dev/null || st=$?
[ $st -eq 0 ] || soft "branchd exited with status $st at the clean unmount after the disk-full episode: $(tail -n 2 "$(ls -t "$T"/log/branchd-dmnt-*.log | head -n 1)" | tr '\n' ' ')"
rc=0
out=$(tmo 300 "$BRANCHD" --check "$DST" 2>&1) || rc=$?
[ $rc -eq 0 ] || fail "branchd --check after the disk-full episode: exit $rc: $(tail -n 5 <<<"$out")"
log "branchd --check after disk full: clean"
if [ ${#SOFT[@]} -gt 0 ]; then
	printf 'PROBLEM: %s\n' "${SOFT[@]}" >&2
	fail "${#SOFT[@]} problems (see above)"
fi
