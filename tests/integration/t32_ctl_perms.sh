#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 90
# t32: branchctl authorization by the caller's uid (SO_PEERCRED), with a
# root daemon and a second user, uid 1000.  The user may read (list, info,
# status, default, retention) but may not delete, rename or reset a branch
# it does not own, nor set the default parent, the retention or run gc
# (exit 9); it may create branches only when the branch root's mode lets
# it (chmod 1777 MNT, or group write for a supplementary group of the
# caller), as mkdir would, and may rename, reset and delete its own; root
# may delete anyone's.
# shellcheck source=lib.sh disable=SC2086 # $AS_U is a command prefix
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

UID2=1000
if getent passwd "$UID2" >/dev/null; then
	USER2=$(getent passwd "$UID2" | cut -d: -f1)
	log "using existing user $USER2 (uid $UID2)"
else
	USER2=bfsu$UID2
	if ! getent group "$USER2" >/dev/null; then
		groupadd -g "$UID2" "$USER2" 2>/dev/null || groupadd "$USER2"
		IT_GROUPS+=("$USER2")
	fi
	useradd -u "$UID2" -g "$USER2" -M -d /nonexistent -s /usr/sbin/nologin "$USER2"
	IT_USERS+=("$USER2")
	log "created user $USER2 (uid $UID2), removed again at exit"
fi
GID2=$(id -g "$USER2")
AS_U="setpriv --reuid=$UID2 --regid=$GID2 --clear-groups"
[ "$(cd "$T" && $AS_U id -u)" = "$UID2" ] || fail "cannot run commands as uid $UID2"

bfs_mount
[ "$(stat -c '%u %a' "$MNT")" = "0 755" ] || fail "branch root is $(stat -c '%u %a' "$MNT"), expected '0 755'"
expect_ctl 0 create main
chmod 0755 "$MNT/main"
echo main-data >"$MNT/main/f"
expect_ctl 0 create rootbr
echo root-data >"$MNT/rootbr/f"

# ---- the user reads, but changes nothing of root's --------------------------------
CTL_AS=$AS_U expect_ctl 0 --json list
jassert "$CTL_OUT" "sorted(b['name'] for b in d['branches']) == ['main', 'rootbr'] and all(b['owner_uid'] == 0 for b in d['branches'])" "list as uid $UID2"
CTL_AS=$AS_U expect_ctl 0 info rootbr
CTL_AS=$AS_U expect_ctl 0 status
CTL_AS=$AS_U expect_ctl 0 default
[ "$CTL_OUT" = main ] || fail "default as uid $UID2 printed '$CTL_OUT'"
CTL_AS=$AS_U expect_ctl 0 retention
CTL_AS=$AS_U expect_ctl 9 delete rootbr
grep -q "owned by uid 0" <<<"$CTL_ERR" || fail "refusal does not say who owns the branch: $CTL_ERR"
CTL_AS=$AS_U expect_ctl 9 rename rootbr mine
CTL_AS=$AS_U expect_ctl 9 reset rootbr
CTL_AS=$AS_U expect_ctl 9 delete main
CTL_AS=$AS_U expect_ctl 9 default rootbr
CTL_AS=$AS_U expect_ctl 9 retention 10
CTL_AS=$AS_U expect_ctl 9 gc
CTL_AS=$AS_U expect_ctl 4 delete nosuch
# the root dir is 0755 root: no branches for the user, by branchctl or mkdir
CTL_AS=$AS_U expect_ctl 9 create u1
if (cd "$T" && tmo 60 $AS_U mkdir "$MNT/u1") 2>/dev/null; then fail "uid $UID2 could mkdir in a 0755 root-owned branch root"; fi
[ ! -e "$MNT/u1" ] || fail "a refused create left $MNT/u1"
# nothing changed
[ "$(cat "$MNT/rootbr/f")" = root-data ] || fail "rootbr changed after refused requests"
expect_ctl 0 default
[ "$CTL_OUT" = main ] || fail "default changed to '$CTL_OUT' by a refused request"
expect_ctl 0 retention
[ "$CTL_OUT" = "3600 s" ] || fail "retention changed to '$CTL_OUT' by a refused request"
expect_ctl 0 --json list
jassert "$CTL_OUT" "sorted(b['name'] for b in d['branches']) == ['main', 'rootbr']" "branches after refused requests"

# ---- a supplementary group of the caller that owns the root counts, as for mkdir ----
GSUP=60200
chgrp "$GSUP" "$MNT"
chmod 0775 "$MNT"
AS_G="setpriv --reuid=$UID2 --regid=$GID2 --groups=$GSUP"
CTL_AS=$AS_G expect_ctl 0 create g1
(cd "$T" && tmo 60 $AS_G mkdir "$MNT/g2") || fail "uid $UID2 in group $GSUP could not mkdir in a 0775 root of that group"
CTL_AS=$AS_U expect_ctl 9 create g3
[ ! -e "$MNT/g3" ] || fail "create without the group made g3"
CTL_AS=$AS_G expect_ctl 0 delete g1
CTL_AS=$AS_G expect_ctl 0 delete g2
chgrp 0 "$MNT"
chmod 0755 "$MNT"

# ---- the root allows it: the user creates, renames, resets, deletes its own ----------
chmod 1777 "$MNT"
CTL_AS=$AS_U expect_ctl 0 --json create u1
jassert "$CTL_OUT" "d['branch']['owner_uid'] == $UID2 and d['branch']['parent'] == 'main'" "create u1 as uid $UID2"
[ "$(cat "$MNT/u1/f")" = main-data ] || fail "u1 does not hold main's data"
CTL_AS=$AS_U expect_ctl 0 rename u1 u1b
{ [ -d "$MNT/u1b" ] && [ ! -e "$MNT/u1" ]; } || fail "rename u1 u1b by its owner not visible"
echo changed >"$MNT/u1b/f"
CTL_AS=$AS_U expect_ctl 0 reset u1b
[ "$(cat "$MNT/u1b/f")" = main-data ] || fail "reset u1b by its owner did not bring back main's data"
CTL_AS=$AS_U expect_ctl 9 delete rootbr # still not its own
CTL_AS=$AS_U expect_ctl 0 delete u1b
[ ! -e "$MNT/u1b" ] || fail "u1b still visible after its owner deleted it"
# a branch made by the user with mkdir is the user's too
(cd "$T" && tmo 60 $AS_U mkdir "$MNT/u2") || fail "uid $UID2 cannot mkdir in a 1777 branch root"
expect_ctl 0 --json info u2
jassert "$CTL_OUT" "d['branch']['owner_uid'] == $UID2" "owner of a branch made by mkdir as uid $UID2"
CTL_AS=$AS_U expect_ctl 0 delete u2
# root may delete (and rename) anyone's branch
CTL_AS=$AS_U expect_ctl 0 create u3
expect_ctl 0 rename u3 u3r
expect_ctl 0 delete u3r
{ [ ! -e "$MNT/u3r" ] && [ ! -e "$MNT/u3" ]; } || fail "root's delete of the user's branch not visible"
# ... and a branch of root's stays root's even with a 1777 root dir
CTL_AS=$AS_U expect_ctl 9 delete rootbr
CTL_AS=$AS_U expect_ctl 9 reset main

# ---- the root is closed again --------------------------------------------------------
chmod 0755 "$MNT"
CTL_AS=$AS_U expect_ctl 9 create u4
expect_ctl 0 --json list
jassert "$CTL_OUT" "sorted(b['name'] for b in d['branches']) == ['main', 'rootbr']" "branches at the end"
bfs_umount
