#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 90
# t65: a new user's obvious mistakes, without Postgres: each gets one clear
# line on stderr and the right exit status, and changes nothing it should
# not.
#  - branchctl with a malformed command line (an option missing its value
#    at the end, after the names) is a usage error naming that option and
#    makes no branch (the --json pre-scan permuted argv, and the real parse
#    then took a name for the option's value: "create b1 zz --from" made
#    zz from b1, "create q --at" said "'create' takes 1 argument").
#  - a branch name that begins with '-' given as an option ("create -x")
#    is refused, and the line says to give it after '--' (it said only
#    "unknown option '-x'"); after '--' it is made.
#  - branchd's options after the store and mount point, as mount(8),
#    sshfs and fstab's mount.fuse3 put them, are taken (they were refused:
#    "expected STORE_DIR and MOUNTPOINT", with both given).
#  - a mount point inside the store's directory is refused before anything
#    is opened or made, for a store that exists (it mounted: a cp -a or an
#    rm -rf of the store then went on into every branch) and for a new one
#    (it said "not a branchfs store (not empty, no BRANCHFS file)").
#  - scripts/demo.sh stop with other BFS_DEMO_* settings than the demo's
#    says that nothing was running there (it said "demo stopped (store kept
#    in ...)" for a store that did not exist).
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

bfs_mount
mkdir "$MNT/main" "$MNT/b1"

# ---- branchctl: an option without its value, after the names -----------------
branches() { ctl --json list && jq_ "$CTL_OUT" '" ".join(sorted(b["name"] for b in d["branches"]))'; }
before=$(branches)
for line in "create b1 zz --from" "create q --at" "create q --from" "create b1 zz --at" \
	"--json create b1 zz --from" "delete b1 --at"; do
	# shellcheck disable=SC2086
	expect_ctl 2 $line
	grep -q "option '--\(from\|at\)' needs a value" <<<"$CTL_ERR" ||
		fail "branchctl $line: expected 'option ... needs a value', got: $CTL_ERR"
	[ "$(wc -l <<<"$CTL_ERR")" -eq 1 ] || fail "branchctl $line: more than one line: $CTL_ERR"
done
[ "$(branches)" = "$before" ] || fail "a malformed command line changed the branches: $before -> $(branches)"
expect_ctl 2 create -x
grep -q "after '--'" <<<"$CTL_ERR" || fail "create -x: the line does not say to use '--': $CTL_ERR"
expect_ctl 2 delete --lead
grep -q "after '--'" <<<"$CTL_ERR" || fail "delete --lead: the line does not say to use '--': $CTL_ERR"
[ "$(branches)" = "$before" ] || fail "a refused command line changed the branches: $before -> $(branches)"
expect_ctl 0 create -- -x
[ -d "$MNT/-x" ] || fail "create -- -x made no branch '-x'"
expect_ctl 0 delete -- -x
# the same options with their values still work, before or after the names
expect_ctl 0 create zz --from b1
expect_ctl 0 create --from b1 zz2
ctl --json info zz && jassert "$CTL_OUT" 'd["branch"]["parent"] == "b1"'
ctl --json info zz2 && jassert "$CTL_OUT" 'd["branch"]["parent"] == "b1"'

bfs_umount

# ---- branchd: options after the operands ----------------------------------------
mkdir -p "$T/m2"
IT_MOUNTS+=("$T/m2")
rc=0
tmo 60 "$BRANCHD" "$T/s2" "$T/m2" -o "pidfile=$T/m2.pid" -o root_mode=1777 >"$T/log/branchd-m2.log" 2>&1 || rc=$?
[ $rc -eq 0 ] || fail "branchd STORE MNT -o ... exited $rc: $(cat "$T/log/branchd-m2.log")"
pid=$(tr -dc 0-9 <"$T/m2.pid")
IT_DAEMONS+=("$pid")
IT_MNTPID[$T/m2]=$pid
[ "$(stat -c %a "$T/m2")" = 777 ] || fail "root_mode=1777 after the operands not applied: $(stat -c %a "$T/m2")"
log "branchd STORE MNT -o pidfile=...,root_mode=1777: mounted, pid $pid"
bfs_umount "$T/m2"

# ---- branchd: a mount point inside the store ----------------------------------------
# one_line_refusal DESC MNT CMD...: CMD exits 1 with one line on stderr
# naming the problem, and MNT is not mounted
one_line_refusal() {
	local desc=$1 mnt=$2 rc=0 err
	shift 2
	IT_MOUNTS+=("$mnt")
	err=$(tmo 30 "$@" 2>&1 >/dev/null) || rc=$?
	[ $rc -eq 1 ] || fail "$desc: exit $rc, expected 1 ($err)"
	[ "$(wc -l <<<"$err")" -eq 1 ] || fail "$desc: expected one line, got: $err"
	grep -q "is inside the store" <<<"$err" || fail "$desc: the line does not say why: $err"
	! is_mounted "$mnt" || fail "$desc: mounted anyway"
	log "$desc: exit 1, '$err'"
}
mkdir "$STORE/mnt"
one_line_refusal "mount point in an existing store" "$STORE/mnt" "$BRANCHD" "$STORE" "$STORE/mnt"
one_line_refusal "mount point in an existing store, by a relative path" "$STORE/mnt" \
	bash -c 'cd "$1" && exec "$2" . mnt' - "$STORE" "$BRANCHD"
mkdir -p "$T/fresh/mnt"
one_line_refusal "mount point in a new store" "$T/fresh/mnt" "$BRANCHD" "$T/fresh" "$T/fresh/mnt"
[ "$(ls -A "$T/fresh")" = mnt ] || fail "the refused new store left files: $(ls -A "$T/fresh")"
# a mount point beside the store, with the store's name as a prefix, is fine
mkdir -p "$T/store-mnt"
bfs_mount "$STORE" "$T/store-mnt"
[ -d "$T/store-mnt/main" ] || fail "the store's branches are not at $T/store-mnt"
bfs_umount "$T/store-mnt"

# ---- demo.sh stop where no demo runs ----------------------------------------------
out=$(BFS_DEMO_DIR=$T/nodemo tmo 30 bash "$IT_ROOT/scripts/demo.sh" stop 2>&1) || fail "demo.sh stop with nothing running failed: $out"
grep -q "^nothing to stop: no demo is mounted at $T/nodemo/mnt" <<<"$out" || fail "demo.sh stop with nothing running said: $out"
[ ! -e "$T/nodemo" ] || fail "demo.sh stop made $T/nodemo"
log "demo.sh stop, nothing running: '$out'"
