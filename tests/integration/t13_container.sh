#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 240
# t13: a branch bind-mounted into a container as its PGDATA, as
# `docker run -v MNT/main:/var/lib/postgresql/data postgres:15` does, with
# no Docker engine: a "container" is a new mount, pid and network namespace
# (unshare) with its own /etc/passwd (its postgres user is a uid this host
# has no name for), its own /var/run/postgresql and the branch bound at
# /var/lib/postgresql/data.  The image's entrypoint steps run in it (chown
# and chmod of PGDATA as root, initdb as the postgres uid when PGDATA is
# empty), then postgres runs as the container's pid 1 with unix sockets
# only, on port 5432 in both containers.  From the host:
#  - the branch is busy (rmdir and mv EBUSY) although its postmaster.pid
#    names pid 1;
#  - mkdir of a branch of the running container's cluster checkpoints that
#    server: branchd finds it working in the branch, enters its mount
#    namespace to reach its socket (the host's /var/run/postgresql is not
#    the container's) and connects as "postgres"; the branch's REDO is at
#    or past the insert LSN read just before;
#  - a second container on the new branch starts: the row committed before
#    the mkdir is there, the one after is not, writes stay on their side,
#    pg_amcheck is clean in both;
#  - a killed container (docker kill) leaves a postmaster.pid naming pid 1,
#    alive here as the host's init: the branch is not busy and deletes; so
#    does the other once its container has stopped.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
it_init
command -v unshare >/dev/null || fail "unshare not found: install util-linux"
command -v nsenter >/dev/null || fail "nsenter not found: install util-linux"

declare -A CTR_UNSHARE=() CTR_PID=() # branch -> host pid of unshare / of the container's pid 1
_t13_exit() {
	local rc=$? b pid
	set +eE
	trap - ERR
	# the containers hold bind mounts of the branches: they go first
	for b in "${!CTR_UNSHARE[@]}"; do
		for pid in "${CTR_PID[$b]:-}" "${CTR_UNSHARE[$b]}"; do
			_it_alive "$pid" && kill -KILL "$pid" 2>/dev/null
		done
		_it_wait_gone "${CTR_UNSHARE[$b]}" 20 || log "warning: container of $b (unshare ${CTR_UNSHARE[$b]}) did not exit"
	done
	(exit $rc)
	_it_cleanup
}
trap _t13_exit EXIT

# a uid the host has no name for, as a container's postgres user is
CUID=999
while getent passwd "$CUID" >/dev/null; do CUID=$((CUID + 1)); done
ROOTFS=$T/ctr
mkdir -p "$ROOTFS"
cat >"$ROOTFS/passwd" <<EOF
root:x:0:0:root:/root:/bin/bash
postgres:x:$CUID:$CUID::/var/lib/postgresql:/bin/bash
EOF
cat >"$ROOTFS/group" <<EOF
root:x:0:
postgres:x:$CUID:
EOF
# The container: its own view of /etc/passwd, /etc/group, the socket
# directory and /var/lib/postgresql, the branch as PGDATA; then the
# postgres image's entrypoint, as root, and postgres as pid 1.
cat >"$ROOTFS/run.sh" <<'EOF'
set -eu
br=$1 rootfs=$2 cuid=$3 pgbin=$4
mount --bind "$rootfs/passwd" /etc/passwd
mount --bind "$rootfs/group" /etc/group
mount -t tmpfs -o mode=0755 ctr-run /var/run/postgresql
mount -t tmpfs -o mode=0755 ctr-lib /var/lib/postgresql
mkdir /var/lib/postgresql/data
mount --bind "$br" /var/lib/postgresql/data
export PGDATA=/var/lib/postgresql/data
chown postgres:postgres /var/run/postgresql
chmod 3777 /var/run/postgresql
chown postgres:postgres "$PGDATA"
chmod 700 "$PGDATA"
asuser() { setpriv --reuid="$cuid" --regid="$cuid" --clear-groups env -i PATH=/usr/bin:/bin PGDATA="$PGDATA" "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	asuser "$pgbin/initdb" -U postgres --auth=trust >/dev/null
	echo "listen_addresses = ''" >>"$PGDATA/postgresql.conf"
fi
exec setpriv --reuid="$cuid" --regid="$cuid" --clear-groups env -i PATH=/usr/bin:/bin \
	"$pgbin/postgres" -D "$PGDATA" -p 5432 -c unix_socket_directories=/var/run/postgresql
EOF

# cq BRANCH SQL: psql in the branch's container (as `docker exec` would)
cq() {
	tmo 120 nsenter -t "${CTR_PID[$1]}" -m -- "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
		-h /var/run/postgresql -p 5432 -U postgres -d postgres -c "$2"
}
# ctr_start BRANCH: run a container on MNT/BRANCH and wait until it serves
ctr_start() {
	local b=$1 n
	setsid unshare --mount --propagation private --pid --net --fork --mount-proc \
		bash "$ROOTFS/run.sh" "$MNT/$b" "$ROOTFS" "$CUID" "$PGBIN" >"$T/log/ctr-$b.log" 2>&1 &
	CTR_UNSHARE[$b]=$!
	for ((n = 0; n < 600; n++)); do
		_it_alive "${CTR_UNSHARE[$b]}" || fail "the container on $b exited: $(tail -n 5 "$T/log/ctr-$b.log")"
		CTR_PID[$b]=$(pgrep -P "${CTR_UNSHARE[$b]}" || true)
		if [ -n "${CTR_PID[$b]}" ] && [ "$(cat "/proc/${CTR_PID[$b]}/comm" 2>/dev/null)" = postgres ] &&
			cq "$b" "select 1" >/dev/null 2>&1; then
			log "container on $b: postgres is pid 1 inside, ${CTR_PID[$b]} here"
			return 0
		fi
		sleep 0.1
	done
	fail "the container on $b did not serve within 60 s: $(tail -n 5 "$T/log/ctr-$b.log")"
}
# ctr_stop BRANCH: a fast shutdown (docker stop sends SIGTERM; SIGINT is
# Postgres' fast mode), then the namespace is gone
ctr_stop() {
	local b=$1
	kill -INT "${CTR_PID[$b]}"
	_it_wait_gone "${CTR_UNSHARE[$b]}" 60 || fail "the container on $b did not stop"
	unset "CTR_UNSHARE[$b]" "CTR_PID[$b]"
	log "container on $b stopped"
}
redo_root() { "$PGBIN/pg_controldata" "$1" | sed -n "s/^Latest checkpoint's REDO location: *//p"; }

bfs_mount
tmo 60 mkdir "$MNT/main"
ctr_start main
[ "$(head -n 1 "$MNT/main/postmaster.pid")" = 1 ] ||
	fail "main's postmaster.pid names pid $(head -n 1 "$MNT/main/postmaster.pid"), expected the container's pid 1"
[ "$(stat -c %u "$MNT/main/PG_VERSION")" = "$CUID" ] || fail "initdb in the container did not write as uid $CUID"
cq main "create table t(id int primary key, note text)"
cq main "insert into t select i, 'load' from generate_series(1, 50000) i"

expect_op EBUSY rmdir "$MNT/main"
grep -q "cannot delete branch 'main': a postgres process (pid ${CTR_PID[main]}) is running in branch 'main'" "$T"/log/branchd-*.log ||
	fail "branchd did not name the container's server as what keeps main busy"
expect_op EBUSY rename "$MNT/main" "$MNT/main-moved"

log "branch the running container's cluster"
cq main "insert into t values (0, 'before')"
before=$(cq main "select pg_current_wal_insert_lsn()")
t0=$(date +%s%N)
tmo 60 mkdir "$MNT/pr-1"
log "mkdir pr-1 took $((($(date +%s%N) - t0) / 1000000)) ms"
cq main "insert into t values (-1, 'after')"
grep -q "pg_checkpoint: checkpointed the server on 'main' (pid ${CTR_PID[main]}, in another mount namespace) before mkdir of branch 'pr-1'" "$T"/log/branchd-*.log ||
	fail "branchd did not checkpoint the container's server: $(grep pg_checkpoint "$T"/log/branchd-*.log | tail -n 2)"
redo=$(redo_root "$MNT/pr-1")
[ "$(lsn_cmp "$redo" "$before")" -ge 0 ] ||
	fail "pr-1 starts its redo at $redo, before main's insert position $before when mkdir was called"
log "pr-1's REDO $redo is at or past $before"
[ ! -e "$MNT/pr-1/postmaster.pid" ] || fail "pr-1 inherited main's postmaster.pid"

ctr_start pr-1
[ "$(cq pr-1 "select string_agg(note, ',' order by id) from t where id <= 0")" = before ] ||
	fail "pr-1 holds $(cq pr-1 "select string_agg(note, ',' order by id) from t where id <= 0"), expected only the row committed before the mkdir"
[ "$(cq pr-1 "select count(*) from t")" = 50001 ] || fail "pr-1 holds $(cq pr-1 "select count(*) from t") rows, expected 50001"
cq pr-1 "insert into t values (-2, 'pr-1 only')"
cq main "insert into t values (-3, 'main only')"
[ "$(cq main "select string_agg(note, ',' order by id) from t where id <= 0")" = "main only,after,before" ] ||
	fail "main sees $(cq main "select string_agg(note, ',' order by id) from t where id <= 0")"
[ "$(cq pr-1 "select string_agg(note, ',' order by id) from t where id <= 0")" = "pr-1 only,before" ] ||
	fail "pr-1 sees $(cq pr-1 "select string_agg(note, ',' order by id) from t where id <= 0")"
for b in main pr-1; do
	tmo 120 nsenter -t "${CTR_PID[$b]}" -m -- "$PGBIN/pg_amcheck" --install-missing --heapallindexed \
		-h /var/run/postgresql -p 5432 -U postgres -d postgres >"$T/amcheck-$b.out" 2>&1 ||
		fail "pg_amcheck in the container on $b: $(head -n 5 "$T/amcheck-$b.out")"
done
log "both containers run, each with its own rows; pg_amcheck clean in both"

# docker kill: the server dies with its namespace and leaves its
# postmaster.pid, naming pid 1 (here the host's init, alive): not busy
kill -KILL "${CTR_PID[pr-1]}"
_it_wait_gone "${CTR_UNSHARE[pr-1]}" 30 || fail "the container on pr-1 did not die"
unset "CTR_UNSHARE[pr-1]" "CTR_PID[pr-1]"
[ "$(head -n 1 "$MNT/pr-1/postmaster.pid")" = 1 ] || fail "the killed container left no postmaster.pid naming pid 1"
expect_op OK rmdir "$MNT/pr-1"
ctr_stop main
expect_op OK rmdir "$MNT/main"
bfs_umount
