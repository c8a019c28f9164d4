#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
# t37: branchctl as scripts and CI use it, man branchctl(1) being the
# contract, without Postgres:
#  - --json gives exactly one JSON object on stdout for every outcome, also
#    for the failures branchctl finds itself, wherever --json stands on the
#    command line: a usage error before or after it (exit 2, "usage"), no
#    daemon (no mount, no socket, a stale socket: exit 3, "no_daemon"), a
#    path or socket the caller may not reach (exit 9, "permission"), a
#    stopped daemon (--timeout: exit 1, "timeout", also when found by
#    --mount after the kernel's cached attributes of the branch root
#    expired: branchctl's stat of the root waited for the daemon for
#    good, whatever --timeout said) and one that closes the
#    connection mid-reply (exit 1, "no_reply"), and a daemon older than
#    --empty that made a branch of main instead (exit 1, "error"; it was
#    exit 0); the message on stderr is
#    the object's; before, all of these printed nothing on stdout;
#  - every exit status of the table, for the commands that give it;
#  - many branchctl processes at once (1000 creates from 16 processes, as
#    root and lists as another uid), and list --json of 1000 branches;
#  - a list is one snapshot: a parent renamed while it is written is named
#    by its children as the list names it (it was not, and --tree lost
#    the subtree);
#  - list --tree of 20,000 branches (from a daemon that serves that list)
#    in well under 10 s, exactly the tree (it took a minute for 30,000).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"

# json_fail RC CODE ARGS...: branchctl --json ARGS exits RC and prints one
# line on stdout, {"ok":false,"error":CODE,"message":M}, and M on stderr
json_fail() {
	local rc=$1 code=$2
	shift 2
	ctl "$@"
	[ "$CTL_RC" -eq "$rc" ] || fail "branchctl $* exited $CTL_RC, expected $rc; stdout: ${CTL_OUT:0:300} stderr: ${CTL_ERR:0:300}"
	[ "$(printf '%s\n' "$CTL_OUT" | wc -l)" -eq 1 ] && [ -n "$CTL_OUT" ] ||
		fail "branchctl $* printed not one line on stdout: '${CTL_OUT:0:300}' (stderr: ${CTL_ERR:0:300})"
	jassert "$CTL_OUT" "set(d) == {'ok', 'error', 'message'} and d['ok'] is False and d['error'] == '$code'" "branchctl $*: the JSON failure"
	[ "$CTL_ERR" = "branchctl: $(jq_ "$CTL_OUT" "d['message']")" ] ||
		fail "branchctl $*: stderr '$CTL_ERR' is not the JSON message"
	log "branchctl $* -> exit $rc, $CTL_OUT"
}

# ---- before any daemon: the failures branchctl finds itself ----------------------
mkdir "$T/plain" "$T/priv"
chmod 0700 "$T/priv"
CTL_MNT=$T/plain json_fail 3 no_daemon --json list
CTL_MNT=none json_fail 3 no_daemon --json --socket "$T/no-such.sock" status
CTL_MNT=none CTL_CWD=$T/plain json_fail 3 no_daemon status --json
# a socket nobody listens on any more (a daemon killed with -9 leaves one)
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/stale.sock"
[ -S "$T/stale.sock" ] || fail "no stale socket made"
CTL_MNT=none json_fail 3 no_daemon --json --socket "$T/stale.sock" list
# usage errors, --json before or after what is wrong
json_fail 2 usage --bogus --json list
json_fail 2 usage --json list --bogus
json_fail 2 usage --json
json_fail 2 usage --json frobnicate
json_fail 2 usage --json create
json_fail 2 usage --json rename a
json_fail 2 usage --json list extra
json_fail 2 usage create x --at yesterday-ish --json
json_fail 2 usage -j create x --at '2026-02-30T00:00:00Z'
json_fail 2 usage --json create x --from a --from b
json_fail 2 usage --from a --json create x
json_fail 2 usage --json reset x --from y
json_fail 2 usage --json info x --tree
json_fail 2 usage --json list --socket
json_fail 2 usage --json retention 0
json_fail 2 usage --json --timeout 0 status
# a value that looks like --json is a value, not --json
ctl create x --from --json
[ "$CTL_RC" -eq 3 ] && [ -z "$CTL_OUT" ] || fail "create x --from --json took --json as the option: exit $CTL_RC, stdout '$CTL_OUT'"
expect_ctl 0 --json --version
jassert "$CTL_OUT" "d == {'ok': True, 'version': d['version']} and d['version'] != ''" "--json --version"
# a mount path or a socket the caller may not reach
CTL_AS=$NOBODY CTL_CWD=/ CTL_MNT=$T/priv/x json_fail 9 permission --json list
CTL_AS=$NOBODY CTL_CWD=/ CTL_MNT=none json_fail 9 permission --json --socket "$T/priv/s.sock" list

bfs_mount
chmod 0755 "$MNT"
sockpath=$(sed -n 's/.*control socket \(.*\.sock\).*/\1/p' "$T"/log/branchd-mnt-*.log | head -n 1)
[ -S "$sockpath" ] || fail "branchd logged control socket '$sockpath', which is not a socket"

# ---- every exit status, per command ---------------------------------------------
# (the daemon's failures are its own JSON replies, also one object a run)
expect_ctl 0 create main
expect_ctl 0 create kid --from main
expect_ctl 0 create other --empty
# --at with a zone in every form, also as Postgres prints a timestamptz
# (now(): '2026-11-24 10:00:00.123456+00', '...-08'), which was refused;
# moment e lies between two writes to main: every form of it is the first
echo one >"$MNT/main/t"
s1=$(ctl_seq)
e=$(($(date +%s) + 1))
while [ "$(date +%s%N)" -lt $((e * 1000000000 + 100000000)) ]; do sleep 0.05; done
echo two >"$MNT/main/t"
[ "$(ctl_seq)" -gt "$s1" ] || fail "the second write did not move the seq past $s1"
i=0
for at in "$(date -u -d "@$e" +%Y-%m-%dT%H:%M:%SZ)" "$(date -u -d "@$e" +%Y-%m-%dT%H:%M:%Sz)" \
	"$(date -u -d "@$e" '+%Y-%m-%d %H:%M:%S.000000+00')" "$(TZ=Asia/Kolkata date -d "@$e" '+%Y-%m-%d %H:%M:%S+05:30')" \
	"$(TZ=Asia/Kolkata date -d "@$e" '+%Y-%m-%dT%H:%M:%S+0530')" "$(TZ=America/Los_Angeles date -d "@$e" '+%Y-%m-%d %H:%M:%S.0%:::z')"; do
	i=$((i + 1))
	expect_ctl 0 --json create "z$i" --at "$at"
	jassert "$CTL_OUT" "d['branch']['fork_seq'] == $s1" "create --at '$at' (seq $s1, the write before it)"
	expect_ctl 0 delete "z$i"
done
for at in "$(date -u -d "@$e" +%Y-%m-%dT%H:%M:%S)+1" "$(date -u -d "@$e" +%Y-%m-%dT%H:%M:%S)+24" \
	"$(date -u -d "@$e" +%Y-%m-%dT%H:%M:%S)+01:6" "$(date -u -d "@$e" +%Y-%m-%dT%H:%M:%S)+ 1:00"; do
	json_fail 2 usage --json create x --at "$at"
done
# a local time is the moment it names in $TZ; one that a daylight-saving
# change skips or repeats is refused (it was taken an hour off, or as
# either of its two moments, without a word)
CTL_AS="env TZ=Europe/Berlin" expect_ctl 0 --json create zb --at "$(TZ=Europe/Berlin date -d "@$e" '+%Y-%m-%d %H:%M:%S')"
jassert "$CTL_OUT" "d['branch']['fork_seq'] == $s1" "create --at a local time in Europe/Berlin"
expect_ctl 0 delete zb
CTL_AS="env TZ=America/New_York" json_fail 2 usage --json create x --at '2026-11-01 01:30:00'
grep -q 'happens twice' <<<"$CTL_ERR" || fail "a repeated local time: $CTL_ERR"
CTL_AS="env TZ=America/New_York" json_fail 2 usage --json create x --at '2026-03-08 02:30:00'
grep -q 'does not exist' <<<"$CTL_ERR" || fail "a skipped local time: $CTL_ERR"
CTL_AS="env TZ=Europe/Berlin" json_fail 2 usage --json create x --at '2026-10-25 02:30:00.5'
json_fail 4 not_found --json create x --from nosuch
json_fail 5 exists --json create kid
json_fail 8 out_of_range --json create x --at '2000-01-01T00:00:00Z'
json_fail 10 invalid --json create x --at '2099-01-01T00:00:00Z'
json_fail 10 invalid --json create 'a/b'
CTL_AS=$NOBODY CTL_CWD=/ json_fail 9 permission --json create x
expect_ctl 0 list
json_fail 4 not_found --json info nosuch
json_fail 4 not_found --json delete nosuch
json_fail 4 not_found --json rename nosuch x
json_fail 4 not_found --json reset nosuch
json_fail 4 not_found --json default nosuch
json_fail 5 exists --json rename other kid
expect_ctl 0 create grand --from kid
json_fail 7 has_children --json delete kid
json_fail 7 has_children --json reset kid
expect_ctl 0 delete grand
json_fail 10 invalid --json reset other # no parent
json_fail 10 invalid --json rename other ..
json_fail 10 invalid --json default ''
CTL_AS=$NOBODY CTL_CWD=/ json_fail 9 permission --json delete kid
CTL_AS=$NOBODY CTL_CWD=/ json_fail 9 permission --json rename kid x
CTL_AS=$NOBODY CTL_CWD=/ json_fail 9 permission --json reset kid
CTL_AS=$NOBODY CTL_CWD=/ json_fail 9 permission --json default kid
CTL_AS=$NOBODY CTL_CWD=/ json_fail 9 permission --json gc
CTL_AS=$NOBODY CTL_CWD=/ json_fail 9 permission --json retention 60
json_fail 10 invalid --json retention 9223372036854775807
echo x >"$MNT/kid/f"
exec 3<"$MNT/kid/f"
json_fail 6 busy --json delete kid
json_fail 6 busy --json rename kid kid2
json_fail 6 busy --json reset kid
exec 3<&-
for ((n = 0; n < 50; n++)); do # the kernel's RELEASE comes after close(2)
	ctl reset kid
	[ "$CTL_RC" -eq 6 ] || break
	sleep 0.1
done
[ "$CTL_RC" -eq 0 ] || fail "reset kid after close exited $CTL_RC: $CTL_ERR"
expect_ctl 0 rename kid kid2
expect_ctl 0 info kid2
expect_ctl 0 default main
# a deleted default parent: default says so (it printed the name alone,
# exit 0, while every mkdir failed with ENOENT)
expect_ctl 0 create dd --from main
expect_ctl 0 default dd
expect_ctl 0 delete dd
expect_ctl 0 --json default
jassert "$CTL_OUT" "d['default'] == 'dd' and d['exists'] is False" "default after its branch was deleted"
expect_ctl 0 default
grep -q "^dd (no branch has this name now" <<<"$CTL_OUT" || fail "default after its branch was deleted printed: $CTL_OUT"
[ "$(try_op mkdir "$MNT/viadd")" = ENOENT ] || fail "mkdir with the default parent deleted did not fail with ENOENT"
expect_ctl 0 default main
expect_ctl 0 --json default
jassert "$CTL_OUT" "d['default'] == 'main' and d['exists'] is True" "default main"
expect_ctl 0 status
expect_ctl 0 --json gc # the first since the mount: every branch whole
jassert "$CTL_OUT" "d['branches_scanned_whole'] >= 3" "the first gc since the mount"
# a CI job's branch, made and deleted inside the retention window, costs
# its parent no whole scan at the next gc
expect_ctl 0 create ci --from main
expect_ctl 0 delete ci
expect_ctl 0 --json gc
jassert "$CTL_OUT" "d['branches_scanned_whole'] == 0 and d['branches_dropped'] == 1" "gc after a branch made and deleted inside the window"
expect_ctl 0 retention 3600
expect_ctl 0 delete kid2

# ---- odd names in the text output ----------------------------------------------------
# list, --tree and info show a name that is not one plain word in single
# quotes, as a shell takes it: a name with spaces used to pass for two
# columns ('evil main 7' read as branch evil of parent main), and ' ' or
# '-' (which stands for "no parent") could not be told apart
odd=('sp ace' ' ' "it's" '-' 'evil main 7' '-lead' 'back\slash' 'quo"te' 'brånch')
for n in "${odd[@]}"; do expect_ctl 0 create -- "$n"; done
printf '%s\n' "${odd[@]}" >"$T/odd.names"
expect_ctl 0 list
printf '%s\n' "$CTL_OUT" >"$T/list.txt"
expect_ctl 0 list --tree
printf '%s\n' "$CTL_OUT" >"$T/tree.txt"
python3 - "$T" <<'PY' || fail "list / --tree do not quote odd names: $(cat "$T/list.txt" "$T/tree.txt")"
import shlex, sys
t = sys.argv[1]
odd = open(t + "/odd.names").read().split("\n")[:-1]
rows = open(t + "/list.txt").read().splitlines()
assert rows[0].split()[:2] == ["NAME", "PARENT"], rows[0]
parent = {}
for r in rows[1:]:
    w = shlex.split(r)
    parent[w[0]] = w[1]
for n in odd:
    assert parent.get(n) == "main", (n, parent.get(n))
assert parent["main"] == "-" and parent["other"] == "-", parent
names = set()
for r in open(t + "/tree.txt").read().splitlines():
    names.add(shlex.split(r.lstrip("├└│─ "))[0])
assert set(odd) <= names, names
PY
expect_ctl 0 info -- -
grep -qx "name: *'-'" <<<"$CTL_OUT" && grep -qx "parent: *main" <<<"$CTL_OUT" ||
	fail "info of the branch named '-': $CTL_OUT"
for n in "${odd[@]}"; do expect_ctl 0 delete -- "$n"; done

# ---- exit 1: a stopped daemon, a daemon that closes mid-reply ---------------------
bpid=${IT_MNTPID[$MNT]}
kill -STOP "$bpid"
CTL_MNT=none json_fail 1 timeout --json --timeout 1 --socket "$sockpath" status
# ... found from its mount point (--mount, as BRANCHFS_MOUNT), once the
# kernel's cached attributes of the branch root have expired (1 s): the
# stat that reads the root's owner asked the stopped daemon and waited for
# good, before --timeout's clock ran
sleep 1.5
t0=$(date +%s%N)
json_fail 1 timeout --json --timeout 1 status
dt=$((($(date +%s%N) - t0) / 1000000))
[ "$dt" -lt 5000 ] || fail "--timeout 1 --mount of a stopped daemon took $dt ms"
log "--timeout 1 --mount of a daemon stopped 1.5 s before: $dt ms"
# --timeout bounds the whole wait: also connecting to a stopped daemon
# whose listen queue is full (connect(2) blocked for good) ...
/usr/bin/python3 -c '
import socket, sys, time
ss = []
while True:
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(sys.argv[1])
    except BlockingIOError:
        break
    ss.append(s)
print(len(ss), flush=True)
time.sleep(60)' "$sockpath" >"$T/queue.out" &
qpid=$!
IT_BG+=("$qpid")
for ((i = 0; i < 100; i++)); do [ -s "$T/queue.out" ] && break; sleep 0.1; done
t0=$(date +%s%N)
CTL_MNT=none json_fail 1 timeout --json --timeout 1 --socket "$sockpath" status
dt=$((($(date +%s%N) - t0) / 1000000))
[ "$dt" -lt 5000 ] || fail "--timeout 1 against a full listen queue took $dt ms"
grep -q 'took no connection within 1 s' <<<"$CTL_ERR" || fail "full listen queue: $CTL_ERR"
log "--timeout 1 with the listen queue full ($(cat "$T/queue.out") queued): $dt ms"
kill "$qpid"
wait "$qpid" || true
kill -CONT "$bpid"
# ... and the retries while the daemon refuses a uid's 17th connection
# (they went on for 30 s whatever --timeout said)
setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c '
import socket, sys, time
ss = []
for i in range(16):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    ss.append(s)
print("holding", flush=True)
time.sleep(60)' "$sockpath" >"$T/hold.out" &
hpid=$!
IT_BG+=("$hpid")
for ((i = 0; i < 100; i++)); do [ -s "$T/hold.out" ] && break; sleep 0.1; done
t0=$(date +%s%N)
CTL_AS=$NOBODY CTL_CWD=/ CTL_MNT=none json_fail 1 too_many --json --timeout 2 --socket "$sockpath" status
dt=$((($(date +%s%N) - t0) / 1000000))
[ "$dt" -lt 6000 ] || fail "--timeout 2 while the daemon refused uid 65534's connections took $dt ms"
log "--timeout 2 while refused as one too many: $dt ms"
kill "$hpid"
wait "$hpid" || true
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(2); print("ready", flush=True)
c, _ = s.accept(); d = b""
while not d.endswith(b"\n"):
    d += c.recv(65536)
c.sendall(b"{\"ok\":tr"); c.close()
' "$T/cut.sock" >"$T/cut.out" &
IT_BG+=($!)
for ((i = 0; i < 100; i++)); do [ -s "$T/cut.out" ] && break; sleep 0.1; done
CTL_MNT=none json_fail 1 no_reply --json --socket "$T/cut.sock" delete somebranch
# a daemon older than --empty ignores the field it does not know and makes a
# branch of main, which it says in its reply (as builds of session 17 do):
# an error, not "created branch 'e1' from main" and exit 0
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(2); print("ready", flush=True)
for _ in range(2):
    c, _ = s.accept(); d = b""
    while not d.endswith(b"\n"):
        d += c.recv(65536)
    c.sendall(b"{\"ok\":true,\"branch\":{\"name\":\"e1\",\"id\":2,\"parent\":\"main\",\"fork_seq\":8,\"fork_time\":null,\"created\":\"2026-12-07T14:24:00.106Z\",\"owner_uid\":0,\"children\":0}}\n")
    c.close()
' "$T/old.sock" >"$T/old.out" &
IT_BG+=($!)
for ((i = 0; i < 100; i++)); do [ -s "$T/old.out" ] && break; sleep 0.1; done
CTL_MNT=none json_fail 1 error --json --socket "$T/old.sock" create e1 --empty
CTL_MNT=none expect_ctl 1 --socket "$T/old.sock" create e1 --empty
grep -q "does not know --empty" <<<"$CTL_ERR" || fail "create --empty from an old daemon: $CTL_ERR"

# ---- list --tree of 20,000 branches, from a daemon that serves that list ----------
# (it looked through the whole list for each branch's children: 63 s for
# 30,000; the tree must come out as built here, children in list order)
python3 - "$T/tree.sock" "$T/tree.want" <<'PY' >"$T/tree.out" &
import json, random, socket, sys
rnd = random.Random(37)
n = 20000
par = [None] + [0 if i < 20 else rnd.randrange(1, i) for i in range(1, n)]
order = list(range(n))
rnd.shuffle(order)
name = lambda i: "main" if i == 0 else "t%d" % i
br = [{"name": name(i), "id": i + 1, "parent": None if par[i] is None else name(par[i]),
       "fork_seq": 10 * i + 1, "owner_uid": i % 3, "children": 0, "in_use": i % 11 == 0}
      for i in order]
kids = {}
for b in br:
    kids.setdefault(b["parent"], []).append(b)
out = []
def show(b, prefix, top, last):
    out.append("%s%s%s  (seq %d, owner %d%s)\n" % (prefix, "" if top else ("└─ " if last else "├─ "),
               b["name"], b["fork_seq"], b["owner_uid"], ", in use" if b["in_use"] else ""))
    sub = prefix + ("" if top else ("   " if last else "│  "))
    k = kids.get(b["name"], [])
    for j, c in enumerate(k):
        show(c, sub, False, j == len(k) - 1)
for b in kids[None]:
    show(b, "", True, False)
open(sys.argv[2], "w").write("".join(out))
reply = (json.dumps({"ok": True, "branches": br}, ensure_ascii=False) + "\n").encode()
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(2); print("ready", flush=True)
c, _ = s.accept(); d = b""
while not d.endswith(b"\n"):
    d += c.recv(65536)
c.sendall(reply); c.close()
PY
IT_BG+=($!)
for ((i = 0; i < 100; i++)); do [ -s "$T/tree.out" ] && break; sleep 0.1; done
t0=$(date +%s%N)
tmo 10 "$BRANCHCTL" --socket "$T/tree.sock" list --tree >"$T/tree.got" ||
	fail "list --tree of 20,000 branches failed or took over 10 s"
dt=$((($(date +%s%N) - t0) / 1000000))
cmp -s "$T/tree.want" "$T/tree.got" ||
	fail "list --tree of 20,000 branches is not the tree: $(diff "$T/tree.want" "$T/tree.got" | head -n 5)"
log "list --tree of 20,000 branches: $(wc -l <"$T/tree.got") lines in $dt ms"

# ---- many processes at once, and a list of 1000 branches -------------------------
t0=$(date +%s%N)
seq 1 1000 | tmo 100 xargs -P 16 -I{} "$BRANCHCTL" --mount "$MNT" create "b{}" >/dev/null 2>"$T/par.err" ||
	fail "1000 creates from 16 processes at once: some failed: $(head -n 5 "$T/par.err")"
log "1000 creates from 16 processes took $((($(date +%s%N) - t0) / 1000000)) ms"
# (read from a file: the reply is larger than one argument may be)
tmo 60 "$BRANCHCTL" --mount "$MNT" --json list >"$T/list.json" || fail "list --json of 1002 branches failed"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
want = sorted(["main", "other"] + ["b%d" % i for i in range(1, 1001)])
sys.exit(sorted(b["name"] for b in d["branches"]) != want)' "$T/list.json" ||
	fail "list --json of 1002 branches does not list them: $(head -c 300 "$T/list.json")"
log "list --json of 1002 branches: $(wc -c <"$T/list.json") bytes, one object"
# 64 lists at once as one uid other than root (it gets 16 connections at a time)
seq 1 64 | tmo 100 xargs -P 64 -I{} sh -c "cd / && $NOBODY '$BRANCHCTL' --mount '$MNT' --json list >'$T/l{}'" 2>"$T/par2.err" ||
	fail "64 lists at once as uid 65534: some failed: $(head -n 5 "$T/par2.err")"
python3 -c '
import json, sys
for i in range(1, 65):
    if len(json.load(open("%s/l%d" % (sys.argv[1], i)))["branches"]) != 1002:
        sys.exit("list %d of 64 at once is not the 1002 branches" % i)' "$T" ||
	fail "64 lists at once as uid 65534 did not all give the 1002 branches"
log "64 lists at once as uid 65534: all 1002 branches each"
# a listing is one snapshot, parents' names included: while zp is renamed to
# zq and back in a loop, every list names only parents it lists, and
# list --tree shows every branch (each parent's name was looked up while the
# reply was written: 9 of 20 lists named zp's children's parent by a name the
# list did not have, and --tree left them out); and while zz is made and
# deleted in a loop, every branch listed has its sizes (one deleted after
# the snapshot was listed without logical_bytes, written_bytes and files)
tmo 30 mkdir "$MNT/zp"
expect_ctl 0 create zc1 --from zp
expect_ctl 0 create zc2 --from zp
tmo 60 python3 -c '
import json, os, subprocess, sys, threading
mnt, bc = sys.argv[1], sys.argv[2]
stop, renames, churn, bad, trees, nosize = False, 0, 0, 0, 0, 0
def loop():
    global renames
    a, b = os.path.join(mnt, "zp"), os.path.join(mnt, "zq")
    while not stop:
        os.rename(a, b)
        os.rename(b, a)
        renames += 2
def loop2():
    global churn
    d = os.path.join(mnt, "zz")
    while not stop:
        os.mkdir(d)
        os.rmdir(d)
        churn += 1
ts = [threading.Thread(target=loop), threading.Thread(target=loop2)]
[t.start() for t in ts]
try:
    for i in range(20):
        d = json.loads(subprocess.run([bc, "--mount", mnt, "--json", "list"], capture_output=True, check=True).stdout)
        names = {b["name"] for b in d["branches"]}
        bad += any(b["parent"] is not None and b["parent"] not in names for b in d["branches"])
        nosize += any("logical_bytes" not in b for b in d["branches"])
        out = subprocess.run([bc, "--mount", mnt, "list", "--tree"], capture_output=True, check=True).stdout
        k = len(names - {"zz"})
        trees += not k <= len(out.decode().splitlines()) <= k + 1
finally:
    stop = True
    [t.join() for t in ts]
print("20 lists while zp was renamed %d times and zz made and deleted %d times: %d named a parent they do not list, %d lacked logical_bytes for a branch, %d trees lacked branches" % (renames, churn, bad, nosize, trees))
sys.exit(1 if bad or trees or nosize or renames < 20 or churn < 10 else 0)' "$MNT" "$BRANCHCTL" >"$T/lrace.out" 2>&1 ||
	fail "list racing a rename of a parent: $(cat "$T/lrace.out")"
log "$(cat "$T/lrace.out")"

# ---- output that does not get out -----------------------------------------------
# a full disk or a closed stdout is exit 1 with a line, not success with the
# output lost (`branchctl --json list > file` on a full filesystem exited 0)
for how in full closed; do
	rc=0
	if [ $how = full ]; then
		tmo 30 "$BRANCHCTL" --mount "$MNT" --json list >/dev/full 2>"$T/out.err" || rc=$?
	else
		tmo 30 "$BRANCHCTL" --mount "$MNT" --json list >&- 2>"$T/out.err" || rc=$?
	fi
	[ $rc -eq 1 ] && grep -q '^branchctl: cannot write to standard output: ' "$T/out.err" ||
		fail "branchctl --json list with stdout $how exited $rc: $(cat "$T/out.err")"
	log "stdout $how: exit 1, $(cat "$T/out.err")"
done
rc=0
tmo 30 "$BRANCHCTL" --mount "$MNT" --json info nosuch >/dev/full 2>"$T/out.err" || rc=$?
[ $rc -eq 4 ] || fail "a failed info with stdout full exited $rc, expected its own 4: $(cat "$T/out.err")"
# `list | head -n 1` of 1002 branches: the header; branchctl ends on SIGPIPE
# (or at the end), saying nothing
{
	env --default-signal=PIPE "$BRANCHCTL" --mount "$MNT" list 2>"$T/pipe.err"
	echo $? >"$T/pipe.rc"
} | head -n 1 >"$T/pipe.out" || true
grep -q '^NAME  *PARENT  *FORK_SEQ' "$T/pipe.out" && [ ! -s "$T/pipe.err" ] &&
	{ [ "$(cat "$T/pipe.rc")" = 141 ] || [ "$(cat "$T/pipe.rc")" = 0 ]; } ||
	fail "branchctl list | head -n 1: '$(cat "$T/pipe.out")', exit $(cat "$T/pipe.rc"), stderr: $(cat "$T/pipe.err")"

# ---- the daemon gone ------------------------------------------------------------------
bfs_umount
json_fail 3 no_daemon --json list
CTL_MNT=none json_fail 3 no_daemon --json --socket "$sockpath" status
log "every failure gave one JSON object with --json"
