#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 300
# t11: pg_dump and pg_restore on branches.  A branch of a cluster under
# pgbench load dumps (directory format, 2 jobs, large objects included)
# while its parent keeps running; the dump holds the rows committed before
# the mkdir and none after; restored into a new database of the branch it
# gives the same contents as the database it came from.  A branch of a
# stopped cluster dumps byte for byte like its parent (plain format, two
# databases), until one side writes.
source "$(dirname "$0")/lib.sh"
it_init

# pg_dump/pg_restore/createdb run as root against the servers' sockets
for b in pg_dump pg_restore createdb; do
	[ -x "$PGBIN/$b" ] || fail "$PGBIN/$b not found: PostgreSQL 15 client tools are required"
done
PGD=(-h "$SOCK" -U postgres)

bfs_mount
mk_branch main
pg_initdb "$MNT/main"
free_port P1
free_port P2
free_port P3
pg_start "$MNT/main" "$P1"
run_pgbench "$P1" -i -s 3 -q
# a schema with more than pgbench's plain tables: TOASTed values, a large
# object, a sequence, an index, a view, a materialized view, a function
q "$P1" "create table marker(id int primary key, note text not null)"
q "$P1" "create table docs(id serial primary key, body text not null, raw bytea not null)"
q "$P1" "insert into docs(body, raw) select string_agg(md5(i::text || ':' || j), '' order by j),
	decode(string_agg(md5(j::text || '/' || i), '' order by j), 'hex')
	from generate_series(1, 40) i, generate_series(1, 300) j group by i"
q "$P1" "create index docs_body_prefix on docs (left(body, 16))"
q "$P1" "create view rich as select aid, abalance from pgbench_accounts where abalance > 0"
q "$P1" "create materialized view per_branch as select bid, count(*) n from pgbench_accounts group by bid"
q "$P1" "create function twice(int) returns int language sql immutable as 'select \$1 * 2'"
q "$P1" "select lo_from_bytea(4242, decode(repeat('0123456789abcdef', 20000), 'hex'))" >/dev/null
q "$P1" "create database app"
tmo 60 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "${PGD[@]}" -p "$P1" -d app \
	-c "create table items(id int primary key, v text); insert into items select i, repeat('x', i % 97) from generate_series(1, 5000) i" ||
	fail "cannot fill database app"
q "$P1" "insert into marker values (1, 'before-branch')"

# what a database holds, as one md5: every pgbench row, the docs, the
# marker, the large object, the sequence, the view and the function
CONTENT="select md5(string_agg(x, '|' order by x)) from (
	select 'a' || aid || ':' || abalance as x from pgbench_accounts
	union all select 'h' || tid || ':' || bid || ':' || aid || ':' || delta || ':' || mtime from pgbench_history
	union all select 'b' || bid || ':' || bbalance from pgbench_branches
	union all select 't' || tid || ':' || tbalance from pgbench_tellers
	union all select 'd' || id || ':' || md5(body) || ':' || md5(raw) from docs
	union all select 'm' || id || ':' || note from marker
	union all select 'l' || md5(lo_get(4242))
	union all select 's' || last_value from docs_id_seq
	union all select 'v' || count(*) from rich
	union all select 'p' || bid || ':' || n from per_branch
	union all select 'f' || twice(21)) s"

log "starting background pgbench on main"
bg_pgbench "$P1" 2 20 4
mk_child pr-1
q "$P1" "insert into marker values (2, 'after-branch')"
pg_start "$MNT/pr-1" "$P2"
kill -0 "$BG" 2>/dev/null || log "note: background pgbench finished before pr-1 started"

log "pg_dump -Fd -j 2 of pr-1 while main runs pgbench"
tmo 200 "$PGBIN/pg_dump" "${PGD[@]}" -p "$P2" -d postgres -Fd -j 2 -f "$T/dump.d" 2>"$T/log/pg_dump.err" ||
	fail "pg_dump of pr-1 failed: $(tail -n 5 "$T/log/pg_dump.err")"
[ ! -s "$T/log/pg_dump.err" ] || fail "pg_dump of pr-1 printed: $(head -n 5 "$T/log/pg_dump.err")"
got=$(tmo 60 "$PGBIN/pg_restore" -f - --data-only -t marker "$T/dump.d" | grep -cE '^[12]	' || true)
[ "$got" = 1 ] || fail "the dump of pr-1 holds $got marker rows, expected 1 (the one committed before mkdir)"
tmo 60 "$PGBIN/pg_restore" -f - --data-only -t marker "$T/dump.d" | grep -q '^1	before-branch$' ||
	fail "the dump of pr-1 lacks the marker row committed before mkdir"

log "pg_restore -j 2 into a new database on pr-1"
tmo 60 "$PGBIN/createdb" "${PGD[@]}" -p "$P2" restored || fail "createdb restored on pr-1 failed"
tmo 200 "$PGBIN/pg_restore" "${PGD[@]}" -p "$P2" -d restored -j 2 --exit-on-error "$T/dump.d" \
	2>"$T/log/pg_restore.err" || fail "pg_restore into pr-1 failed: $(tail -n 5 "$T/log/pg_restore.err")"
src=$(q "$P2" "$CONTENT")
dst=$(tmo 120 "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 "${PGD[@]}" -p "$P2" -d restored -c "$CONTENT") ||
	fail "cannot read the restored database"
[ "$src" = "$dst" ] || fail "the database restored on pr-1 ($dst) differs from the one dumped ($src)"
log "restored database matches its source on pr-1 ($dst)"
[ "$(q "$P1" "select count(*) from pg_database where datname = 'restored'")" = 0 ] ||
	fail "the database restored on pr-1 shows up on main"

bg_pgbench_wait
amcheck "$P2"

# plain dumps of a stopped parent and of its branch are the same bytes
# (a fixed psql \restrict key: pg_dump 15.14+ picks a random one per dump)
dump_plain() { # PORT DB FILE
	tmo 200 "$PGBIN/pg_dump" "${PGD[@]}" -p "$1" -d "$2" --restrict-key=branchfs -f "$3" 2>"$T/log/pg_dump-plain.err" ||
		fail "pg_dump -d $2 on port $1 failed: $(tail -n 5 "$T/log/pg_dump-plain.err")"
	[ -s "$3" ] || fail "pg_dump -d $2 on port $1 wrote nothing"
}
pg_stop "$MNT/main"
mk_child pr-2
pg_start "$MNT/main" "$P1"
pg_start "$MNT/pr-2" "$P3"
for db in postgres app; do
	dump_plain "$P1" "$db" "$T/main-$db.sql"
	dump_plain "$P3" "$db" "$T/pr-2-$db.sql"
	cmp -s "$T/main-$db.sql" "$T/pr-2-$db.sql" ||
		fail "pg_dump of database $db differs between main and its branch pr-2: $(diff "$T/main-$db.sql" "$T/pr-2-$db.sql" | head -n 5 || true)"
	log "database $db: pr-2 dumps the same $(wc -c <"$T/main-$db.sql") bytes as main"
done
grep -q "before-branch" "$T/main-postgres.sql" && grep -q "after-branch" "$T/main-postgres.sql" ||
	fail "the plain dump of main lacks its marker rows"
# the comparison can fail: one write on the branch shows in its next dump
q "$P3" "update marker set note = 'pr-2 only' where id = 2"
dump_plain "$P3" postgres "$T/pr-2-after.sql"
dump_plain "$P1" postgres "$T/main-after.sql"
! cmp -s "$T/pr-2-after.sql" "$T/main-postgres.sql" || fail "a write on pr-2 did not change its dump"
cmp -s "$T/main-after.sql" "$T/main-postgres.sql" || fail "a write on pr-2 changed the dump of main"
log "a write on pr-2 changes its dump and not main's"

pg_stop "$MNT/pr-2"
pg_stop "$MNT/pr-1"
pg_stop "$MNT/main"
bfs_umount
