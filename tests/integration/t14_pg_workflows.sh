#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 180
# t14: Postgres workflows of CI scripts and platform engineers on branches.
# (1) Sockets in the data directory (pg_ctl -o "-k $PGDATA -c
# listen_addresses=''", every cluster on the default port; main's given as
# "-k .", which the pg_checkpoint policy must resolve against the data
# directory to checkpoint main before each branch): a branch made
# by mkdir, by branchctl create and by reset of the running main carries
# neither main's socket nor its socket lock file (.s.PGSQL.PORT.lock names
# main's live postmaster: a server on the branch with the same port
# refused to start), and starts on the same port beside main.
# (2) pg_rewind: a branch that followed main as a standby is promoted and
# written, then rewound onto main (wal_log_hints = on) and follows it again
# with main's data.  (3) pg_checksums --enable, --check and --disable
# offline on a branch, which then starts with them on and off; (4) with
# them on, CREATE DATABASE with both strategies, ALTER DATABASE SET
# TABLESPACE, VACUUM FULL, CLUSTER, REINDEX CONCURRENTLY, a sort spilled
# to temp files in a tablespace, lo_export and COPY to files in the branch
# keep every row, and the checksums still verify offline.
# pg_amcheck --heapallindexed is clean wherever a server writes.
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

bfs_mount
mk_branch main
pg_initdb "$MNT/main"
cat >>"$MNT/main/postgresql.conf" <<'EOF'
wal_log_hints = on
wal_keep_size = 256MB
EOF
echo "local replication all trust" >>"$MNT/main/pg_hba.conf"
free_port P

# as_pg CMD...: run CMD as postgres from the test's temp dir
# shellcheck disable=SC2086
as_pg() { (cd "$T" && tmo 200 $AS_PG "$@"); }

# pg_start_k PGDATA [DIR]: start a server with its socket in DIR (default
# PGDATA itself) and no TCP listener, on port $P like every other server of
# part (1)
pg_start_k() {
	local d=$1 k=${2:-$1} logf
	logf=$T/log/pg-$(basename "$d")-k.log
	IT_PGDIRS+=("$d")
	IT_PGRUN[$d]=$AS_PG
	as_pg "$PGBIN/pg_ctl" -D "$d" -l "$logf" -w -t 180 \
		-o "-p $P -k $k -c listen_addresses=''" start >/dev/null ||
		fail "pg_ctl start -D $d failed: $(tail -n 5 "$logf")"
	IT_PGPID[$d]=$(head -n 1 "$d/postmaster.pid")
	log "postgres on $(basename "$d") port $P, socket in its data directory"
}
# qk PGDATA SQL: one query through the socket in PGDATA
qk() {
	tmo 120 "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$1" -p "$P" -U postgres -d postgres -c "$2"
}
# no_sockets BRANCH: the branch carries no .s.PGSQL.* entry
no_sockets() {
	local f
	for f in "$MNT/$1"/.s.PGSQL.*; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			fail "branch $1 carries its parent's socket file ${f##*/}"
		fi
	done
}

log "(1) sockets in the data directory"
BLOG=$(ls "$T"/log/branchd-mnt-*.log)
# main's as "-k .", which Postgres takes relative to the data directory
pg_start_k "$MNT/main" .
if [ ! -S "$MNT/main/.s.PGSQL.$P" ] || [ ! -f "$MNT/main/.s.PGSQL.$P.lock" ]; then
	fail "main's socket or its lock file is missing"
fi
qk "$MNT/main" "create table t (id int primary key, note text)"
qk "$MNT/main" "insert into t select g, 'before' from generate_series(1, 1000) g"
mk_child pr-1
qk "$MNT/main" "insert into t values (1001, 'after')"
expect_ctl 0 create pr-2
no_sockets pr-1
no_sockets pr-2
# the pg_checkpoint policy reached main through that relative socket
# directory (before, libpq took "." for a host name)
for b in "mkdir of branch 'pr-1'" "creating branch 'pr-2'"; do
	grep -qF "checkpointed the server on 'main' (pid ${IT_PGPID[$MNT/main]}) before $b" "$BLOG" ||
		fail "main was not checkpointed before $b: $(grep pg_checkpoint "$BLOG" | tail -n 2)"
done
[ -S "$MNT/main/.s.PGSQL.$P" ] || fail "main lost its own socket"
pg_start_k "$MNT/pr-1"
pg_start_k "$MNT/pr-2"
[ "$(qk "$MNT/pr-1" "select count(*) || ':' || current_setting('data_directory') from t")" = "1000:$MNT/pr-1" ] ||
	fail "pr-1 through its own socket: $(qk "$MNT/pr-1" "select count(*) from t")"
[ "$(qk "$MNT/pr-2" "select count(*) from t")" = 1001 ] || fail "pr-2 lacks main's rows"
[ "$(qk "$MNT/main" "select current_setting('data_directory')")" = "$MNT/main" ] ||
	fail "main's socket reaches another server"
pg_stop "$MNT/pr-2"
qk "$MNT/main" "insert into t values (1002, 'before reset')"
expect_ctl 0 reset pr-2
no_sockets pr-2
pg_start_k "$MNT/pr-2"
[ "$(qk "$MNT/pr-2" "select count(*) from t")" = 1002 ] || fail "reset pr-2 lacks main's rows"
pg_stop "$MNT/pr-2"
pg_stop "$MNT/pr-1"
expect_op OK rmdir "$MNT/pr-1"
pg_stop "$MNT/main"
expect_op OK rmdir "$MNT/pr-2"

log "(2) pg_rewind of a promoted branch onto main"
free_port P1
free_port P2
pg_start "$MNT/main" "$P1"
run_pgbench "$P1" -i -s 2 -q
q "$P1" "create extension amcheck"
mk_child pr-3
touch "$MNT/pr-3/standby.signal"
chown postgres: "$MNT/pr-3/standby.signal"
echo "primary_conninfo = 'host=$SOCK port=$P1 user=postgres'" >>"$MNT/pr-3/postgresql.auto.conf"
pg_start "$MNT/pr-3" "$P2"
as_pg "$PGBIN/pg_ctl" -D "$MNT/pr-3" -w promote >/dev/null || fail "promote pr-3"
[ "$(q "$P2" "select timeline_id from pg_control_checkpoint()")" = 2 ] || fail "pr-3 is not on timeline 2"
q "$P2" "insert into t select g, 'pr-3' from generate_series(5001, 6000) g"
q "$P2" "update t set note = 'pr-3' where id <= 100"
run_pgbench "$P2" -n -t 200
q "$P1" "insert into t select g, 'main' from generate_series(2001, 2500) g"
run_pgbench "$P1" -n -t 200
pg_stop "$MNT/pr-3"
as_pg "$PGBIN/pg_rewind" --target-pgdata="$MNT/pr-3" -R \
	--source-server="host=$SOCK port=$P1 user=postgres dbname=postgres" >"$T/log/rewind.log" 2>&1 ||
	fail "pg_rewind failed: $(tail -n 5 "$T/log/rewind.log")"
grep -q 'servers diverged' "$T/log/rewind.log" || fail "pg_rewind did not rewind: $(cat "$T/log/rewind.log")"
pg_start "$MNT/pr-3" "$P2"
q "$P1" "insert into t values (3000, 'after rewind')"
SUM="select count(*) || ':' || sum(id) || ':' || count(*) filter (where note = 'pr-3') || ':' ||
	(select sum(abalance) from pgbench_accounts) from t"
want=$(q "$P1" "$SUM")
for ((n = 0; n < 100; n++)); do
	got=$(q "$P2" "$SUM")
	[ "$got" = "$want" ] && break
	sleep 0.2
done
[ "$got" = "$want" ] || fail "rewound pr-3 has $got, main $want"
[ "$(q "$P2" "select pg_is_in_recovery()")" = t ] || fail "rewound pr-3 is not a standby"
out=$(tmo 120 "$PGBIN/pg_amcheck" -h "$SOCK" -p "$P2" -U postgres -d postgres --heapallindexed 2>&1) ||
	fail "pg_amcheck on the rewound standby: $out"
log "pr-3 rewound onto main: $got, amcheck clean"
pg_stop "$MNT/pr-3"

log "(3) pg_checksums offline on a branch"
mk_child ck
# a crash image: pg_checksums wants a cleanly shut down cluster
pg_start "$MNT/ck" "$P2"
pg_stop "$MNT/ck"
as_pg "$PGBIN/pg_checksums" --enable -D "$MNT/ck" >"$T/log/ck.log" 2>&1 ||
	fail "pg_checksums --enable: $(tail -n 5 "$T/log/ck.log")"
as_pg "$PGBIN/pg_checksums" --check -D "$MNT/ck" >"$T/log/ck.log" 2>&1 ||
	fail "pg_checksums --check: $(tail -n 5 "$T/log/ck.log")"
grep -q 'Bad checksums: *0' "$T/log/ck.log" || fail "pg_checksums --check: $(cat "$T/log/ck.log")"
pg_start "$MNT/ck" "$P2"
[ "$(q "$P2" "show data_checksums")" = on ] || fail "checksums not on in ck"
[ "$(q "$P2" "select count(*) from t")" = "$(q "$P1" "select count(*) from t")" ] || fail "ck lacks main's rows"

log "(4) files Postgres writes on the branch with checksums on"
mkdir "$MNT/ck/ts"
chown postgres: "$MNT/ck/ts"
q "$P2" "create tablespace ts location '$MNT/ck/ts'" 2>/dev/null
ACC="select md5(string_agg(aid || ':' || abalance, ',' order by aid)) from pgbench_accounts"
want=$(q "$P2" "$ACC")
q "$P2" "create database d_fc template postgres strategy file_copy"
q "$P2" "create database d_wal template postgres strategy wal_log"
q "$P2" "alter database d_fc set tablespace ts"
for db in d_fc d_wal; do
	got=$(tmo 60 "$PGBIN/psql" -X -At -h "$SOCK" -p "$P2" -U postgres -d "$db" -c "$ACC")
	[ "$got" = "$want" ] || fail "database $db differs from its template"
done
for sql in "vacuum full pgbench_accounts" "cluster pgbench_accounts using pgbench_accounts_pkey" \
	"reindex table concurrently pgbench_accounts" "alter table pgbench_history set tablespace ts"; do
	q "$P2" "$sql"
done
[ "$(q "$P2" "$ACC")" = "$want" ] || fail "pgbench_accounts changed by vacuum full, cluster or reindex"
# a sort and a hash spilled to temp files in a tablespace of the branch
got=$(PGOPTIONS="-c work_mem=64kB -c temp_tablespaces=ts" tmo 60 "$PGBIN/psql" -X -At -h "$SOCK" -p "$P2" -U postgres \
	-c "select count(distinct md5(g::text)) || ':' || sum(x) from (select g, g * 2 as x from generate_series(1, 200000) g order by md5(g::text)) s")
[ "$got" = "200000:40000200000" ] || fail "spilled sort gave $got"
# large objects and COPY to and from files in the branch
head -c 3000000 /dev/urandom >"$T/lo.bin"
chmod 644 "$T/lo.bin"
oid=$(q "$P2" "select lo_import('$T/lo.bin')")
q "$P2" "select lo_export($oid, '$MNT/ck/lo.out')" >/dev/null
cmp "$T/lo.bin" "$MNT/ck/lo.out" || fail "lo_export into the branch differs from the file imported"
q "$P2" "copy pgbench_accounts to '$MNT/ck/acc.csv' csv"
q "$P2" "create table acc2 (like pgbench_accounts)"
q "$P2" "copy acc2 from '$MNT/ck/acc.csv' csv"
[ "$(q "$P2" "${ACC/pgbench_accounts/acc2}")" = "$want" ] || fail "COPY through a file in the branch changed rows"
amcheck "$P2"
pg_stop "$MNT/ck"
as_pg "$PGBIN/pg_checksums" --check -D "$MNT/ck" >"$T/log/ck.log" 2>&1 ||
	fail "pg_checksums --check after (4): $(tail -n 5 "$T/log/ck.log")"
as_pg "$PGBIN/pg_checksums" --disable -D "$MNT/ck" >"$T/log/ck.log" 2>&1 ||
	fail "pg_checksums --disable: $(tail -n 5 "$T/log/ck.log")"
pg_start "$MNT/ck" "$P2"
[ "$(q "$P2" "show data_checksums")" = off ] || fail "checksums still on in ck"
amcheck "$P2"
[ "$(q "$P1" "show data_checksums")" = off ] || fail "main's checksums changed"
amcheck "$P1"
