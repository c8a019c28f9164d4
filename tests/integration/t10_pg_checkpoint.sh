#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 240
# t10: the pg_checkpoint policy.  While pgbench runs on main, a branch made
# by mkdir (and by branchctl create, and a reset) starts at a checkpoint
# that began after the mkdir was called: its pg_control's REDO location is
# at or past main's WAL insert position read just before, also when the
# role the policy connects as has statement_timeout = 1ms.  With
# --no-checkpoint, with a server that refuses the connection (pg_hba
# reject), and with a server that does not answer (postmaster stopped by
# SIGSTOP, pg_checkpoint_timeout=3) the branch is still made, at an older
# REDO location, and the log says why.  A postmaster.pid naming a live
# server of another data directory does not get that server checkpointed
# (nor asked: no postgres process works in the branch).  A branch deleted
# while its reset waits for the checkpoint is no such branch to the reset.
# A stopped parent is not asked, nor anyone with -o nopg_checkpoint.
# The branches start and hold main's data.
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

# bad values of the option are refused before anything is mounted
mkdir -p "$T/nomnt"
out=$(tmo 20 "$BRANCHD" -f -o pg_checkpoint_timeout=0 "$T/nostore" "$T/nomnt" 2>&1) &&
	fail "branchd took pg_checkpoint_timeout=0"
[[ "$out" == *"bad pg_checkpoint_timeout '0'"* ]] || fail "pg_checkpoint_timeout=0 said: $out"
! is_mounted "$T/nomnt" || fail "branchd mounted with a bad option"

SCALE=4
bfs_mount "$STORE" "$MNT" pg_checkpoint_timeout=3
BLOG=$(ls "$T"/log/branchd-mnt-*.log)
mk_branch main
pg_initdb "$MNT/main"
# no timed checkpoint in the test's window: only ours can move REDO
cat >>"$MNT/main/postgresql.conf" <<'EOF'
checkpoint_timeout = 1h
max_wal_size = 4GB
EOF
free_port P1
free_port P2
pg_start "$MNT/main" "$P1"
run_pgbench "$P1" -i -s "$SCALE" -q
q "$P1" checkpoint >/dev/null

bg_pgbench "$P1" 3 25 3

insert_lsn() { q "$P1" "select pg_current_wal_insert_lsn()"; }
nlines() { grep -c "$1" "$BLOG" || true; }
# a checkpoint helper of this test's daemon (its argv names the socket
# directory and the data directory, both under $T) is still running; other
# daemons' helpers on the machine are not ours to count
HELPER_RE="--pg-checkpoint-helper .*$T/"
helper_left() { pgrep -f -- "$HELPER_RE" >/dev/null; }

# 1. mkdir: the branch starts at a checkpoint made after the call
lsn=$(insert_lsn)
mk_child pr-1
redo=$(redo_of "$MNT/pr-1")
[ "$(lsn_cmp "$redo" "$lsn")" -ge 0 ] ||
	fail "pr-1's REDO location $redo is before main's insert position $lsn read before the mkdir: no checkpoint came first"
grep -q "pg_checkpoint: checkpointed the server on 'main' (pid ${IT_PGPID[$MNT/main]}) before mkdir of branch 'pr-1'" "$BLOG" ||
	fail "no pg_checkpoint log line for pr-1: $(grep pg_checkpoint "$BLOG")"
log "mkdir pr-1: REDO $redo >= $lsn ($(grep -o "before mkdir of branch 'pr-1' in .*" "$BLOG"))"
[ ! -e "$MNT/pr-1/postmaster.pid" ] || fail "pr-1 carries postmaster.pid"

# 2. branchctl create: the same, and the reply says so
lsn=$(insert_lsn)
expect_ctl 0 --json create pr-2
jassert "$CTL_OUT" 'd["checkpoint"]["outcome"] == "done" and d["checkpoint"]["pid"] == '"${IT_PGPID[$MNT/main]}" "create pr-2's checkpoint"
redo=$(redo_of "$MNT/pr-2")
[ "$(lsn_cmp "$redo" "$lsn")" -ge 0 ] || fail "pr-2's REDO location $redo is before $lsn"
expect_ctl 0 create pr-2b
[[ "$CTL_OUT" == *"checkpointed the server on 'main' (pid ${IT_PGPID[$MNT/main]}) first, in "*" ms"* ]] ||
	fail "branchctl create does not report the checkpoint: $CTL_OUT"

# 3. --no-checkpoint: no checkpoint, the REDO location is older
lsn=$(insert_lsn)
expect_ctl 0 --json create pr-3 --no-checkpoint
jassert "$CTL_OUT" 'd["checkpoint"]["outcome"] == "off"' "create --no-checkpoint"
redo=$(redo_of "$MNT/pr-3")
[ "$(lsn_cmp "$redo" "$lsn")" -lt 0 ] || fail "pr-3 (--no-checkpoint) has REDO $redo, not before $lsn"
expect_ctl 2 list --no-checkpoint
# a past moment is never checkpointed
expect_ctl 0 --json create pr-3at --at "seq:$(ctl_seq)"
jassert "$CTL_OUT" 'd["checkpoint"]["outcome"] == "off"' "create --at"

# 4. reset: the parent is checkpointed first
lsn=$(insert_lsn)
expect_ctl 0 --json reset pr-3
jassert "$CTL_OUT" 'd["checkpoint"]["outcome"] == "done"' "reset pr-3"
redo=$(redo_of "$MNT/pr-3")
[ "$(lsn_cmp "$redo" "$lsn")" -ge 0 ] || fail "pr-3 after reset has REDO $redo, before $lsn"

# 4b. a statement_timeout shorter than a checkpoint under load (here for
#     the role the helper connects as; the running pgbench keeps its
#     sessions' setting) does not cancel the policy's CHECKPOINT
q "$P1" "alter role postgres set statement_timeout = '1ms'"
export PGOPTIONS="-c statement_timeout=0" # the test's own queries
lsn=$(insert_lsn)
expect_ctl 0 --json create pr-st
jassert "$CTL_OUT" 'd["checkpoint"]["outcome"] == "done"' "create with statement_timeout = 1ms"
redo=$(redo_of "$MNT/pr-st")
[ "$(lsn_cmp "$redo" "$lsn")" -ge 0 ] || fail "pr-st's REDO location $redo is before $lsn"
q "$P1" "alter role postgres reset statement_timeout"
unset PGOPTIONS
log "statement_timeout = 1ms for the role: the checkpoint was still done"

# 5. a server that refuses the connection: the branch is made anyway
cp "$MNT/main/pg_hba.conf" "$T/pg_hba.conf.orig"
printf 'local all all reject\nhost all all 127.0.0.1/32 trust\n' >"$MNT/main/pg_hba.conf"
tmo 30 $AS_PG "$PGBIN/pg_ctl" -D "$MNT/main" reload >/dev/null
qt() { tmo 60 "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$P1" -U postgres -d postgres -c "$1"; }
for ((i = 0; i < 50; i++)); do
	q "$P1" "select 1" >/dev/null 2>&1 || break
	sleep 0.1
done
! q "$P1" "select 1" >/dev/null 2>&1 || fail "pg_hba reject did not take effect"
lsn=$(qt "select pg_current_wal_insert_lsn()")
mk_child pr-4
redo=$(redo_of "$MNT/pr-4")
[ "$(lsn_cmp "$redo" "$lsn")" -lt 0 ] || fail "pr-4 has REDO $redo at or after $lsn, but its checkpoint was refused"
grep "pg_checkpoint: cannot checkpoint the server on 'main'" "$BLOG" | grep "mkdir of branch 'pr-4'" | grep -q "reject" ||
	fail "no warning naming the refusal for pr-4: $(grep pg_checkpoint "$BLOG" | tail -n 2)"
log "refused: $(grep -o "before mkdir of branch 'pr-4': .*" "$BLOG" | cut -c1-200)"
cp "$T/pg_hba.conf.orig" "$MNT/main/pg_hba.conf"
tmo 30 $AS_PG "$PGBIN/pg_ctl" -D "$MNT/main" reload >/dev/null
for ((i = 0; i < 50; i++)); do
	q "$P1" "select 1" >/dev/null 2>&1 && break
	sleep 0.1
done

# 6. a server that does not answer: the wait ends at the timeout
lsn=$(insert_lsn)
kill -STOP "${IT_PGPID[$MNT/main]}"
t0=$(date +%s%N)
tmo 60 mkdir "$MNT/pr-5" || { kill -CONT "${IT_PGPID[$MNT/main]}"; fail "mkdir pr-5 failed"; }
t1=$(date +%s%N)
kill -CONT "${IT_PGPID[$MNT/main]}"
ms=$(((t1 - t0) / 1000000))
[ "$ms" -ge 2900 ] || fail "mkdir pr-5 returned after $ms ms, before the 3 s timeout"
grep "mkdir of branch 'pr-5'" "$BLOG" | grep -q "no answer from the server within 3000 ms" ||
	fail "no timeout warning for pr-5: $(grep pg_checkpoint "$BLOG" | tail -n 2)"
redo=$(redo_of "$MNT/pr-5")
[ "$(lsn_cmp "$redo" "$lsn")" -lt 0 ] || fail "pr-5 has REDO $redo at or after $lsn after a timeout"
! helper_left || fail "a checkpoint helper is left running: $(pgrep -af -- "$HELPER_RE")"
log "timeout: mkdir pr-5 took $ms ms"
# a branch deleted while its reset waits for the parent's checkpoint: the
# reset finds no such branch (exit 4), not a busy one (it said exit 6,
# "cannot reset branch 'pr-5': no branch with id N")
kill -STOP "${IT_PGPID[$MNT/main]}"
(
	rc=0
	tmo 60 "$BRANCHCTL" --mount "$MNT" reset pr-5 >"$T/rreset.out" 2>&1 || rc=$?
	echo "$rc" >"$T/rreset.rc"
) &
RPID=$!
# the reset is past its first busy check once its checkpoint helper runs
for ((i = 0; i < 200; i++)); do
	helper_left && break
	sleep 0.05
done
helper_left || { kill -CONT "${IT_PGPID[$MNT/main]}"; fail "the reset of pr-5 started no checkpoint helper within 10 s"; }
rmrc=0
try_op rmdir "$MNT/pr-5" >"$T/rrm.out" || rmrc=$?
wait "$RPID" || true
rrc=$(cat "$T/rreset.rc")
kill -CONT "${IT_PGPID[$MNT/main]}"
[ "$rmrc" -eq 0 ] && [ "$(cat "$T/rrm.out")" = OK ] || fail "rmdir pr-5 during its reset's checkpoint gave $(cat "$T/rrm.out")"
[ "$rrc" -eq 4 ] && grep -q "cannot reset branch 'pr-5': it was renamed or deleted meanwhile" "$T/rreset.out" ||
	fail "reset of pr-5 deleted during its checkpoint exited $rrc: $(cat "$T/rreset.out")"
log "reset of a branch deleted while it waited for the checkpoint: exit 4, $(cat "$T/rreset.out")"

# 7. a postmaster.pid whose live server is not the branch's (as one written
# in a container can be, or one whose pid was reused): no postgres process
# works in the branch, so no server is asked (it connected, and was left
# alone only because the helper saw another data directory)
printf '%s\n%s\n%s\n%s\n%s\n%s\n' "${IT_PGPID[$MNT/main]}" /var/lib/postgresql/data 1764700000 \
	"$P1" "$SOCK" 127.0.0.1 >"$MNT/pr-3/postmaster.pid"
redo0=$(q "$P1" "select redo_lsn from pg_control_checkpoint()")
expect_ctl 0 --json create pr-8 --from pr-3
jassert "$CTL_OUT" 'd["checkpoint"]["outcome"] == "no_server" and "no server runs in it" in d["checkpoint"]["reason"]' "create from a branch with another server's postmaster.pid"
redo1=$(q "$P1" "select redo_lsn from pg_control_checkpoint()")
[ "$redo1" = "$redo0" ] || fail "main was checkpointed (REDO $redo0 -> $redo1) for a postmaster.pid that is not its own"
rm -f "$MNT/pr-3/postmaster.pid"

bg_pgbench_wait

# the checkpointed branch starts and holds main's data
pg_start "$MNT/pr-1" "$P2"
a=$(q "$P2" 'select count(*) from pgbench_accounts')
[ "$a" -eq $((SCALE * 100000)) ] || fail "pr-1 has $a accounts"
grep -q "redo starts at\|database system was not properly shut down" "$T/log/pg-pr-1-$P2.log" ||
	fail "pr-1 did not start with crash recovery: $(tail -n 5 "$T/log/pg-pr-1-$P2.log")"
amcheck "$P2"
pg_stop "$MNT/pr-1"

# 8. a stopped parent is not asked
pg_stop "$MNT/main"
before=$(nlines "pg_checkpoint:")
mk_child pr-6
[ "$(nlines "pg_checkpoint:")" = "$before" ] || fail "pg_checkpoint ran for a stopped parent: $(grep pg_checkpoint "$BLOG" | tail -n 1)"
expect_ctl 0 --json create pr-7
jassert "$CTL_OUT" 'd["checkpoint"]["outcome"] == "no_server"' "create of a stopped parent"

# 8b. a postmaster.pid whose socket directory is inside the branch root (a
# name not in the kernel's cache): the helper's connect() waits on the
# root's lock, which the kernel holds for the whole mkdir, and no SIGKILL
# ends that wait.  The mkdir must still be answered at the timeout, and the
# helper go once it is.  The pid named is a process called postgres
# working in main, as its postmaster would be (one that is not is no
# server of the branch, and is not asked).
cp /bin/sleep "$T/postgres"
(cd "$MNT/main" && exec "$T/postgres" 300) &
LIVE=$!
IT_BG+=("$LIVE")
printf '%s\n%s\n%s\n%s\n%s\n%s\n' "$LIVE" "$MNT/main" 1764700000 "$P1" "$MNT/nosuchdir" '' \
	>"$MNT/main/postmaster.pid"
t0=$(date +%s%N)
tmo 60 mkdir "$MNT/pr-11" || fail "mkdir pr-11 failed"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 10000 ] || fail "mkdir pr-11 took $ms ms with a 3 s timeout"
grep "mkdir of branch 'pr-11'" "$BLOG" | grep -q "no answer from the server within 3000 ms" ||
	fail "no timeout warning for pr-11: $(grep pg_checkpoint "$BLOG" | tail -n 2)"
for ((i = 0; i < 100; i++)); do
	helper_left || break
	sleep 0.1
done
! helper_left || fail "a checkpoint helper is left running: $(pgrep -af -- "$HELPER_RE")"
[ -d "$MNT/pr-11/base" ] || fail "pr-11 is not a copy of main"
rm -f "$MNT/main/postmaster.pid"
kill "$LIVE"
wait "$LIVE" 2>/dev/null || true
log "socket directory inside the mount: mkdir pr-11 took $ms ms"
bfs_umount

# 9. -o nopg_checkpoint: a running parent is not asked
bfs_mount "$STORE" "$MNT" nopg_checkpoint
BLOG=$(ls -t "$T"/log/branchd-mnt-*.log | head -n 1)
pg_start "$MNT/main" "$P1"
q "$P1" "create table t9 as select generate_series(1, 1000) g" >/dev/null
lsn=$(insert_lsn)
mk_child pr-9
redo=$(redo_of "$MNT/pr-9")
[ "$(lsn_cmp "$redo" "$lsn")" -lt 0 ] || fail "pr-9 has REDO $redo at or after $lsn with nopg_checkpoint"
[ "$(nlines "pg_checkpoint:")" = 0 ] || fail "nopg_checkpoint still ran: $(grep pg_checkpoint "$BLOG")"
expect_ctl 0 --json create pr-10
jassert "$CTL_OUT" 'd["checkpoint"]["outcome"] == "off"' "create with nopg_checkpoint"
pg_stop "$MNT/main"
bfs_umount
