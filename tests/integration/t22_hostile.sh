#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 200
# t22: hostile names and requests from unprivileged users, on a sticky,
# world-writable branch root (chmod 1777 MNT):
#  - names with control characters (mkdir and branchctl create/rename),
#    too long names, '/', '.', '..', '' are refused cleanly (no branch made,
#    daemon up); a 255-byte name and odd but printable names work;
#  - two users racing mkdir of the same 20 names: exactly one wins each
#    name, the other gets EEXIST, the branch belongs to the winner;
#  - under the sticky root a user cannot rmdir, mv, branchctl delete,
#    rename or reset another user's branch (EPERM / exit 9); the owner and
#    root can;
#  - an unprivileged user cannot run admin commands (gc, retention,
#    default); without write permission on the root mkdir is EACCES;
#  - a user holding 64 idle control connections gets 16 of them and a
#    reason for the rest; other users' branchctl still works, and the
#    user's own waits until a connection of its own closes.
# The daemon must be alive at the end and the store must --check clean.
source "$(dirname "$0")/lib.sh"
it_init

BCTL=$IT_ROOT/bin/branchctl
mkuser() { # NAME -> sets UID_<NAME>, GID_<NAME>
	local u=$1
	if getent passwd "$u" >/dev/null; then
		log "reusing leftover user $u"
	else
		useradd -r -K SYS_UID_MAX=989 -K SYS_GID_MAX=989 -U -M -d /nonexistent -s /usr/sbin/nologin "$u" || fail "useradd $u failed"
	fi
	IT_USERS+=("$u")
	IT_GROUPS+=("$u")
	printf -v "UID_$u" '%s' "$(id -u "$u")"
	printf -v "GID_$u" '%s' "$(id -g "$u")"
}
mkuser bfshosta
mkuser bfshostb
# shellcheck disable=SC2154
AS_A="setpriv --reuid=$UID_bfshosta --regid=$GID_bfshosta --clear-groups"
# shellcheck disable=SC2154
AS_B="setpriv --reuid=$UID_bfshostb --regid=$GID_bfshostb --clear-groups"
log "users bfshosta=$UID_bfshosta bfshostb=$UID_bfshostb"

# as USERPREFIX: try_op / expect_op / branchctl as another user
try_as() { # RUNAS OP ARGS...
	local run=$1
	shift
	# shellcheck disable=SC2086
	(cd / && tmo 60 $run /usr/bin/python3 - "$@" <<'EOF'
import errno, os, sys
op, args = sys.argv[1], sys.argv[2:]
try:
    getattr(os, op)(*args)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
	)
}
expect_as() { # WANT RUNAS OP ARGS...
	local want=$1 run=$2 got
	shift 2
	got=$(try_as "$run" "$@")
	[ "$got" = "$want" ] || fail "as $(who "$run"): $(short "$@")gave $got, expected $want"
	log "as $(who "$run"): $(short "$@")-> $got"
}
# bctl_as RUNAS ARGS...: run branchctl, print its exit status (output to $T/bctl.out)
bctl_as() {
	local run=$1 rc=0
	shift
	# shellcheck disable=SC2086
	(cd / && tmo 60 $run "$BCTL" --mount "$MNT" "$@") >"$T/bctl.out" 2>&1 || rc=$?
	echo "$rc"
}
expect_bctl() { # WANT RUNAS ARGS...  (WANT: an exit status, or 'nonzero')
	local want=$1 run=$2 rc
	shift 2
	rc=$(bctl_as "$run" "$@")
	if [ "$want" = nonzero ]; then
		[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "branchctl $(short "$@")as $(who "$run") exited $rc, expected a refusal: $(head -c 300 "$T/bctl.out")"
	else
		[ "$rc" = "$want" ] || fail "branchctl $(short "$@")as $(who "$run") exited $rc, expected $want: $(head -c 300 "$T/bctl.out")"
	fi
	[ "$(wc -l <"$T/bctl.out")" -le 3 ] || fail "branchctl $(short "$@")printed more than 3 lines: $(head -c 500 "$T/bctl.out")"
	log "branchctl $(short "$@")as $(who "$run") -> exit $rc: $(head -n 1 "$T/bctl.out" | cut -c1-150 | cat -v)"
}
who() { case "$1" in "$AS_A") echo "user a" ;; "$AS_B") echo "user b" ;; *) echo root ;; esac; }
short() { local s; s=$(printf '%q ' "$@"); printf '%s' "${s:0:90}"; }
branches() { ls -A "$MNT" | LC_ALL=C sort | tr '\n' ' '; }
alive() { _it_alive "${IT_MNTPID[$MNT]}" || fail "branchd died ($*)"; }

bfs_mount
chmod 1777 "$MNT" || fail "chmod 1777 on the branch root failed"
log "branch root: $(stat -c '%A %U:%G' "$MNT")"
mkdir "$MNT/main"
chmod 0777 "$MNT/main"
echo hello >"$MNT/main/file"
base=$(branches)

# ---- hostile names ----------------------------------------------------------
log "--- hostile names"
bad_names=($'a\nb' $'tab\there' $'\x01start' $'end\x7f' $'\e[31mred' $'cr\rx' $'\x1f')
for n in "${bad_names[@]}"; do
	got=$(try_as "$AS_A" mkdir "$MNT/$n")
	[ "$got" != OK ] || fail "mkdir of a name with a control character $(printf '%q' "$n") succeeded"
	log "mkdir $(printf '%q' "$n") as user a -> $got"
	[ "$(branches)" = "$base" ] || fail "branch list changed after refused mkdir $(printf '%q' "$n"): $(branches | cat -v)"
	expect_bctl nonzero "$AS_A" create "$n"
	expect_bctl nonzero "" create "$n"
	expect_bctl nonzero "" rename main "$n"
	[ "$(branches)" = "$base" ] || fail "branch list changed after refused branchctl create/rename $(printf '%q' "$n")"
done
alive "control-character names"
long255=$(printf 'L%.0s' {1..255})
long256=$(printf 'L%.0s' {1..256})
long300=$(printf 'M%.0s' {1..300})
long100k=$(head -c 100000 /dev/zero | tr '\0' 'Z')
expect_as ENAMETOOLONG "$AS_A" mkdir "$MNT/$long256"
expect_bctl nonzero "$AS_A" create "$long300"
expect_bctl nonzero "$AS_A" create "$long100k"
expect_bctl nonzero "" rename main "$long300"
expect_bctl nonzero "$AS_A" create ""
expect_bctl nonzero "$AS_A" create "."
expect_bctl nonzero "$AS_A" create ".."
expect_bctl nonzero "$AS_A" create "x/y"
expect_bctl nonzero "$AS_A" create "../../etc"
expect_bctl nonzero "$AS_A" info $'ma\nin'
expect_bctl nonzero "$AS_A" create "ok-name" --from $'ma\x01in'
expect_bctl nonzero "$AS_A" create "ok-name2" --at "$long300"
expect_as EEXIST "$AS_A" mkdir "$MNT/."
expect_as ENOENT "$AS_A" mkdir "$MNT/no-such/child"
[ "$(branches)" = "$base" ] || fail "branch list changed after refused names: $(branches | cat -v)"
alive "long and special names"
# odd but legal names work end to end
for n in "$long255" "with space" "-dash" "ünïcødé" "semi;colon" "quote'\"" 'dollar$x'; do
	expect_as OK "$AS_A" mkdir "$MNT/$n"
	[ -f "$MNT/$n/file" ] || fail "branch $(printf '%q' "${n:0:40}") does not show main's file"
	expect_as OK "$AS_A" rmdir "$MNT/$n"
done
[ "$(branches)" = "$base" ] || fail "branch list after the legal names: $(branches | cat -v)"
# the JSON list stays valid and contains no control characters
(cd / && tmo 60 "$BCTL" --mount "$MNT" --json list) >"$T/list.json" || fail "branchctl --json list failed"
python3 -c 'import json, sys; json.loads(sys.stdin.read())' <"$T/list.json" 2>/dev/null ||
	python3 -c 'import json, sys; [json.loads(l) for l in sys.stdin if l.strip()]' <"$T/list.json" ||
	fail "branchctl --json list is not valid JSON: $(head -c 300 "$T/list.json")"
! LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$T/list.json" || fail "branchctl --json list contains raw control characters"

# ---- mkdir races between two users ------------------------------------------
log "--- mkdir races"
race() { # RUNAS OUTFILE
	# shellcheck disable=SC2086
	(cd / && tmo 120 $1 /usr/bin/python3 - "$MNT" <<'EOF'
import errno, os, sys, time
mnt = sys.argv[1]
t0 = time.time()
while time.time() < t0 + 0.3:
    pass
for i in range(20):
    try:
        os.mkdir(os.path.join(mnt, "race-%d" % i))
        print(i, "OK")
    except OSError as e:
        print(i, errno.errorcode.get(e.errno, str(e.errno)))
EOF
	) >"$2"
}
race "$AS_A" "$T/race-a" &
pa=$!
race "$AS_B" "$T/race-b" &
pb=$!
IT_BG+=("$pa" "$pb")
wait "$pa" || fail "racer a failed"
wait "$pb" || fail "racer b failed"
wins_a=0 wins_b=0
for i in $(seq 0 19); do
	ra=$(awk -v i="$i" '$1 == i {print $2}' "$T/race-a")
	rb=$(awk -v i="$i" '$1 == i {print $2}' "$T/race-b")
	case "$ra/$rb" in
	OK/EEXIST) winner=$UID_bfshosta wins_a=$((wins_a + 1)) ;;
	EEXIST/OK) winner=$UID_bfshostb wins_b=$((wins_b + 1)) ;;
	*) fail "race-$i: user a got $ra, user b got $rb (expected exactly one OK and one EEXIST)" ;;
	esac
	[ -d "$MNT/race-$i" ] || fail "race-$i does not exist after the race"
	(cd / && tmo 60 "$BCTL" --mount "$MNT" --json info "race-$i") >"$T/info.json" || fail "branchctl info race-$i failed"
	owner=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["branch"]["owner_uid"])' <"$T/info.json" 2>/dev/null ||
		sed -n 's/.*"owner_uid": *\([0-9]*\).*/\1/p' "$T/info.json")
	[ "$owner" = "$winner" ] || fail "race-$i was created by uid $winner but belongs to uid $owner"
done
n=$(compgen -G "$MNT/race-*" | wc -l)
[ "$n" -eq 20 ] || fail "$n race-* branches after the race, expected 20"
log "mkdir race: 20 names, user a won $wins_a, user b won $wins_b, every loser got EEXIST"
alive "mkdir races"

# ---- sticky root: other users' branches are off limits ----------------------
log "--- sticky root"
expect_as OK "$AS_A" mkdir "$MNT/a-branch"
expect_bctl 0 "$AS_B" create b-branch
for op in "rmdir $MNT/a-branch" "rename $MNT/a-branch $MNT/stolen"; do
	# shellcheck disable=SC2086
	expect_as EPERM "$AS_B" $op
done
expect_as EPERM "$AS_A" rmdir "$MNT/b-branch"
expect_bctl 9 "$AS_B" delete a-branch
expect_bctl 9 "$AS_B" rename a-branch stolen
expect_bctl 9 "$AS_B" reset a-branch
expect_bctl 9 "$AS_A" delete b-branch
expect_bctl 9 "$AS_A" delete main
expect_as EPERM "$AS_A" rmdir "$MNT/main"
[ -d "$MNT/a-branch" ] && [ -d "$MNT/b-branch" ] && [ ! -e "$MNT/stolen" ] || fail "a refused request changed the branches: $(branches)"
# unprivileged admin commands
expect_bctl 9 "$AS_A" gc
expect_bctl 9 "$AS_A" retention 1
expect_bctl 9 "$AS_A" default a-branch
(cd / && tmo 30 "$BCTL" --mount "$MNT" default) | grep -q main || fail "the default parent changed"
# the owner and root may
expect_as OK "$AS_A" rename "$MNT/a-branch" "$MNT/a-renamed"
expect_as OK "$AS_A" rmdir "$MNT/a-renamed"
expect_bctl 0 "$AS_B" delete b-branch
for i in $(seq 0 19); do expect_as OK "" rmdir "$MNT/race-$i" >/dev/null; done
# no write permission on the root: nobody but root creates branches
chmod 0755 "$MNT"
expect_as EACCES "$AS_A" mkdir "$MNT/nope"
expect_bctl nonzero "$AS_A" create nope
[ ! -e "$MNT/nope" ] || fail "a branch was created without write permission on the root"
alive "sticky root"
[ "$(branches)" = "$base" ] || fail "branches left over: $(branches)"
[ "$(cat "$MNT/main/file")" = hello ] || fail "main's file changed"

# ---- one user's idle control connections do not lock the others out ----------
log "--- control connection limits"
sock=$( (cd / && tmo 30 "$BCTL" --mount "$MNT" --json status) | python3 -c 'import json, sys; print(json.load(sys.stdin)["socket"])') ||
	fail "branchctl status names no socket"
[ -S "$sock" ] || fail "status names '$sock', not a socket"
hold_py=$(cat <<'PY'
import select, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    conns.append(s)
time.sleep(1.0)  # a refused connection is answered at once
held, refused, msgs = 0, 0, set()
for s in conns:
    if select.select([s], [], [], 0)[0]:
        refused += 1
        msgs.add(s.recv(4096).decode(errors="replace").strip())
    else:
        held += 1
print("held %d refused %d %s" % (held, refused, " | ".join(sorted(msgs))), flush=True)
time.sleep(float(sys.stdin.readline()))  # hold them until told, then that long
PY
)
# shellcheck disable=SC2086
coproc HOLD { cd / && exec $AS_A /usr/bin/python3 -u -c "$hold_py" "$sock" 64 2>"$T/hold.err"; }
hold_pid=$HOLD_PID # bash unsets HOLD_PID once the coprocess exits
IT_BG+=("$hold_pid")
IFS= read -r -t 30 line <&"${HOLD[0]}" || fail "the connection holder did not report: $(cat "$T/hold.err")"
log "user a opened 64 control connections: $(cut -c1-200 <<<"$line")"
case "$line" in
"held 16 refused 48 "*'"error":"too_many"'*"uid $UID_bfshosta has 16 control connections open already (at most 16 at once)"*) ;;
*) fail "64 connections of one user: $line" ;;
esac
# while user a holds its 16, user b and root are served at once
expect_bctl 0 "$AS_B" list
expect_bctl 0 "" default
# user a's own branchctl waits (retries) until the holder lets go in 2 s
echo 2 >&"${HOLD[1]}"
t0=$(date +%s%N)
expect_bctl 0 "$AS_A" list
waited=$((($(date +%s%N) - t0) / 1000000))
log "user a's branchctl list was served after $waited ms"
[ "$waited" -ge 1500 ] || fail "user a's branchctl was served after $waited ms, while its 16 connections were still held"
wait "$hold_pid" || fail "the connection holder failed: $(cat "$T/hold.err")"
alive "control connection limits"
bfs_umount
rc=0
out=$(tmo 300 "$BRANCHD" --check "$STORE" 2>&1) || rc=$?
[ $rc -eq 0 ] || fail "branchd --check after the hostile requests: exit $rc: $out"
log "branchd --check: clean"
