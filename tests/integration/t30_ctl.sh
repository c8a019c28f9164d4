#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
# t30: every branchctl command and every error exit against a live mount
# with Postgres running on main: create (default parent, --from, --at
# seq:N, relative, ISO with zone, local time), list / --tree / --json,
# info, rename (the kernel sees the new name at once), delete, default
# get/set (mkdir forks from the new default), reset (the parent's current
# data comes back, also for a process that had the branch cached, and no
# change racing a reset is committed over it), status,
# gc, retention (both, and the default parent, kept across a remount);
# exit 3 no daemon, 4 no such branch, 5 name taken, 6 in use
# (postmaster, open file), 7 has children, 8 time not retained, 10 invalid,
# 2 usage.  create --empty: an empty branch beside main, which
# pg_basebackup of the running main fills and a server then runs on.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

iso_of() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.%3NZ; } # epoch.frac -> ISO Z
readf() { cat "$1" 2>/dev/null || echo "<missing>"; }
want_file() { # PATH CONTENT
	local got
	got=$(readf "$1")
	[ "$got" = "$2" ] || fail "$1 holds '$got', expected '$2'"
}
in_ls() { # NAME: readdir of the branch root lists NAME
	python3 -c 'import os, sys; sys.exit(sys.argv[2] not in os.listdir(sys.argv[1]))' "$MNT" "$1"
}
ls_root() { python3 -c 'import os, sys; print(" ".join(sorted(os.listdir(sys.argv[1]))))' "$MNT"; }

# ---- 3: no daemon ---------------------------------------------------------------
mkdir "$T/plain"
CTL_MNT=$T/plain expect_ctl 3 list
CTL_MNT=none CTL_CWD=$T/plain expect_ctl 3 status # cwd discovery, nothing there
CTL_MNT=none expect_ctl 3 --socket "$T/no-such.sock" list
rc=0
(cd "$T" && BRANCHFS_MOUNT=$T/plain tmo 30 "$BRANCHCTL" list >/dev/null 2>&1) || rc=$?
[ $rc -eq 3 ] || fail "BRANCHFS_MOUNT=<plain dir> branchctl list exited $rc, expected 3"

# ---- 2: usage -----------------------------------------------------------------
CTL_MNT=none expect_ctl 2
expect_ctl 2 frobnicate
expect_ctl 2 --bogus list
expect_ctl 2 create
expect_ctl 2 create a b
expect_ctl 2 info
expect_ctl 2 delete a b
expect_ctl 2 rename a
expect_ctl 2 reset
expect_ctl 2 list extra
expect_ctl 2 default a b
expect_ctl 2 create x --at 'yesterday-ish'
expect_ctl 2 create x --at -5parsecs
expect_ctl 2 create x --at -200000d
expect_ctl 2 create x --at seq:12abc
expect_ctl 2 create x --at seq:-1
expect_ctl 2 create x --at seq:9223372036854775808
expect_ctl 2 create x --at '2026-02-30 00:00:00'
expect_ctl 2 create x --at '2026-04-31T10:00:00Z'
expect_ctl 2 retention abc
expect_ctl 2 retention 0
expect_ctl 2 create x --empty --from main
expect_ctl 2 create x --empty --at -5s
expect_ctl 2 reset x --empty
expect_ctl 0 --help
grep -q 'exit status\|Exit status' <<<"$CTL_OUT" || fail "branchctl --help does not describe exit status"

bfs_mount
sockpath=$(sed -n 's/.*control socket \(.*\.sock\).*/\1/p' "$T"/log/branchd-mnt-*.log | head -n 1)
[ -S "$sockpath" ] || fail "branchd logged control socket '$sockpath', which is not a socket"

# ---- status on an empty store ---------------------------------------------------
expect_ctl 0 --json status
jassert "$CTL_OUT" "d['ok'] is True and d['branches'] == 0 and d['retention_s'] == 3600 and d['seq'] >= 0 \
 and d['disk_bytes'] > 0 and d['fs_avail_bytes'] > 0 and d['uptime_s'] >= 0 and d['version'] != '' \
 and d['store'] == '$STORE' and d['mountpoint'] == '$MNT' and d['oldest'].endswith('Z') \
 and d['heap_bytes'] > 0 and d['rss_bytes'] > 0" "status (empty)"
# the daemon's memory beside what /proc says (sampled apart: within 10%)
rss=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/${IT_MNTPID[$MNT]}/status")
jassert "$CTL_OUT" "abs(d['rss_bytes'] - $rss) * 10 < $rss" "status rss_bytes (VmRSS $rss)"
expect_ctl 0 status
for k in store: mount: disk: branches: seq: retention: uptime: memory: version:; do
	grep -q "^$k" <<<"$CTL_OUT" || fail "status output lacks '$k': $CTL_OUT"
done
grep -q "^branches: *0$" <<<"$CTL_OUT" || fail "status does not say 0 branches: $CTL_OUT"
CTL_MNT=none expect_ctl 0 --socket "$sockpath" status  # --socket
rc=0
out=$(cd "$T" && BRANCHFS_MOUNT=$MNT tmo 30 "$BRANCHCTL" --json status) || rc=$?
[ $rc -eq 0 ] || fail "BRANCHFS_MOUNT=$MNT branchctl status exited $rc"
jassert "$out" "d['mountpoint'] == '$MNT'" "status via BRANCHFS_MOUNT"

# ---- create: the first branch is empty ------------------------------------------
# not with a moment: there is no default parent to go back in (it made an
# empty branch and ignored --at)
expect_ctl 4 create main --at -10min
expect_ctl 4 create main --at seq:1
[ ! -e "$MNT/main" ] || fail "create --at in an empty store made a branch"
expect_ctl 0 --json create main
jassert "$CTL_OUT" "d['branch']['name'] == 'main' and d['branch']['parent'] is None and d['branch']['owner_uid'] == 0" "create main"
expect_ctl 0 info main
grep -q '^parent: *-$' <<<"$CTL_OUT" || fail "info main: parent is not '-': $CTL_OUT"
in_ls main || fail "branch main made by branchctl is not listed in $MNT"
[ -z "$(ls -A "$MNT/main")" ] || fail "the first branch is not empty: $(ls -A "$MNT/main")"
chown postgres: "$MNT/main"
chmod 0700 "$MNT/main"
pg_initdb "$MNT/main"
free_port P1
pg_start "$MNT/main" "$P1"
q "$P1" "create table marker(id int primary key, note text)"
q "$P1" "insert into marker values (1, 'one')"

# ---- 6: in use (postmaster) -------------------------------------------------------
expect_ctl 6 delete main
grep -q postmaster <<<"$CTL_ERR" || fail "delete main (busy) does not name the postmaster: $CTL_ERR"
expect_ctl 6 rename main main2
expect_ctl 6 reset main
expect_ctl 0 --json info main
jassert "$CTL_OUT" "d['branch']['in_use'] is True and 'postmaster' in d['branch']['in_use_reason']" "info main in_use"
[ -d "$MNT/main/base" ] || fail "main lost its data after refused delete/rename"

# ---- create --at: seq, ISO, local, relative --------------------------------------
# CWD discovery: branchctl run inside the mount finds the daemon
CTL_MNT=none CTL_CWD=$MNT/main/base expect_ctl 0 --json status
# --mount takes any path in the mount too (a branch)
CTL_MNT=none expect_ctl 0 --mount "$MNT/main/base" --json status
jassert "$CTL_OUT" "d['mountpoint'] == '$MNT'" "status through --mount of a branch's directory"
s0=$(jq_ "$CTL_OUT" "d['seq']")
echo v1 >"$MNT/main/note.txt"
s1=$(ctl_seq)
[ "$s1" -gt "$s0" ] || fail "seq did not advance on a write: $s0 -> $s1"
sleep 1.2
t1=$(date +%s.%N)
sleep 1.2
echo v2 >"$MNT/main/note.txt"
sleep 3
echo v3 >"$MNT/main/note.txt"
expect_ctl 0 --json create rel --at -1.5s
jassert "$CTL_OUT" "d['branch']['parent'] == 'main'" "create rel"
want_file "$MNT/rel/note.txt" v2
expect_ctl 0 --json create byseq --from main --at "seq:$s1"
jassert "$CTL_OUT" "d['branch']['parent'] == 'main' and d['branch']['fork_seq'] == $s1 and d['branch']['fork_time'] is not None" "create --at seq:$s1"
want_file "$MNT/byseq/note.txt" v1
expect_ctl 0 create byiso --at "$(iso_of "$t1")"
grep -q "created branch 'byiso' from main at seq" <<<"$CTL_OUT" || fail "create byiso printed: $CTL_OUT"
want_file "$MNT/byiso/note.txt" v1
# local wall-clock time, in a zone far from UTC, and ISO with an offset
local_t1=$(TZ=America/New_York date -d "@$t1" '+%Y-%m-%d %H:%M:%S.%3N')
CTL_AS="env TZ=America/New_York" expect_ctl 0 create bylocal --at "$local_t1"
want_file "$MNT/bylocal/note.txt" v1
off_t1=$(TZ=Asia/Kolkata date -d "@$t1" '+%Y-%m-%dT%H:%M:%S.%3N+05:30')
expect_ctl 0 create byoff --at "$off_t1"
want_file "$MNT/byoff/note.txt" v1
[ ! -e "$MNT/now1" ] || fail "now1 exists already" # a negative lookup, maybe cached
expect_ctl 0 --json create now1
[ -d "$MNT/now1" ] || fail "now1 not visible right after create (stale negative dentry)"
jassert "$CTL_OUT" "d['branch']['parent'] == 'main' and d['branch']['fork_seq'] > $s1" "create now1"
want_file "$MNT/now1/note.txt" v3
[ ! -e "$MNT/now1/postmaster.pid" ] || fail "now1 inherited postmaster.pid from running main"
[ -f "$MNT/now1/PG_VERSION" ] || fail "now1 has no PG_VERSION"

# ---- create errors ------------------------------------------------------------
expect_ctl 5 create byseq
expect_ctl 5 create main --from byseq
# a taken name first: not 8 (not retained), 10 (future) or 4 (no parent)
expect_ctl 5 create byseq --at '2000-01-01 00:00:00'
expect_ctl 5 create byseq --at '2099-01-01 00:00:00'
expect_ctl 5 create byseq --from nosuch --at -1s
expect_ctl 4 create x --from nosuch
expect_ctl 8 create x --at '2000-01-01 00:00:00'
expect_ctl 8 create x --from main --at '2000-01-01T00:00:00Z'
expect_ctl 10 create x --at seq:999999999999
expect_ctl 10 create x --at '2099-01-01 00:00:00'
# a year whose nanoseconds since 1970 do not fit in 64 bits is a bad
# command line: 2^64 ns (584.5 years, to 1442) before t1 wrapped to t1 and
# made a branch of main as of t1 (exit 0), year 1000 was 'in the future'
wrapped=$(python3 -c '
import datetime, sys
s, n = sys.argv[1].split(".")
x = int(s) * 10**9 + int(n[:9].ljust(9, "0")) - 2**64
d = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=x // 10**9)
print(d.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % (x % 10**9))' "$t1")
expect_ctl 2 create x --at "$wrapped"
grep -q 'the year must be 1678 to 2261' <<<"$CTL_ERR" || fail "create --at $wrapped said: $CTL_ERR"
expect_ctl 2 create x --at '1000-01-01 00:00:00'
expect_ctl 2 create x --at '2262-01-01T00:00:00+01'
expect_ctl 8 create x --at '1678-01-01T00:00:00+14:00'
expect_ctl 10 create x --at '2261-12-31T23:59:59.999-14:00'
[ ! -e "$MNT/x" ] || fail "a create --at out of range made branch x"
expect_ctl 10 create 'a/b'
expect_ctl 10 create .
expect_ctl 10 create ..
expect_ctl 10 create ''
expect_ctl 10 create "$(printf 'bad\nname')"
expect_ctl 10 create "$(printf 'x%.0s' {1..256})"
ctl --json list
for n in x a/b . ..; do
	jassert "$CTL_OUT" "'$n' not in [b['name'] for b in d['branches']]" "failed create left no '$n'"
done

# ---- list / --tree / --json ------------------------------------------------------
head -c 300000 /dev/urandom >"$MNT/now1/blob"
expect_ctl 0 --json list
jassert "$CTL_OUT" "d['ok'] is True and sorted(b['name'] for b in d['branches']) == \
 sorted(['main', 'rel', 'byseq', 'byiso', 'bylocal', 'byoff', 'now1'])" "list names"
jassert "$CTL_OUT" "all(set(['name','parent','fork_seq','fork_time','created','owner_uid','children','logical_bytes','written_bytes', \
 'files','in_use','in_use_reason']) <= set(b) for b in d['branches'])" "list fields"
jassert "$CTL_OUT" "all(isinstance(b['fork_seq'], int) and isinstance(b['logical_bytes'], int) and isinstance(b['written_bytes'], int) \
 and isinstance(b['in_use'], bool) and b['owner_uid'] == 0 and b['created'].endswith('Z') for b in d['branches'])" "list field types"
jassert "$CTL_OUT" "[b for b in d['branches'] if b['name'] == 'main'][0]['parent'] is None and \
 all(b['parent'] == 'main' for b in d['branches'] if b['name'] != 'main')" "list parents"
jassert "$CTL_OUT" "[b for b in d['branches'] if b['name'] == 'main'][0]['in_use'] is True and \
 all(b['in_use'] is False and b['in_use_reason'] is None for b in d['branches'] if b['name'] != 'main')" "list in_use"
jassert "$CTL_OUT" "[b for b in d['branches'] if b['name'] == 'byseq'][0]['fork_seq'] == $s1" "list fork_seq"
jassert "$CTL_OUT" "[b for b in d['branches'] if b['name'] == 'now1'][0]['written_bytes'] >= 300000 and \
 [b for b in d['branches'] if b['name'] == 'now1'][0]['logical_bytes'] >= 300000 + 1000000 and \
 [b for b in d['branches'] if b['name'] == 'byseq'][0]['written_bytes'] == 0 and \
 [b for b in d['branches'] if b['name'] == 'main'][0]['logical_bytes'] > 1000000" "list sizes"
expect_ctl 0 list
[ "$(head -n 1 <<<"$CTL_OUT" | awk '{print $1, $2, $3}')" = "NAME PARENT FORK_SEQ" ] || fail "list header: $(head -n 1 <<<"$CTL_OUT")"
[ "$(wc -l <<<"$CTL_OUT")" -eq 8 ] || fail "list printed $(wc -l <<<"$CTL_OUT") lines, expected 8: $CTL_OUT"
awk '$1 == "main" && $NF == "yes" {f=1} END {exit !f}' <<<"$CTL_OUT" || fail "list does not show main in use: $CTL_OUT"
awk '$1 == "byseq" && $2 == "main" && $3 == '"$s1"' && $NF == "no" {f=1} END {exit !f}' <<<"$CTL_OUT" ||
	fail "list row for byseq is wrong: $CTL_OUT"
# columns stay aligned with a long name of multibyte characters
wide="brånch-名前-$(printf 'x%.0s' {1..30})"
mkdir "$MNT/$wide"
expect_ctl 0 list
python3 -c '
import sys
ends = set()
for l in sys.stdin.read().splitlines():
    f = l.split()
    i = 0
    for k in range(3):  # where the third field (FORK_SEQ) ends, in characters
        i = l.index(f[k], i) + len(f[k])
    ends.add(i)
sys.exit(0 if len(ends) == 1 else 1)
' <<<"$CTL_OUT" || fail "list columns are not aligned with the name '$wide': $CTL_OUT"
rmdir "$MNT/$wide"
expect_ctl 0 create grand --from byseq
expect_ctl 0 list --tree
[ "$(head -n 1 <<<"$CTL_OUT")" = "main  (seq 0, owner 0, in use)" ] || fail "tree root line: $(head -n 1 <<<"$CTL_OUT")"
grep -qxE "[├└]─ byseq  \(seq $s1, owner 0\)" <<<"$CTL_OUT" || fail "tree lacks byseq under main: $CTL_OUT"
# grand is byseq's only child: the line below byseq's
grep -A1 -E "─ byseq  " <<<"$CTL_OUT" | tail -n 1 | grep -qxE "(│  |   )└─ grand  \(seq [0-9]+, owner 0\)" ||
	fail "tree lacks grand right under byseq: $CTL_OUT"
# every child but the last of a parent is drawn with ├─, the last with └─
[ "$(grep -c "^├─ " <<<"$CTL_OUT")" -ge 1 ] && [ "$(grep -c "^└─ " <<<"$CTL_OUT")" -eq 1 ] ||
	fail "main's children are not drawn as ├─ ... └─: $CTL_OUT"
[ "$(grep -n 'grand' <<<"$CTL_OUT" | cut -d: -f1)" -eq $(($(grep -n 'byseq' <<<"$CTL_OUT" | cut -d: -f1) + 1)) ] ||
	fail "grand is not printed right under its parent byseq: $CTL_OUT"

# ---- info ----------------------------------------------------------------------
expect_ctl 0 info byseq
grep -q '^name: *byseq$' <<<"$CTL_OUT" || fail "info byseq: $CTL_OUT"
grep -q '^parent: *main$' <<<"$CTL_OUT" || fail "info byseq parent: $CTL_OUT"
grep -q "^fork point: *seq $s1, 20" <<<"$CTL_OUT" || fail "info byseq fork point: $CTL_OUT"
grep -q '^children: *1$' <<<"$CTL_OUT" || fail "info byseq children: $CTL_OUT"
grep -q '^in use: *no$' <<<"$CTL_OUT" || fail "info byseq in use: $CTL_OUT"
expect_ctl 0 --json info grand
jassert "$CTL_OUT" "d['branch']['parent'] == 'byseq' and d['branch']['children'] == 0" "info grand"
expect_ctl 4 info nosuch
expect_ctl 4 --json info nosuch
jassert "$CTL_OUT" "d['ok'] is False and d['error'] == 'not_found' and 'nosuch' in d['message']" "--json error reply"

# ---- 7: has children -------------------------------------------------------------
expect_ctl 7 delete byseq
expect_ctl 7 reset byseq
[ -d "$MNT/byseq/base" ] || fail "byseq damaged by refused delete"

# ---- 6: in use (open file) ----------------------------------------------------
exec 3<"$MNT/byiso/note.txt"
expect_ctl 6 delete byiso
expect_ctl 6 rename byiso byiso2
expect_ctl 6 reset byiso
expect_ctl 0 --json info byiso
jassert "$CTL_OUT" "d['branch']['in_use'] is True and 'open' in d['branch']['in_use_reason']" "info byiso in_use (open file)"
# reporting "in use" must not wait for the file to close
t0=$(date +%s%N)
expect_ctl 0 --json list
dt=$((($(date +%s%N) - t0) / 1000000))
jassert "$CTL_OUT" "[b for b in d['branches'] if b['name'] == 'byiso'][0]['in_use'] is True" "list: byiso in use (open file)"
[ "$dt" -lt 1000 ] || fail "list took $dt ms while a branch has an open file (it must not wait for the close)"
log "list with an open file took $dt ms"
exec 3<&-
# the kernel sends RELEASE asynchronously: allow a few seconds
for ((n = 0; n < 50; n++)); do
	ctl delete byiso
	[ "$CTL_RC" -eq 6 ] || break
	sleep 0.1
done
[ "$CTL_RC" -eq 0 ] || fail "delete byiso after close exited $CTL_RC: $CTL_ERR"
log "branchctl delete byiso after close -> ok"

# ---- delete ----------------------------------------------------------------------
expect_ctl 4 delete nosuch
stat "$MNT/grand" >/dev/null # cached positive dentry
expect_ctl 0 delete grand
grep -qx "deleted branch 'grand'" <<<"$CTL_OUT" || fail "delete printed: $CTL_OUT"
[ ! -e "$MNT/grand" ] || fail "$MNT/grand still visible after delete"
[ ! -e "$MNT/byiso" ] || fail "$MNT/byiso still visible after delete"
! in_ls grand || fail "ls still lists grand after delete"
! in_ls byiso || fail "ls still lists byiso after delete"
expect_ctl 4 info grand
expect_ctl 0 delete byseq # no children any more
! in_ls byseq || fail "ls still lists byseq after delete"

# ---- rename: the kernel sees the new name at once -----------------------------------
stat "$MNT/now1" >/dev/null
ls "$MNT" >/dev/null
ino_before=$(ino "$MNT/now1/note.txt")
[ ! -e "$MNT/renamed1" ] || fail "renamed1 exists already" # a negative lookup, maybe cached
expect_ctl 0 rename now1 renamed1
grep -qx "renamed branch 'now1' to 'renamed1'" <<<"$CTL_OUT" || fail "rename printed: $CTL_OUT"
in_ls renamed1 || fail "ls does not list renamed1 right after rename: $(ls_root)"
! in_ls now1 || fail "ls still lists now1 after rename: $(ls_root)"
[ ! -e "$MNT/now1" ] || fail "stat $MNT/now1 still succeeds after rename (stale dentry)"
want_file "$MNT/renamed1/note.txt" v3
cmp -s "$MNT/renamed1/blob" <(head -c 300000 /dev/zero) && fail "renamed1/blob lost its data"
[ "$(stat -c %s "$MNT/renamed1/blob")" -eq 300000 ] || fail "renamed1/blob has the wrong size"
log "rename: note.txt ino $ino_before -> $(ino "$MNT/renamed1/note.txt")"
expect_ctl 0 --json info renamed1
jassert "$CTL_OUT" "d['branch']['name'] == 'renamed1' and d['branch']['parent'] == 'main'" "info after rename"
expect_ctl 4 info now1
expect_ctl 4 rename now1 x
expect_ctl 5 rename renamed1 rel
expect_ctl 10 rename renamed1 'a/b'
expect_ctl 10 rename renamed1 ..
expect_ctl 2 rename renamed1
in_ls renamed1 || fail "renamed1 vanished after refused renames"
want_file "$MNT/rel/note.txt" v2

# ---- default get/set: mkdir forks from the new default ----------------------------
expect_ctl 0 default
[ "$CTL_OUT" = main ] || fail "default is '$CTL_OUT', expected main"
echo only-renamed1 >"$MNT/renamed1/mark"
expect_ctl 0 default renamed1
[ "$CTL_OUT" = renamed1 ] || fail "default renamed1 printed '$CTL_OUT'"
expect_ctl 0 --json default
jassert "$CTL_OUT" "d['default'] == 'renamed1'" "default --json"
tmo 60 mkdir "$MNT/fromdef"
want_file "$MNT/fromdef/mark" only-renamed1
expect_ctl 0 --json info fromdef
jassert "$CTL_OUT" "d['branch']['parent'] == 'renamed1'" "mkdir after default set"
expect_ctl 0 --json create fromdef2
jassert "$CTL_OUT" "d['branch']['parent'] == 'renamed1'" "create after default set"
expect_ctl 10 default 'a/b'
expect_ctl 0 default main
[ "$CTL_OUT" = main ] || fail "default main printed '$CTL_OUT'"
tmo 60 mkdir "$MNT/fromdef3"
[ ! -e "$MNT/fromdef3/mark" ] || fail "mkdir after default main still forks from renamed1"
want_file "$MNT/fromdef3/note.txt" v3

# ---- reset: the parent's current state comes back -----------------------------------
expect_ctl 0 create rs --from main
echo child >"$MNT/rs/note.txt"
echo child-only >"$MNT/rs/child-only.txt"
mkdir "$MNT/rs/child-dir"
echo v4 >"$MNT/main/note.txt" # the parent moves on after the fork
# a process that has the branch cached (cwd inside it, dentries, attributes
# and page cache warm) looks again right after the reset: well inside the
# kernel's 1 s entry/attr timeouts, so only invalidation can make it right
cat >"$T/cached.py" <<'PY'
import os, sys, time
os.chdir(sys.argv[1])
names = ("child-only.txt", "child-dir", "note.txt")
def stats():
    out = []
    for p in names + ("../rs/child-only.txt",):
        try:
            os.stat(p)
            out.append(p + "=yes")
        except OSError as e:
            out.append(p + "=" + os.strerror(e.errno))
    return out
for line in sys.stdin:
    cmd = line.split()
    out = [cmd[1], "%.3f" % time.monotonic()] + stats()
    if cmd[0] == "full":
        with open("note.txt") as f:
            out.append("note=" + f.read().strip())
        out.append("ls=" + ",".join(sorted(n for n in os.listdir(".") if n in names)))
    print(" ".join(out), flush=True)
PY
coproc CACHED { python3 -u "$T/cached.py" "$MNT/rs" 2>"$T/cached.err"; }
IT_BG+=("$CACHED_PID")
ask() { # CMD TAG: one line from the cached-view process
	local line
	echo "$1 $2" >&"${CACHED[1]}"
	IFS= read -r -t 30 line <&"${CACHED[0]}" || fail "the cached-view process did not answer: $(cat "$T/cached.err")"
	echo "$line"
}
before=$(ask full before)
log "cached view before: $before"
[ "$(cut -d' ' -f1,3- <<<"$before")" = 'before child-only.txt=yes child-dir=yes note.txt=yes ../rs/child-only.txt=yes note=child ls=child-dir,child-only.txt,note.txt' ] ||
	fail "before reset the process saw: $before"
sleep 0.5 # let the kernel deliver the RELEASE of note.txt
for ((n = 0; n < 50; n++)); do
	warm=$(ask stat warm) # refresh the dentries right before the reset
	ctl reset rs
	[ "$CTL_RC" -eq 6 ] || break
	sleep 0.1
done
[ "$CTL_RC" -eq 0 ] || fail "reset rs exited $CTL_RC: $CTL_ERR"
grep -qx "reset branch 'rs' to its parent's current state" <<<"$CTL_OUT" || fail "reset printed: $CTL_OUT"
after=$(ask stat after)
after_full=$(ask full after-read)
log "cached view after:  $after"
log "cached view after:  $after_full"
gap=$(awk -v a="$(cut -d' ' -f2 <<<"$warm")" -v b="$(cut -d' ' -f2 <<<"$after")" 'BEGIN {printf "%d", (b - a) * 1000}')
log "reset seen $gap ms after the last cached lookup"
[ "$gap" -lt 900 ] || fail "the reset took $gap ms: too slow to tell invalidation from cache expiry"
gone='child-only.txt=No such file or directory child-dir=No such file or directory note.txt=yes ../rs/child-only.txt=No such file or directory'
[ "$(cut -d' ' -f3- <<<"$after")" = "$gone" ] ||
	fail "right after reset a process with the branch cached sees stale entries: $after"
[ "$(cut -d' ' -f3- <<<"$after_full")" = "$gone note=v4 ls=note.txt" ] ||
	fail "after reset a process with the branch cached sees stale data: $after_full"
eval "exec ${CACHED[1]}>&-"
wait "$CACHED_PID" || fail "the cached-view process failed: $(cat "$T/cached.err")"
[ ! -e "$MNT/rs/child-only.txt" ] || fail "rs/child-only.txt survived the reset"
[ ! -e "$MNT/rs/child-dir" ] || fail "rs/child-dir survived the reset"
want_file "$MNT/rs/note.txt" v4
[ ! -e "$MNT/rs/postmaster.pid" ] || fail "reset brought main's postmaster.pid into rs"
expect_ctl 0 --json info rs
jassert "$CTL_OUT" "d['branch']['parent'] == 'main' and d['branch']['written_bytes'] == 0" "info rs after reset"
expect_ctl 4 reset nosuch

# ---- reset racing changes inside the branch ------------------------------------------
# A parent without a server (no checkpoint per reset), a directory d in it,
# and a child that two threads keep changing while it is reset again and
# again (tests/integration/reset_race.py has the checks).
expect_ctl 0 create rrp --from main
mkdir "$MNT/rrp/d"
for i in 0 1; do
	echo "f$i" >"$MNT/rrp/d/f$i"
	echo "g$i" >"$MNT/rrp/d/g$i"
done
expect_ctl 0 create rr --from rrp
out=$(tmo 120 python3 "$(dirname "$0")/reset_race.py" "$BRANCHCTL" "$MNT" rrp rr 15) ||
	fail "$out"
log "$out"
# Again with each thread held 50 ms between being let go after a pause and
# its first change, as a loaded machine holds a thread that waits for a CPU
# all through a reset: the tree is read only once both threads have parked
# for that pause, never while one of them goes on with its changes.  Each
# round waits for the held threads, so fewer resets are asked for (5).
out=$(RESET_RACE_WAKE_DELAY=0.05 tmo 60 python3 "$(dirname "$0")/reset_race.py" "$BRANCHCTL" "$MNT" rrp rr 4 5) ||
	fail "$out"
log "$out"
# A name of the replaced tree only (a hard link, a rename made in the
# branch) is gone right after the reset also when its dentry was in use
# while the reset dropped the kernel's entries, here held by an O_PATH
# descriptor: stat(2) through it found the file, which the reset tree has
# under its old name, for up to the entry timeout (1 s).
out=$(tmo 60 python3 - "$BRANCHCTL" "$MNT" <<'PY'
import os, subprocess, sys
ctl, mnt = sys.argv[1:3]
d = os.path.join(mnt, "rr", "d")
bad = []
for how, src in (("link", "f0"), ("rename", "g0")):
    op = os.link if how == "link" else os.rename
    op(os.path.join(d, src), os.path.join(d, "ghost"))
    os.stat(os.path.join(d, "ghost"))
    fd = os.open(os.path.join(d, "ghost"), os.O_PATH)
    r = subprocess.run([ctl, "--mount", mnt, "reset", "rr"], capture_output=True, text=True)
    if r.returncode != 0:
        bad.append("reset after %s exited %d: %s" % (how, r.returncode, r.stderr.strip()))
    try:
        st = os.stat(os.path.join(d, "ghost"))
        bad.append("after %s and reset (exit %d), ghost is still there (nlink %d)" %
                   (how, r.returncode, st.st_nlink))
    except FileNotFoundError:
        pass
    os.close(fd)
print("; ".join(bad))
sys.exit(1 if bad else 0)
PY
) || fail "stale name after a reset: $out"
expect_ctl 0 delete rr
expect_ctl 0 delete rrp

# ---- status, gc, retention ---------------------------------------------------------
expect_ctl 0 --json list
nb=$(jq_ "$CTL_OUT" "len(d['branches'])")
expect_ctl 0 --json status
jassert "$CTL_OUT" "d['branches'] == $nb and d['seq'] > $s1 and d['retention_s'] == 3600 and d['uptime_s'] >= 1" "status"
expect_ctl 0 gc
grep -qE '^gc: deleted [0-9]+ of [0-9]+ versions \(.*\), reclaimed [0-9]+ unlinked files and [0-9]+ deleted branches; store on disk .* -> .*$' <<<"$CTL_OUT" ||
	fail "gc printed: $CTL_OUT"
expect_ctl 0 --json gc
jassert "$CTL_OUT" "d['keys_scanned'] >= d['keys_deleted'] >= 0 and d['disk_before'] > 0 and d['disk_after'] > 0 and 'inodes_reclaimed' in d" "gc --json"
# gc keeps everything inside the retention window
expect_ctl 0 create aftergc --from main --at "seq:$s1"
want_file "$MNT/aftergc/note.txt" v1
[ "$(q "$P1" 'select note from marker where id = 1')" = one ] || fail "main's Postgres lost its row after gc"
want_file "$MNT/rel/note.txt" v2
expect_ctl 0 retention
[ "$CTL_OUT" = "3600 s" ] || fail "retention printed '$CTL_OUT'"
expect_ctl 0 retention 7200
[ "$CTL_OUT" = "7200 s" ] || fail "retention 7200 printed '$CTL_OUT'"
expect_ctl 0 --json status
jassert "$CTL_OUT" "d['retention_s'] == 7200" "status after retention 7200"
# a short window: after a gc, a moment older than it is refused
expect_ctl 0 retention 2
sleep 3
expect_ctl 0 gc
expect_ctl 8 create old --from main --at "seq:$s1"
expect_ctl 8 create old --at "$(iso_of "$t1")"
expect_ctl 0 --json status
jassert "$CTL_OUT" "d['oldest'] > '$(iso_of "$t1")'" "oldest moment after a short-retention gc"
# the oldest moment as status shows it (with ms) is a moment one can branch
# from: it used to be cut to the ms below the horizon and refused
oldest=$(jq_ "$CTL_OUT" "d['oldest']")
expect_ctl 0 create atoldest --at "$oldest"
expect_ctl 0 delete atoldest
expect_ctl 0 --json retention
jassert "$CTL_OUT" "d['retention_s'] == 2" "retention --json"
expect_ctl 0 retention 3600
# the branches made before keep their data
want_file "$MNT/aftergc/note.txt" v1
want_file "$MNT/rel/note.txt" v2
want_file "$MNT/rs/note.txt" v4

# ---- create --empty: pg_basebackup of the running main into a new branch ----------
q "$P1" "create table bb as select generate_series(1, 5000) i"
s_pre=$(ctl_seq)
expect_ctl 0 create fresh --empty
grep -q "created branch 'fresh' from nothing (empty)" <<<"$CTL_OUT" || fail "create --empty said: $CTL_OUT"
# a moment before it was made is refused (it used to give a branch with no
# root directory: listed, but not there)
expect_ctl 8 create x --from fresh --at "seq:$s_pre"
expect_ctl 4 info x
[ -z "$(ls -A "$MNT/fresh")" ] || fail "create --empty made a branch that holds: $(ls -A "$MNT/fresh" | head -5)"
[ "$(stat -c %u:%a "$MNT/fresh")" = 0:700 ] || fail "the empty branch is $(stat -c %u:%a "$MNT/fresh"), expected 0:700 (the caller's)"
expect_ctl 0 --json info fresh
jassert "$CTL_OUT" "d['branch']['parent'] is None" "info of an empty branch"
expect_ctl 5 create fresh --empty
expect_ctl 10 reset fresh
chown postgres:postgres "$MNT/fresh"
tmo 120 $AS_PG "$PGBIN/pg_basebackup" -h "$SOCK" -p "$P1" -U postgres -D "$MNT/fresh" -X stream -c fast ||
	fail "pg_basebackup into the empty branch failed"
free_port P2
pg_start "$MNT/fresh" "$P2"
[ "$(q "$P2" "select count(*) from bb")" = 5000 ] || fail "the base backup in fresh lacks main's table bb"
q "$P2" "insert into bb select generate_series(1, 10)"
[ "$(q "$P1" "select count(*) from bb")" = 5000 ] || fail "a write on fresh reached main"
pg_stop "$MNT/fresh"
log "pg_basebackup of the running main into an empty branch starts and keeps its writes to itself"

# ---- root branch: no parent to reset to ---------------------------------------------
pg_stop "$MNT/main"
for ((n = 0; n < 50; n++)); do
	ctl reset main
	[ "$CTL_RC" -eq 6 ] || break
	sleep 0.1
done
[ "$CTL_RC" -eq 10 ] || fail "reset of the root branch main exited $CTL_RC, expected 10: $CTL_ERR"
log "branchctl reset main (no parent) -> exit 10"

# ---- the default parent (followed through a rename) and the retention
# window are kept across a remount ----------------------------------------------------
expect_ctl 0 create keepdef --from main
expect_ctl 0 default keepdef
expect_ctl 0 rename keepdef keepdef2
expect_ctl 0 retention 5400
# every branch's list figures are what a walk of its tree finds (no
# postmaster runs now): after writes, after a remount (nothing kept from
# before), and after writes again (the daemon no longer walks the trees)
check_usage() {
	expect_ctl 0 --json list
	python3 - "$MNT" "$CTL_OUT" "$1" <<'PY' || fail "list figures $1 differ from a walk"
import json, os, stat, sys
mnt, d, when = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
bad = 0
for b in d['branches']:
    root = os.path.join(mnt, b['name'])
    seen, size, files = set(), 0, 1
    for top, dirs, names in os.walk(root):
        for n in dirs + names:
            st = os.lstat(os.path.join(top, n))
            if st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            files += 1
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
    if (b['logical_bytes'], b['files']) != (size, files):
        print("%s: %s: list %d bytes %d files, a walk %d bytes %d files" %
              (when, b['name'], b['logical_bytes'], b['files'], size, files))
        bad += 1
print("%s: %d branches, list figures = a walk's" % (when, len(d['branches'])))
sys.exit(bad > 0)
PY
}
write_some() { # in main and keepdef2 (made from main): grow, link, unlink, truncate
	python3 - "$MNT" <<'PY'
import os, sys
m = sys.argv[1]
def put(path, data):
    fd = os.open(os.path.join(m, path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
for br in ("main", "keepdef2"):
    put(br + "/base/grow", b"y" * 54321)
    for n in os.listdir(os.path.join(m, br)):
        if n.startswith("grow."):
            os.unlink(os.path.join(m, br, n))
    os.link(os.path.join(m, br, "base/grow"), os.path.join(m, br, "grow.%d" % os.getpid()))
put("keepdef2/only", b"z" * 8193)
fd = os.open(os.path.join(m, "keepdef2/PG_VERSION"), os.O_WRONLY)
os.ftruncate(fd, 1)
os.fsync(fd)
os.close(fd)
PY
}
write_some
check_usage "after writes"
bfs_umount
bfs_mount
check_usage "after a remount"
expect_ctl 0 default
[ "$CTL_OUT" = keepdef2 ] || fail "after a remount the default parent is '$CTL_OUT', expected keepdef2"
expect_ctl 0 retention
[ "$CTL_OUT" = "5400 s" ] || fail "after a remount the retention window is '$CTL_OUT', expected 5400 s"
mkdir "$MNT/fromkept"
expect_ctl 0 --json info fromkept
jassert "$CTL_OUT" "d['branch']['parent'] == 'keepdef2'" "mkdir after a remount"
write_some
check_usage "after a remount and writes"
# the read filters are rebuilt after the mount, in the background (the
# mount no longer waits one seek per stored object for them)
for ((i = 0; i < 300; i++)); do
	expect_ctl 0 --json status
	[ "$(jq_ "$CTL_OUT" "d['read_filters_ready']")" = true ] && break
	sleep 0.1
done
jassert "$CTL_OUT" "d['read_filters_ready'] and d['read_filters_objects'] > 0" "read filters after a remount"
log "default parent keepdef2 (set, then renamed) and retention 5400 s kept across a remount"

# --timeout: a stopped daemon makes branchctl give up, not hang
bpid=${IT_MNTPID[$MNT]}
kill -STOP "$bpid"
t0=$(date +%s%N)
CTL_MNT=none ctl --timeout 1.5 --socket "$sockpath" status
dt=$((($(date +%s%N) - t0) / 1000000))
kill -CONT "$bpid"
[ "$CTL_RC" -eq 1 ] && grep -q "no reply from branchd" <<<"$CTL_ERR" ||
	fail "branchctl --timeout 1.5 against a stopped daemon: exit $CTL_RC, stderr: $CTL_ERR"
[ "$dt" -ge 1400 ] && [ "$dt" -lt 10000 ] || fail "branchctl --timeout 1.5 took $dt ms"
CTL_MNT=none expect_ctl 0 --timeout 30 --socket "$sockpath" status
expect_ctl 2 --timeout 0 status
expect_ctl 2 status --timeout abc
log "branchctl --timeout 1.5 gave up on a stopped daemon after $dt ms"

# a daemon that closes the connection before its reply ends (as one that is
# stopping), after reading the request or at once: exit 1, saying the
# command may or may not have taken effect
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(2); print("ready", flush=True)
c, _ = s.accept(); d = b""
while not d.endswith(b"\n"):
    d += c.recv(65536)
c.sendall(b"{\"ok\":tr"); c.close()
c, _ = s.accept(); c.close()
' "$T/cut.sock" >"$T/cut.out" &
IT_BG+=($!)
for ((i = 0; i < 100; i++)); do [ -s "$T/cut.out" ] && break; sleep 0.1; done
for how in "mid-reply" "before reading"; do
	CTL_MNT=none ctl --socket "$T/cut.sock" delete somebranch
	[ "$CTL_RC" -eq 1 ] && grep -q "closed the connection without a complete reply.*may or may not have taken effect" <<<"$CTL_ERR" ||
		fail "branchctl against a daemon that closed $how: exit $CTL_RC, stderr: $CTL_ERR"
	log "closed $how: $CTL_ERR"
done

bfs_umount
expect_ctl 3 list # the mount point is a plain directory again
CTL_MNT=none expect_ctl 3 --socket "$sockpath" status
