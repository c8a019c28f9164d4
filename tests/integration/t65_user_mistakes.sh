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
#  - a name no branch can have is named in the refusal when what is wrong
#    with it prints ("delete b1/", as tab completion types it; "rename b1
#    a/b": which of the two?); one with a control character is not echoed.
#  - branchd's options after the store and mount point, as mount(8) and
#    sshfs take them, are taken (they were refused:
#    "expected STORE_DIR and MOUNTPOINT", with both given).
#  - a mount point inside the store's directory is refused before anything
#    is opened or made, for a store that exists (it mounted: a cp -a or an
#    rm -rf of the store then went on into every branch) and for a new one
#    (it said "not a branchfs store (not empty, no BRANCHFS file)").
#  - branchd started as a daemon where nothing listens on /dev/log (a
#    container, a minimal system; made so here in a mount namespace with a
#    plain file over /dev/log) mounts and says in one line that its log is
#    lost and that -f logs to stderr (it said nothing, and every "the log
#    says which" of a refusal pointed nowhere); where a syslog daemon
#    listens (a small one in a mount namespace with its own /dev), it says
#    nothing and the log reaches it.
#  - branchd given an unknown option or an option without its value says
#    so in one line naming it, as for every other refusal (getopt's own
#    line was followed by a second, "branchd: see branchd --help").
#  - a value of a branchd option out of its range is refused with the
#    range; --help and the man pages name the same options (branchctl
#    --help lacked --help and --version and its short forms were in
#    neither), and branchctl takes -V after the command as --version.
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
expect_ctl 10 delete b1/
grep -q "invalid branch name 'b1/'" <<<"$CTL_ERR" || fail "delete b1/ does not name 'b1/': $CTL_ERR"
expect_ctl 10 rename b1 a/b
grep -q "invalid branch name 'a/b'" <<<"$CTL_ERR" || fail "rename b1 a/b does not name 'a/b': $CTL_ERR"
expect_ctl 10 create ..
grep -q "invalid branch name '..'" <<<"$CTL_ERR" || fail "create .. does not name '..': $CTL_ERR"
expect_ctl 10 create "$(printf 'x/\tx')"
! grep -q "$(printf '\t')" <<<"$CTL_ERR" || fail "a name with a control character was echoed: $(printf '%q' "$CTL_ERR")"
grep -q "invalid branch name: use" <<<"$CTL_ERR" || fail "a name with a control character: $(printf '%q' "$CTL_ERR")"
expect_ctl 10 create "$(head -c 300 /dev/zero | tr '\0' a)"
grep -q "invalid branch name of 300 bytes" <<<"$CTL_ERR" || fail "a 300-byte name: $CTL_ERR"
[ "$(branches)" = "$before" ] || fail "a refused name changed the branches: $before -> $(branches)"
# the same options with their values still work, before or after the names
expect_ctl 0 create zz --from b1
expect_ctl 0 create --from b1 zz2
ctl --json info zz && jassert "$CTL_OUT" 'd["branch"]["parent"] == "b1"'
ctl --json info zz2 && jassert "$CTL_OUT" 'd["branch"]["parent"] == "b1"'

bfs_umount

# ---- branchd: an unknown option, an option without its value ------------------------
# one line each, exit 2, naming the option, and no store made (getopt's own
# message and "branchd: see branchd --help" made two lines)
mkdir -p "$T/m1"
for args in "--bogus" "-x" "-fx" "--check=x" "-o"; do
	rc=0
	# shellcheck disable=SC2086 # the options are split on purpose
	err=$(tmo 30 "$BRANCHD" "$T/s1" "$T/m1" $args 2>&1 >/dev/null) || rc=$?
	[ $rc -eq 2 ] || fail "branchd STORE MNT $args: exit $rc, expected 2 (usage): $err"
	[ "$(wc -l <<<"$err")" -eq 1 ] || fail "branchd STORE MNT $args: expected one line, got: $err"
	case $args in
	-o) want="option '-o' needs a value" ;;
	-fx) want="unknown option '-x'" ;;
	--check=x) want="option '--check' takes no value" ;;
	*) want="unknown option '$args'" ;;
	esac
	[[ $err == "branchd: $want (see branchd --help)" ]] || fail "branchd STORE MNT $args: expected '$want', got: $err"
	[ ! -e "$T/s1" ] && ! is_mounted "$T/m1" || fail "branchd STORE MNT $args made a store or mounted"
done
log "branchd with a bad option: one line each, exit 2"
# a value out of range is refused with the range (a retention of more than
# 100 years said "(seconds, > 0)")
for args in "retention=99999999999:1 to 3153600000" "cache_mb=0:1 to 1048576" \
	"gc_interval=31536001:at most 31536000" "commit=86401:at most 86400"; do
	rc=0
	err=$(tmo 30 "$BRANCHD" -o "${args%%:*}" "$T/s1" "$T/m1" 2>&1 >/dev/null) || rc=$?
	[ $rc -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && [[ $err == *"${args#*:}"* ]] ||
		fail "branchd -o ${args%%:*}: exit $rc, expected 2 and one line with '${args#*:}': $err"
done
[ ! -e "$T/s1" ] || fail "branchd with a value out of range made a store"

# ---- --help and the man pages name the same options -------------------------------
# (branchctl --help lacked --help and --version, and its short forms were
# in neither; -V after the command was refused while --version worked)
python3 - "$IT_ROOT" <<'PY' || fail "--help and the man pages disagree (above)"
import re, subprocess, sys
root, bad = sys.argv[1], []
def text(*a):
    return subprocess.run(a, capture_output=True, text=True).stdout
def longs(t):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", t))
man = open(root + "/man/branchctl.1").read().replace("\\-", "-")
hlp = text(root + "/bin/branchctl", "--help")
nctl = len(longs(hlp))
if longs(man) != longs(hlp):
    bad.append("branchctl: only in branchctl(1) %s, only in --help %s"
               % (sorted(longs(man) - longs(hlp)), sorted(longs(hlp) - longs(man))))
for short in re.findall(r"(?<![\w-])-[a-zA-Z](?=[ ,)])", hlp):
    if not re.search(r"(?<![\w-])%s(?![\w-])" % short, man):
        bad.append("branchctl: %s is in --help, not in branchctl(1)" % short)
man = open(root + "/man/branchd.8").read().replace("\\-", "-")
hlp = text(root + "/bin/branchd", "--help")
for o in longs(hlp) - longs(man):
    bad.append("branchd: %s is in --help, not in branchd(8)" % o)
# the -o options: the .TP items of branchd(8) between -o and .RE, and the
# indented names of --help between -o and --check
sect = man[man.index(".BI -o \" options\""):]
sect = sect[:sect.index("\n.RE")]
mopts = set()
for item in re.findall(r"\.TP\n(\.B[IR]? [^\n]*)", sect):
    mopts |= {w.rstrip("=") for w in re.findall(r"[a-z_]+=?", item.split(" ", 1)[1])
              if w not in ("default", "name", "seconds", "path", "octal", "n")}
hsect = hlp[hlp.index("-o OPT"):hlp.index("--check")]
hopts = set(re.findall(r"^ {7}([a-z_]+)", hsect, re.M)) | set(re.findall(r", ([a-z_]+)=", hsect))
if mopts != hopts:
    bad.append("branchd -o: only in branchd(8) %s, only in --help %s"
               % (sorted(mopts - hopts), sorted(hopts - mopts)))
print("\n".join(bad) or "same options: branchctl %d long, branchd %d -o" % (nctl, len(hopts)))
sys.exit(1 if bad else 0)
PY
expect_ctl 0 list -V
[[ $CTL_OUT == "branchctl "* ]] || fail "branchctl list -V printed: $CTL_OUT"

# ---- branchd: options after the operands ----------------------------------------
mkdir -p "$T/m2"
IT_MOUNTS+=("$T/m2")
rc=0
tmo 60 "$BRANCHD" "$T/s2" "$T/m2" -o "pidfile=$T/m2.pid" -o root_mode=1777 >"$T/log/branchd-m2.log" 2>&1 || rc=$?
[ $rc -eq 0 ] || fail "branchd STORE MNT -o ... exited $rc: $(cat "$T/log/branchd-m2.log")"
pid=$(tr -dc 0-9 <"$T/m2.pid")
IT_DAEMONS+=("$pid")
IT_MNTPID["$T/m2"]=$pid
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
# shellcheck disable=SC2016 # the inner bash expands $1 and $2
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

# ---- branchd as a daemon without syslog ---------------------------------------------
touch "$T/notlog"
mkdir -p "$T/nolog.mnt"
rc=0
# shellcheck disable=SC2016 # the inner sh expands $1...
out=$(tmo 60 unshare -m --propagation private sh -c '
	if [ -e /dev/log ]; then mount --bind "$1" /dev/log || exit 9; fi
	"$2" -o "pidfile=$3.pid" "$3.store" "$3.mnt" || exit 8
	mkdir "$3.mnt/main" && fusermount3 -u "$3.mnt"; r=$?
	n=0
	while [ -e "$3.pid" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
	exit $r' sh "$T/notlog" "$BRANCHD" "$T/nolog" 2>&1) || rc=$?
pid=$(tr -dc 0-9 <"$T/nolog.pid" 2>/dev/null) || true
[ -z "$pid" ] || { IT_DAEMONS+=("$pid"); fail "branchd without syslog still runs 30 s after its unmount"; }
[ $rc -eq 0 ] || fail "branchd as a daemon without syslog: exit $rc: $out"
[ "$(wc -l <<<"$out")" -eq 1 ] && grep -q "nothing listens on /dev/log.*-f" <<<"$out" ||
	fail "branchd as a daemon without syslog did not say so in one line: '$out'"
log "branchd as a daemon without syslog: '$out'"

# ... and with a syslog daemon, in a namespace with a /dev of its own
touch "$T/fusedev" "$T/nulldev"
mkdir -p "$T/withlog.mnt"
cat >"$T/syslogd.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[1], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
EOF
rc=0
# shellcheck disable=SC2016 # the inner sh expands $1...
out=$(tmo 60 unshare -m --propagation private sh -c '
	T=$1 B=$2
	mount --bind /dev/fuse "$T/fusedev" && mount --bind /dev/null "$T/nulldev" &&
		mount -t tmpfs -o mode=0755 none /dev && touch /dev/fuse /dev/null &&
		mount --bind "$T/fusedev" /dev/fuse && mount --bind "$T/nulldev" /dev/null || exit 9
	python3 "$T/syslogd.py" "$T/syslog.txt" & L=$!
	n=0
	while [ ! -e "$T/syslog.txt.ready" ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
	"$B" -o "pidfile=$T/withlog.pid" "$T/withlog.store" "$T/withlog.mnt" || { kill $L; exit 8; }
	mkdir "$T/withlog.mnt/main"; umount "$T/withlog.mnt"; r=$?
	n=0
	while [ -e "$T/withlog.pid" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
	kill $L; exit $r' sh "$T" "$BRANCHD" 2>&1) || rc=$?
pid=$(tr -dc 0-9 <"$T/withlog.pid" 2>/dev/null) || true
[ -z "$pid" ] || { IT_DAEMONS+=("$pid"); fail "branchd with syslog still runs 30 s after its unmount"; }
[ $rc -eq 0 ] || fail "branchd as a daemon with syslog: exit $rc: $out"
[ -z "$out" ] || fail "branchd as a daemon with syslog printed: '$out'"
grep -q "branchd\[[0-9]*\]: created branch 'main'" "$T/syslog.txt" ||
	fail "the log did not reach syslog: $(head -c 600 "$T/syslog.txt")"
log "branchd as a daemon with syslog: silent, $(wc -l <"$T/syslog.txt") log lines reached it"
