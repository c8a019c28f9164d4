#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
# t55: a store that cannot be opened is refused with one clear line, never
# a crash or a silent exit.
#  1. the store's filesystem is full (filled by something else): branchd
#     exits 1 saying how much room it needs, not with SIGABRT (RocksDB's
#     open writes a new info LOG, and Debian's librocksdb asserted on the
#     failed write); branchd --check, which writes nothing, checks the store
#     there (it exited 1 too); the store is intact once room is made.
#  2. a new store on that full filesystem: one line, no directory left.
#  3. a store directory another user owns (0700), opened as postgres:
#     one line naming the store and the reason (it exited 1 silently).
#  4. a .sst renamed away, truncated, or with a bit flipped in its footer,
#     a missing .sst, a truncated journal or one with a garbage header:
#     one line (branchd and --check) that says the store is damaged, names
#     the file and what to do (for a table file renamed away, putting it
#     back works; for the journal, going on without it works).  A store whose BRANCHFS marker is gone is damaged,
#     not "not a branchfs store", and the line says what to write there.
#  5. a journal record the database holds, damaged after an fsync synced
#     it: branchd --check exits 3 (damage, no data lost) and says so; it
#     changes nothing on disk (every file of the store the same), so a
#     second check exits 3 again (it exited 0: the first had restarted the
#     journal); the store mounts with its data whole, and that open steps
#     over the damage for good: a check after it exits 0.
source "$(dirname "$0")/lib.sh"
it_init

# refused WHAT ARGS...: branchd ARGS must exit 1 within 15 s (not killed
# by a signal, not hung) with exactly one line on stderr matching $WANT
refused() {
	local what=$1 rc=0
	shift
	tmo 15 "$@" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc -ne 124 ] || fail "$what: did not return within 15 s"
	[ $rc -lt 128 ] || fail "$what: killed by signal $((rc - 128)): $(head -c 400 "$T/err")"
	[ $rc -eq 1 ] || fail "$what: exit $rc, expected 1: $(head -c 400 "$T/err")"
	[ "$(grep -c . "$T/err")" -eq 1 ] || fail "$what: expected one line on stderr, got: '$(cat "$T/err")'"
	grep -qE "$WANT" "$T/err" || fail "$what: the message does not match /$WANT/: $(cat "$T/err")"
	log "$what -> exit 1: $(cat "$T/err")"
}

# ---- 1. full filesystem ----
FS=$T/fs
it_mount_tmpfs "$FS" 64m
bfs_mount "$FS/store" "$MNT"
mkdir "$MNT/main"
head -c 300000 /dev/urandom >"$T/orig"
cp "$T/orig" "$MNT/main/data"
sync "$MNT/main/data"
bfs_umount
head -c 100M /dev/zero >"$FS/ballast" 2>/dev/null || true
log "filesystem full: $(df -k --output=avail "$FS" | tail -n 1 | tr -d ' ') KiB free"
mkdir -p "$T/m2"
WANT="'$FS/store.*free.*make room"
refused "branchd on a full filesystem" "$BRANCHD" -f "$FS/store" "$T/m2"
! mountpoint -q "$T/m2" || fail "branchd mounted a store it refused"
rc=0
tmo 30 "$BRANCHD" --check "$FS/store" >"$T/out" 2>"$T/err" || rc=$?
[ $rc -eq 0 ] || fail "branchd --check on a full filesystem: exit $rc (expected 0: it writes nothing): $(head -c 400 "$T/out" "$T/err")"
grep -q "0 damaged records, 0 damaged blocks" "$T/out" || fail "branchd --check on a full filesystem: $(cat "$T/out" "$T/err")"
log "branchd --check on a full filesystem -> exit 0: $(cat "$T/out")"

# ---- 2. a new store there ----
WANT="cannot create store '$FS/new'.*No space left"
refused "new store on a full filesystem" "$BRANCHD" -f "$FS/new" "$T/m2"
[ ! -e "$FS/new" ] || fail "the refused new store left $FS/new behind: $(ls -la "$FS/new")"

# room again: the store opens with its data
rm -f "$FS/ballast"
bfs_mount "$FS/store" "$MNT"
cmp -s "$T/orig" "$MNT/main/data" || fail "main/data differs after the refused opens"
bfs_umount
out=$(tmo 60 "$BRANCHD" --check "$FS/store" 2>&1) || fail "branchd --check after room was made: $out"

# ---- 3. another user's store ----
chmod 0700 "$FS/store"
mkdir -p "$T/m3"
chown postgres: "$T/m3"
WANT="cannot open store '$FS/store'.*Permission denied"
# postgres must get as far as the store: where /dev/fuse is 0600 (as on
# some machines) branchd would refuse the user for that first, so a 0666
# file is bound over it in a mount namespace of the command's own (only
# its mode is looked at before the store is opened); noallow_other, as
# allow_other is refused first where /etc/fuse.conf does not allow it
: >"$T/fuse666"
chmod 0666 "$T/fuse666"
# shellcheck disable=SC2086,SC2016
refused "root's 0700 store opened as postgres" unshare -m --propagation private sh -c \
	'mount --bind "$1" /dev/fuse && shift && exec "$@"' sh "$T/fuse666" \
	$AS_PG "$BRANCHD" -f -o noallow_other "$FS/store" "$T/m3"
rc=0
# shellcheck disable=SC2086
tmo 30 $AS_PG "$BRANCHD" --check "$FS/store" >"$T/out" 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "Permission denied" "$T/err" ||
	fail "branchd --check of another user's store: exit $rc: $(cat "$T/err")"

# ---- 4. damage RocksDB or the journal finds at open: one line each ----
chmod 0700 "$FS/store"
bfs_mount "$FS/store" "$MNT"
head -c 8000000 /dev/urandom >"$MNT/main/more"
sync "$MNT/main/more"
bfs_umount
[ -n "$(ls "$FS"/store/db/*.sst 2>/dev/null)" ] || fail "no .sst file in the store: $(ls "$FS/store/db")"
damaged() { # WHAT WANT CMD: CMD damages a copy of the store, which must be refused
	local what=$1
	WANT=$2
	rm -rf "$T/dmg"
	cp -a "$FS/store" "$T/dmg"
	(cd "$T/dmg/db" && eval "$3")
	refused "$what" "$BRANCHD" -f "$T/dmg" "$T/m2"
}
# A table file renamed away, cut short or with a bit flipped in its
# footer before the open: branchd and --check refuse the store in one line
# that names the file, says whether it is missing or damaged, and what to
# do (before: RocksDB's text, the missing file under its other name .ldb,
# "in file MANIFEST", no way out, and a blank second line).  Every table
# file is opened, and its footer read, at open: RocksDB opens up to 16 of
# them then (and checks every one's size against the MANIFEST).
nsst=$(ls "$FS"/store/db/*.sst | wc -l)
[ "$nsst" -le 16 ] || fail "$nsst table files: the open reads the footers of only 16"
victim=$(cd "$FS/store/db" && ls -S ./*.sst | head -n 1)
victim=${victim#./}
table_refused() { # WHAT STATE TODO CMD: CMD damages $victim in a copy
	damaged "$1" "database '$T/dmg/db' is damaged: table file $victim \($2\): not opened.*; $3" "$4"
	refused "$1, --check" "$BRANCHD" --check "$T/dmg"
}
table_refused "renamed-away .sst" missing "put it back if it was moved or renamed" \
	'mv "$victim" "$victim.away"'
# the way out the line names works
mv "$T/dmg/db/$victim.away" "$T/dmg/db/$victim"
bfs_mount "$T/dmg" "$MNT"
cmp -s "$T/orig" "$MNT/main/data" || fail "main/data differs after the table file was put back"
bfs_umount
table_refused "truncated .sst" damaged "keep a copy of it for inspection and restore the store from a backup" \
	'truncate -s $(($(stat -c %s "$victim") / 2)) "$victim"'
table_refused ".sst with a bit flipped in its footer" damaged "keep a copy of it for inspection and restore the store from a backup" \
	'printf "\xff" | dd of="$victim" bs=1 seek=$(($(stat -c %s "$victim") - 2)) conv=notrunc status=none'
damaged "missing newest .sst" "damaged: table file [0-9]*.sst \(missing\)" 'rm "$(ls -t *.sst | head -n 1)"'
damaged "truncated journal" "journal.*damaged.*move the file aside" \
	'truncate -s $(($(stat -c %s BRANCHFS-JOURNAL) / 2)) BRANCHFS-JOURNAL'
# the marker file lost: a damaged store, not "not a branchfs store"; the
# way out the message gives works
WANT="store '$T/dmg' is damaged: its marker file BRANCHFS is missing"
rm -rf "$T/dmg"
cp -a "$FS/store" "$T/dmg"
marker=$(cat "$T/dmg/BRANCHFS")
rm "$T/dmg/BRANCHFS"
refused "store without its marker file" "$BRANCHD" -f "$T/dmg" "$T/m2"
printf '%s\n' "$(sed -n 's/.*writing "\(branchfs-store [0-9]*\)".*/\1/p' "$T/err")" >"$T/dmg/BRANCHFS"
[ "$(cat "$T/dmg/BRANCHFS")" = "$marker" ] || fail "the message suggests '$(cat "$T/dmg/BRANCHFS")', the marker was '$marker'"
bfs_mount "$T/dmg" "$MNT"
cmp -s "$T/orig" "$MNT/main/data" || fail "main/data differs after the marker was written back"
bfs_umount
# the journal's way out
damaged "journal header overwritten" "journal.*damaged.*move the file aside" \
	'dd if=/dev/urandom of=BRANCHFS-JOURNAL bs=4096 count=1 conv=notrunc status=none'
mv "$T/dmg/db/BRANCHFS-JOURNAL" "$T/journal.aside"
bfs_mount "$T/dmg" "$MNT"
cmp -s "$T/orig" "$MNT/main/data" || fail "main/data differs after the journal was moved aside"
bfs_umount
log "all refusals clear"

# ---- 5. journal damage the database holds: no data lost, --check exit 3 ----
# Records of the fsync journal that had been synced (a later fsync's mark
# says so) and that the database holds: the open steps over them, no
# write is lost, but the disk lost data it had flushed.  --check says so
# and exits 3 (it exited 0 with a warning line); it opens the store
# read-only, so a second check says the same (it said clean: the first had
# started the journal afresh); the daemon mounts with the data whole, and
# its open starts the journal afresh: a check after it is clean.
JS=$T/jstore
bfs_mount "$JS" "$MNT"
mkdir "$MNT/main"
cp "$T/orig" "$MNT/main/a"
sync "$MNT/main/a"
cp "$T/orig" "$MNT/main/b"
sync "$MNT/main/b"
pid=${IT_MNTPID[$MNT]}
kill -KILL "$pid" # no clean close: the journal is not sealed
_it_wait_gone "$pid" 10 || fail "branchd $pid survived SIGKILL"
tmo 20 fusermount3 -u "$MNT" 2>/dev/null || tmo 20 fusermount3 -uz "$MNT" || fail "cannot unmount the dead mount"
# the chain's first record (mkdir's, synced by the first sync): its payload
first=$(python3 -c 'import sys; print(open(sys.argv[1], "rb").read().find(b"BFRJ", 4096))' "$JS/db/BRANCHFS-JOURNAL")
[ "$first" -ge 4096 ] || fail "no journal record in $JS/db/BRANCHFS-JOURNAL"
printf '\xa5' | dd of="$JS/db/BRANCHFS-JOURNAL" bs=1 seek=$((first + 100)) conv=notrunc status=none
# every file of the store, its name, mode, size, mtime and content
store_state() { (cd "$JS" && find . -printf '%p %m %s %T@\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
store_state >"$T/state0"
for n in 1 2; do
	rc=0
	tmo 60 "$BRANCHD" --check "$JS" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc -eq 3 ] || fail "branchd --check $n with held, synced journal damage: exit $rc (expected 3): $(cat "$T/out" "$T/err")"
	grep -q "journal.*damaged.*no write is lost" "$T/err" || fail "branchd --check $n does not say what was damaged: $(cat "$T/err")"
	grep -q "damaged blocks; [0-9]* bytes of synced fsync journal records damaged" "$T/out" || fail "the summary of check $n does not count the journal damage: $(cat "$T/out")"
	log "branchd --check $n -> exit 3: $(cat "$T/out")"
	store_state >"$T/state$n"
	diff "$T/state0" "$T/state$n" >"$T/statediff" || fail "branchd --check $n changed the store: $(head -c 2000 "$T/statediff")"
done
bfs_mount "$JS" "$MNT"
cmp -s "$T/orig" "$MNT/main/a" && cmp -s "$T/orig" "$MNT/main/b" || fail "data differs after the journal damage was stepped over"
bfs_umount
out=$(tmo 60 "$BRANCHD" --check "$JS" 2>&1) || fail "branchd --check after the daemon's open: $out"
log "journal damage held by the database: exit 3 twice, nothing changed; data whole; after a mount, clean"
