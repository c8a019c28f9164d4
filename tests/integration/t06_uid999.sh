#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 150
# t06: a non-root uid with no home directory (as in a container: uid 999)
# creates its own branch with mkdir, runs initdb, pg_ctl start and psql on
# it, with HOME unset and the full paths of the Postgres binaries.
source "$(dirname "$0")/lib.sh"
it_init

# one t06 at a time on this machine: the user is shared state
exec 9>/var/lock/branchfs-it-t06.lock
tmo 120 flock 9 || fail "another t06 holds /var/lock/branchfs-it-t06.lock"

uid=999
while getent passwd "$uid" >/dev/null; do
	uname_=$(getent passwd "$uid" | cut -d: -f1)
	if [[ "$uname_" == bfs* ]]; then break; fi # our own leftover from a killed run
	uid=$((uid - 1))
	[ "$uid" -ge 900 ] || fail "no free uid in 900..999"
done
[ "$uid" -eq 999 ] || log "note: uid 999 is taken, using uid $uid"
user=bfs$uid
if getent passwd "$user" >/dev/null; then
	log "reusing leftover user $user"
else
	getent group "$user" >/dev/null || { groupadd -r "$user" && IT_GROUPS+=("$user"); }
	useradd -r -u "$uid" -g "$user" -M -d /nonexistent -s /usr/sbin/nologin "$user"
fi
IT_USERS+=("$user")
IT_GROUPS+=("$user")
gid=$(id -g "$user")
[ ! -e /nonexistent ] || fail "/nonexistent exists; this test needs a user without a home"
log "user $user uid=$uid gid=$gid, home /nonexistent (absent)"

AS_U="env -u HOME -u XDG_RUNTIME_DIR -u USER -u LOGNAME setpriv --reuid=$uid --regid=$gid --clear-groups"
ulog=$T/ulog
mkdir "$ulog"
chown "$uid:$gid" "$ulog"

# by default only root may create branches (root_mode 0755); a shared mount
# for several users opens the branch root like /tmp
bfs_mount "$STORE" "$MNT" root_mode=1777
# (branchd enforces the sticky bit itself and hides it from st_mode, see fs/fs_root.c)
case $(stat -c %a "$MNT") in 777 | 1777) ;; *) fail "root_mode=1777 gave a branch root of mode $(stat -c %a "$MNT")" ;; esac
# the user creates its own branch (first mkdir in an empty store: empty branch)
(cd "$T" && tmo 60 $AS_U mkdir "$MNT/u$uid") || fail "uid $uid cannot mkdir $MNT/u$uid (root dir: $(stat -c '%A %U:%G' "$MNT"))"
owner=$(stat -c %u:%g "$MNT/u$uid")
[ "$owner" = "$uid:$gid" ] || fail "branch u$uid is owned by $owner, expected $uid:$gid"
(cd "$T" && $AS_U chmod 0700 "$MNT/u$uid") || fail "uid $uid cannot chmod its own branch"

(cd "$T" && tmo 300 $AS_U /usr/lib/postgresql/15/bin/initdb -D "$MNT/u$uid" -A trust -U postgres -E UTF8 --locale=C \
	>"$ulog/initdb.log" 2>&1) || fail "initdb as uid $uid failed: $(tail -n 15 "$ulog/initdb.log")"
log "initdb as uid $uid done"
[ "$(stat -c %u "$MNT/u$uid/global/pg_control")" = "$uid" ] || fail "files created by uid $uid are not owned by it"
free_port P
pg_start "$MNT/u$uid" "$P" "$AS_U"
pid=${IT_PGPID[$MNT/u$uid]}
[ "$(ps -o uid= -p "$pid" | tr -d ' ')" = "$uid" ] || fail "postmaster $pid does not run as uid $uid"
out=$(cd "$T" && tmo 60 $AS_U /usr/lib/postgresql/15/bin/psql -X -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$P" -U postgres -d postgres \
	-c "create table c(id int primary key, v text)" -c "insert into c select g, md5(g::text) from generate_series(1, 20000) g" \
	-c "select count(*) from c" 2>&1) || fail "psql as uid $uid failed: $out"
[ "$(echo "$out" | tail -n 1)" = 20000 ] || fail "psql as uid $uid returned: $out"
log "psql as uid $uid: count=20000"
amcheck "$P"
pg_stop "$MNT/u$uid"
bfs_umount

# sticky root: remount with u$uid as the default parent; root makes a
# branch of it, which the user may neither delete nor rename, then the user
# deletes its own branch
bfs_mount "$STORE" "$MNT" "root_mode=1777,default_parent=u$uid"
tmo 60 mkdir "$MNT/roots"
[ -f "$MNT/roots/PG_VERSION" ] || fail "default_parent=u$uid: branch 'roots' is not a branch of u$uid"
uop() { (cd "$T" && tmo 60 $AS_U /usr/bin/python3 -c "$IT_TRY_OP_PY" "$@"); }
got=$(uop rmdir "$MNT/roots")
[ "$got" = EPERM ] || fail "uid $uid deleting root's branch gave $got, expected EPERM"
got=$(uop rename "$MNT/roots" "$MNT/mine")
[ "$got" = EPERM ] || fail "uid $uid renaming root's branch gave $got, expected EPERM"
log "sticky branch root: uid $uid cannot rmdir/mv root's branch (EPERM)"
expect_op OK rmdir "$MNT/roots"
got=$(uop rmdir "$MNT/u$uid")
[ "$got" = OK ] || fail "uid $uid deleting its own branch gave $got"
[ -z "$(ls "$MNT")" ] || fail "branches left: $(ls "$MNT")"
log "uid $uid deleted its own branch"
bfs_umount
