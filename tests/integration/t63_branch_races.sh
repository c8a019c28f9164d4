#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 120
# t63: branch changes through the mount racing changes through the control
# socket (branch_races.py), each case in a tight loop for a bounded time.
#  1. mkdir(2) of a branch while `branchctl delete` of the same name runs
#     in a loop: every mkdir returns 0 or EEXIST.  A delete landing between
#     the create and mkdir's reply used to turn the reply into ENOENT
#     although the branch had been made (2 mkdirs in 3,400 in a plain loop).
#     branchd runs under build/logdelay.so (tests/shims/logdelay.c), which
#     holds up the thread writing mkdir's "created branch 'b'" log line,
#     written between the create and the reply, by 3 ms: a plain loop met
#     the race about once a minute (a 10 s run without it failed a
#     fresh-clone CI run).  With the delay, 34-97 deletes land there in
#     5 s (2 in one CI run), and the build without the fix fails 13 mkdirs
#     with ENOENT.  Rounds of 5 s run until the daemon's log shows that at
#     least 3 deletes landed there (at most 8 rounds).
#  2. Opens of files (in the branch root and in a directory below it)
#     after `branchctl reset` of their branch has replied, from 8 threads
#     at once, while another process holds their dentries from before the
#     reset (O_PATH descriptors) and 2 threads stat them: every open
#     succeeds and reads the parent's bytes.  The
#     held dentry used to stay valid for its entry timeout, and opens
#     through it failed with ESTALE or EIO (76-110 of 800); now the reset
#     drops the kernel's entries of every name in the branch's cached
#     directories.
#  3. mkdir(2) of new branches while `branchctl rename` moves the default
#     parent main to main2 and back: every mkdir makes its branch (the
#     default follows the rename).  A mkdir between the rename's store
#     write and the swap of the default's name used to fail with ENOENT
#     (366 of 568).
source "$(dirname "$0")/lib.sh"
it_init
ctl_require

RACES=$IT_ROOT/tests/integration/branch_races.py
LDLIB=$IT_ROOT/build/logdelay.so
[ -f "$LDLIB" ] || fail "$LDLIB is missing: make build/logdelay.so (make check-integration builds it)"
IT_BD_ENV=(LD_PRELOAD="$LDLIB" LOGDELAY_MATCH="created branch 'b' " LOGDELAY_US=3000)
bfs_mount
mkdir -p "$MNT/main"
# Rounds of 5 s until 3 deletes have landed in the window (at most 8):
# how often they do varies, from 2 to 97 in 5 s.
for ((r = 1; r <= 8; r++)); do
	out=$(tmo 60 python3 "$RACES" "$BRANCHCTL" "$MNT" mkdir-delete 5) ||
		fail "mkdir racing branchctl delete (round $r): $out"
	log "round $r: $out"
	n=$(cat "$T"/log/branchd-*.log | grep -c "was deleted before its mkdir replied" || true)
	[ "$n" -ge 3 ] && break
done
[ "$n" -ge 3 ] || fail "only $n deletes landed between a mkdir's create and its reply in $((r - 1)) rounds: the race was not run"
log "$n deletes landed between a mkdir's create and its reply"

# 2. Opens after `branchctl reset` while the old dentry is held.
mkdir -p "$MNT/p/d"
printf 'PARENT-CONTENT\n' >"$MNT/p/f"
printf 'PARENT-G\n' >"$MNT/p/d/g"
expect_ctl 0 create x --from p
out=$(tmo 60 python3 "$RACES" "$BRANCHCTL" "$MNT" reset-open 10) ||
	fail "opens after branchctl reset: $out"
log "$out"

# 3. mkdir while the default parent is renamed.
out=$(tmo 60 python3 "$RACES" "$BRANCHCTL" "$MNT" mkdir-rename-parent 10) ||
	fail "mkdir while the default parent is renamed: $out"
log "$out"
expect_ctl 0 default
[ "$CTL_OUT" = main ] || fail "the default parent is '$CTL_OUT' after the renames, not main"

# 4. `branchctl default NAME` racing `branchctl rename NAME X`: the
#    default must end as one of the two orders leaves it: NAME refused (no
#    such branch) and the default unchanged, or the default set and then
#    following the rename to X.  The default's check that NAME exists and
#    its setting were two steps, and a rename landing between them left
#    the default naming no branch (mkdir then fails with ENOENT).  branchd
#    runs under logdelay.so holding the thread that logs "sets the default
#    parent to 'da'" (between the check and the setting) for 50 ms.
bfs_umount
IT_BD_ENV=(LD_PRELOAD="$LDLIB" LOGDELAY_MATCH="sets the default parent to 'da'" LOGDELAY_US=50000)
bfs_mount
expect_ctl 0 create da --from main
out=$(tmo 60 python3 - "$BRANCHCTL" "$MNT" <<'EOF'
import subprocess, sys, threading, time
bctl, mnt = sys.argv[1], sys.argv[2]


def ctl(*a):
    return subprocess.run([bctl, "--mount", mnt] + list(a),
                          capture_output=True, text=True)


bad, seen = 0, {"refused": 0, "followed": 0}
for i in range(10):
    res = {}
    t = threading.Thread(target=lambda: res.update(d=ctl("default", "da")))
    t.start()
    time.sleep(0.02)  # default has checked 'da' and is held in its log line
    r = ctl("rename", "da", "db")
    t.join()
    cur = (ctl("default").stdout.split() or [""])[0]
    exists = ctl("info", cur).returncode == 0
    if r.returncode == 0 and res["d"].returncode != 0 and cur == "main":
        seen["refused"] += 1
    elif r.returncode == 0 and res["d"].returncode == 0 and cur == "db":
        seen["followed"] += 1
    else:
        bad += 1
        print("round %d: rename exited %d, default exited %d (%s), default "
              "is now '%s'%s" % (i, r.returncode, res["d"].returncode,
                                 res["d"].stderr.strip(), cur,
                                 "" if exists else " (no such branch)"))
    ctl("default", "main")
    ctl("rename", "db", "da")
print("default racing rename: %d refused, %d followed, %d bad" %
      (seen["refused"], seen["followed"], bad))
sys.exit(1 if bad else 0)
EOF
) || fail "branchctl default racing branchctl rename: $out"
log "$out"

bfs_umount
log "branch races: every call had an outcome some serial order gives"
