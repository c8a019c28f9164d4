#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
# t36: the branch namespace as CI scripts and several users on one machine
# use it, the mount point and branchctl side by side:
#  - names: C1 control characters (U+0080-U+009F; U+009B is a terminal's
#    CSI) are refused like C0 ones, by mkdir and branchctl create/rename,
#    and so are the characters that reorder a line (bidi overrides,
#    isolates, marks) or break it (U+2028, U+2029);
#    a name that is not UTF-8 gets branchctl's "invalid branch name", not
#    a message about a seq; odd but legal names (255 bytes, UTF-8, spaces,
#    a leading '-', JSON, names differing in case) list the same in
#    `branchctl --json list` and `ls` of the root; a name longer than 255
#    bytes is ENAMETOOLONG for every call at the root, as on ext4;
#  - a rename at the root never replaces a branch: onto a taken name it is
#    EEXIST (also with RENAME_NOREPLACE, and branchctl's exit 5), and
#    RENAME_EXCHANGE is EINVAL (man branchd(8)); a child names its
#    renamed parent by the new name and keeps it from being deleted;
#  - branchctl's command line: an option given twice (--from, --at,
#    --mount) and an option the command does not take (reset --from,
#    delete --at, info --tree) are usage errors (exit 2) that change
#    nothing, never silently the last one or ignored; a refused command
#    line says so in one line; a --mount path the caller may not look
#    into is exit 9, not 3 ("no daemon"), and a deleted current directory
#    gets a line, not a silent exit 3;
#  - who may delete, rename or reset whose branch: for each mode of the
#    branch root (sticky 1777, plain 0777, sticky and owned by the other
#    user, 0755), branchctl delete/rename/reset allow exactly what rmdir
#    and mv allow (uid 999 and uid 1000, made here if missing).
# shellcheck source=lib.sh disable=SC2086 # $AS_* are command prefixes
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

# ---- users ----------------------------------------------------------------------
# mkuid UID NAME: VAR AS_<NAME> runs a command as that uid (made if missing)
mkuid() {
	local uid=$1 name=$2 user gid
	if getent passwd "$uid" >/dev/null; then
		user=$(getent passwd "$uid" | cut -d: -f1)
		log "using existing user $user (uid $uid)"
	else
		user=bfst36u$uid
		useradd -u "$uid" -U -M -d /nonexistent -s /usr/sbin/nologin "$user" 2>/dev/null ||
			fail "useradd -u $uid $user failed"
		IT_USERS+=("$user")
		IT_GROUPS+=("$user")
		log "created user $user (uid $uid), removed again at exit"
	fi
	gid=$(id -g "$user")
	printf -v "AS_$name" '%s' "setpriv --reuid=$uid --regid=$gid --clear-groups"
}
mkuid 999 A
mkuid 1000 B
UID_A=999 UID_B=1000

# try_as RUNAS OP ARGS...: one syscall (os.OP) as RUNAS, prints OK or the errno name
try_as() {
	local run=$1
	shift
	(cd / && tmo 60 $run /usr/bin/python3 -c "$IT_TRY_OP_PY" "$@")
}
# ctl_as RUNAS ARGS...: branchctl as RUNAS (sets CTL_RC, CTL_OUT, CTL_ERR)
ctl_as() {
	local run=$1
	shift
	CTL_AS=$run CTL_CWD=/ ctl "$@"
}
one_line_err() { # what: stderr of the last ctl must be one line
	[ "$(printf '%s\n' "$CTL_ERR" | wc -l)" -eq 1 ] ||
		fail "$1: branchctl printed $(printf '%s\n' "$CTL_ERR" | wc -l) lines on stderr, expected one: ${CTL_ERR:0:300}"
}
list_names() { # sorted names from branchctl --json list, one per line
	ctl --json list
	[ "$CTL_RC" -eq 0 ] || fail "branchctl list failed: $CTL_ERR"
	python3 -c 'import json, sys; print("\n".join(sorted(b["name"] for b in json.loads(sys.argv[1])["branches"])))' "$CTL_OUT"
}
ls_names() { python3 -c 'import os, sys; print("\n".join(sorted(os.listdir(sys.argv[1]))))' "$MNT"; }
same_lists() { # what
	local a b
	a=$(list_names)
	b=$(ls_names)
	[ "$a" = "$b" ] || fail "$1: branchctl list and ls of the root differ: $(diff <(echo "$a") <(echo "$b") | cat -v | head -c 400)"
}

bfs_mount
mkdir "$MNT/main"
chmod 0777 "$MNT/main"
echo main-data >"$MNT/main/f"

# ---- names ----------------------------------------------------------------------
log "--- names"
for n in $'c1\xc2\x9b31mred' $'nel\xc2\x85x' $'\xc2\x80' $'end\xc2\x9f'; do
	got=$(try_op mkdir "$MNT/$n")
	[ "$got" = EINVAL ] || fail "mkdir of a name with a C1 control character $(printf '%q' "$n") gave $got, expected EINVAL"
	expect_ctl 10 create "$n"
	expect_ctl 10 rename main "$n"
done
for n in $'\xff' $'bad\xc3' $'\xc0\xaf'; do
	expect_ctl 10 create "$n"
	grep -q 'invalid branch name' <<<"$CTL_ERR" || fail "create of a name that is not UTF-8 $(printf '%q' "$n") says: $CTL_ERR"
	expect_ctl 10 rename main "$n"
	grep -q 'invalid' <<<"$CTL_ERR" || fail "rename to a name that is not UTF-8 says: $CTL_ERR"
done
# U+202E RIGHT-TO-LEFT OVERRIDE would list 'pr-<RLO>lmth.exe' as
# 'pr-exe.html'; isolates, marks and line separators likewise
for n in $'pr-\xe2\x80\xaelmth.exe' $'\xe2\x81\xa6x' $'rlm\xe2\x80\x8f' $'al\xd8\x9cm' $'two\xe2\x80\xa9par'; do
	got=$(try_op mkdir "$MNT/$n")
	[ "$got" = EINVAL ] || fail "mkdir of a name with a bidirectional formatting character $(printf '%q' "$n") gave $got, expected EINVAL"
	expect_ctl 10 create "$n"
	grep -q 'bidirectional' <<<"$CTL_ERR" || fail "create of $(printf '%q' "$n") says: $CTL_ERR"
	expect_ctl 10 rename main "$n"
done
[ "$(ls_names)" = main ] || fail "refused names left branches: $(ls_names | cat -v)"
# U+00A0 (no-break space) is the first code point after C1: allowed
long255=$(printf 'x%.0s' {1..255})
legal=("$long255" "$(printf 'é%.0s' {1..127})" 'sp ace' '-dash' '--from' '{"cmd":"delete"}' 'Main' $'nb\xc2\xa0sp' $'zwj\xe2\x80\x8dx' $'nnb\xe2\x80\xafsp')
for n in "${legal[@]}"; do
	expect_op OK mkdir "$MNT/$n" >/dev/null
done
expect_op ENAMETOOLONG mkdir "$MNT/${long255}y"
expect_op ENAMETOOLONG mkdir "$MNT/$(printf 'é%.0s' {1..128})"
# any other call on a name longer than a branch's: ENAMETOOLONG, as on a
# local disk (the root's lookup said ENOENT, and mknod EPERM)
for op in stat rmdir unlink mknod; do
	expect_op ENAMETOOLONG "$op" "$MNT/${long255}y"
done
expect_op ENAMETOOLONG rename "$MNT/${long255}y" "$MNT/renamed"
expect_op ENAMETOOLONG symlink x "$MNT/${long255}y"
same_lists "legal names made by mkdir"
expect_ctl 0 info -- -dash
expect_ctl 0 rename -- --from --from2
expect_ctl 0 delete -- --from2
expect_ctl 0 rename Main main2 # differs from main only in case
same_lists "after renames and a delete by branchctl"
for n in "${legal[@]}"; do [ "$n" = --from ] || [ "$n" = Main ] || expect_op OK rmdir "$MNT/$n" >/dev/null; done
expect_op OK rmdir "$MNT/main2"
[ "$(ls_names)" = main ] || fail "branches left after the names: $(ls_names | cat -v)"

# ---- renames at the root (man branchd(8), mv): nothing is replaced ---------------------
log "--- renames at the root"
mkdir "$MNT/r1" "$MNT/r2"
echo r2-data >"$MNT/r2/f"
got=$(python3 - "$MNT" <<'EOF'
import ctypes, errno, os, sys
m = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
def r2(a, b, flags):
    rc = libc.renameat2(-100, os.path.join(m, a).encode(), -100, os.path.join(m, b).encode(), flags)
    return "OK" if rc == 0 else errno.errorcode[ctypes.get_errno()]
print(" ".join([r2("r1", "r2", 0), r2("r1", "r2", 1), r2("r1", "r2", 2), r2("r1", "r3", 1), r2("r3", "r3", 0)]))
EOF
)
[ "$got" = "EEXIST EEXIST EINVAL OK OK" ] ||
	fail "renameat2 onto a branch / NOREPLACE / EXCHANGE / NOREPLACE to a free name / onto itself gave '$got', expected 'EEXIST EEXIST EINVAL OK OK'"
log "renameat2 at the root: onto a branch, NOREPLACE, EXCHANGE, NOREPLACE to a free name, onto itself: $got"
[ "$(cat "$MNT/r2/f")" = r2-data ] || fail "a refused rename onto r2 changed it"
expect_ctl 5 rename r3 r2
[ "$(ls_names | tr '\n' ' ')" = "main r2 r3 " ] || fail "branches after the renames: $(ls_names | tr '\n' ' ')"
# a parent renamed under its child: the child names it by its new name
expect_ctl 0 create r2kid --from r2
expect_op OK rename "$MNT/r2" "$MNT/r2new"
expect_ctl 0 --json info r2kid
jassert "$CTL_OUT" "d['branch']['parent'] == 'r2new'" "parent of r2kid after mv r2 r2new"
[ "$(cat "$MNT/r2kid/f")" = r2-data ] || fail "r2kid lost its data after its parent's rename"
expect_op EBUSY rmdir "$MNT/r2new"
expect_ctl 7 delete r2new
expect_op OK rmdir "$MNT/r2kid"
expect_op OK rmdir "$MNT/r2new"
expect_op OK rmdir "$MNT/r3"

# ---- branchctl's command line ---------------------------------------------------------
log "--- command line"
mkdir "$MNT/other"
echo other-data >"$MNT/other/f"
mkdir "$MNT/kid"
echo kid-data >"$MNT/kid/f"
expect_ctl 2 create x --from main --from other
one_line_err "create --from twice"
grep -q -- '--from' <<<"$CTL_ERR" || fail "create with two --from does not name the option: $CTL_ERR"
expect_ctl 2 create x --at -1s --at -2s
expect_ctl 2 create x --at -1s --from main --at -2s
ctl_as "" --mount "$MNT" create x
[ "$CTL_RC" -eq 2 ] || fail "branchctl --mount M --mount M create x exited $CTL_RC, expected 2"
[ ! -e "$MNT/x" ] || fail "a refused create made branch x"
expect_ctl 2 reset kid --from other # kid's parent is main: the reset would drop kid-data
one_line_err "reset --from"
[ "$(cat "$MNT/kid/f")" = kid-data ] || fail "a refused reset changed kid: $(cat "$MNT/kid/f")"
expect_ctl 2 delete kid --at -1s
[ -d "$MNT/kid" ] || fail "a refused delete removed kid"
expect_ctl 2 rename kid kid2 --from main
[ -d "$MNT/kid" ] || fail "a refused rename renamed kid"
expect_ctl 2 info kid --tree
expect_ctl 2 list --frob
one_line_err "unknown option"
expect_ctl 2 frobnicate
one_line_err "unknown command"
expect_ctl 2 create x --from
one_line_err "--from without a value"
[ ! -e "$MNT/x" ] || fail "a refused command line made branch x"
# a mount path the caller may not look into is "permission denied" (exit 9),
# not "no daemon" (exit 3), and a current directory that is gone says so
mkdir -p "$T/private/x"
chmod 0700 "$T/private"
CTL_MNT=none ctl_as "$AS_B" --mount "$T/private/x" list
[ "$CTL_RC" -eq 9 ] || fail "branchctl --mount <path under a 0700 dir> as uid $UID_B exited $CTL_RC, expected 9: $CTL_ERR"
one_line_err "--mount under a 0700 dir"
log "branchctl --mount <path under a 0700 dir> as uid $UID_B -> exit 9 ($CTL_ERR)"
mkdir "$T/gone"
rc=0
(cd "$T/gone" && rmdir "$T/gone" && tmo 30 "$BRANCHCTL" list) >"$T/gone.out" 2>"$T/gone.err" || rc=$?
{ [ "$rc" -eq 3 ] && [ "$(wc -l <"$T/gone.err")" -eq 1 ]; } ||
	fail "branchctl list in a deleted current directory exited $rc with '$(cat "$T/gone.err")', expected exit 3 and one line"
log "branchctl list in a deleted current directory -> exit 3 ($(cat "$T/gone.err"))"
expect_ctl 0 create x --from other
[ "$(cat "$MNT/x/f")" = other-data ] || fail "create x --from other does not hold other's data"
expect_op OK rmdir "$MNT/x"
expect_op OK rmdir "$MNT/kid"
expect_op OK rmdir "$MNT/other"

# ---- who may delete, rename or reset whose branch ----------------------------------
log "--- permissions: branchctl allows what rmdir and mv allow"
chmod 1777 "$MNT"
# setup MODE OWNER: two branches of uid A's (made by mkdir as A), then the
# root gets MODE and OWNER
setup() {
	chown 0:0 "$MNT"
	chmod 1777 "$MNT"
	for n in pa pb; do
		[ -e "$MNT/$n" ] || { [ "$(try_as "$AS_A" mkdir "$MNT/$n")" = OK ] || fail "uid $UID_A cannot mkdir $n in a 1777 root"; }
	done
	chown "$2" "$MNT"
	# a chmod keeps the (unseen) sticky bit while others may write:
	# drop it first, so that 0777 is a plain 0777
	chmod 0755 "$MNT"
	chmod "$1" "$MNT"
}
# compare MODE OWNER RUNAS WHO: rmdir pa vs branchctl delete pb, mv pa vs
# branchctl rename pb, and branchctl reset pb (judged like rmdir) must
# agree on allowed or refused
compare() {
	local mode=$1 owner=$2 run=$3 who=$4 fs ct what
	setup "$mode" "$owner"
	fs=$(try_as "$run" rename "$MNT/pa" "$MNT/pa2")
	ctl_as "$run" rename pb pb2
	what="root $mode owned by $owner, $who renames uid $UID_A's branch"
	log "$what: mv -> $fs, branchctl rename -> exit $CTL_RC ${CTL_ERR:+($CTL_ERR)}"
	if [ "$fs" = OK ]; then
		[ "$CTL_RC" -eq 0 ] || fail "$what: mv is allowed but branchctl rename exits $CTL_RC: $CTL_ERR"
		mv "$MNT/pa2" "$MNT/pa"
		mv "$MNT/pb2" "$MNT/pb"
	else
		[ "$CTL_RC" -eq 9 ] || fail "$what: mv is refused ($fs) but branchctl rename exits $CTL_RC (expected 9)"
	fi
	ct=$CTL_RC
	ctl_as "$run" reset pb
	[ "$CTL_RC" -eq "$ct" ] || fail "root $mode owned by $owner: $who's branchctl rename exits $ct but reset $CTL_RC"
	fs=$(try_as "$run" rmdir "$MNT/pa")
	ctl_as "$run" delete pb
	what="root $mode owned by $owner, $who deletes uid $UID_A's branch"
	log "$what: rmdir -> $fs, branchctl delete -> exit $CTL_RC"
	if [ "$fs" = OK ]; then
		[ "$CTL_RC" -eq 0 ] || fail "$what: rmdir is allowed but branchctl delete exits $CTL_RC: $CTL_ERR"
	else
		[ "$CTL_RC" -eq 9 ] || fail "$what: rmdir is refused ($fs) but branchctl delete exits $CTL_RC (expected 9)"
		[ -d "$MNT/pb" ] || fail "$what: a refused delete removed pb"
	fi
}
compare 1777 0 "$AS_B" "uid $UID_B"
compare 1777 0 "$AS_A" "uid $UID_A (the owner)"
compare 0777 0 "$AS_B" "uid $UID_B"
compare 1777 "$UID_B" "$AS_B" "uid $UID_B (the root's owner)"
compare 0755 0 "$AS_A" "uid $UID_A (the owner)"
compare 0775 0 "$AS_B" "uid $UID_B"
chown 0:0 "$MNT"
chmod 0755 "$MNT"
for n in pa pb; do [ ! -e "$MNT/$n" ] || rmdir "$MNT/$n"; done
same_lists "at the end"
[ "$(cat "$MNT/main/f")" = main-data ] || fail "main changed"
bfs_umount
