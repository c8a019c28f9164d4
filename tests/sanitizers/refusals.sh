#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# refusals.sh BRANCHD - the ASan build of branchd refuses bad arguments and
# unusable paths, and LeakSanitizer finds nothing left at those exits (main
# returned from each refusal without freeing the paths it had parsed or
# resolved: 10 leaks in these 6 runs before the fix).  Runs in a second;
# scripts/sanitizer-drive.sh asan runs it first.
set -uo pipefail
bd=${1:?usage: refusals.sh BRANCHD}
d=$(mktemp -d /var/tmp/bfs-san-refusals.XXXXXX)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/mnt"
fails=0
# args expected-exit-status
check() {
	local want=$1 rc
	shift
	ASAN_OPTIONS=detect_leaks=1:log_path=stderr "$bd" "$@" >/dev/null 2>"$d/err"
	rc=$?
	if [ "$rc" -ne "$want" ] || grep -q 'LeakSanitizer\|AddressSanitizer' "$d/err"; then
		echo "refusals: branchd $* exited $rc (want $want): $(grep -m 3 'SUMMARY\|leak\|branchd:' "$d/err")" >&2
		fails=$((fails + 1))
	fi
}
check 1 -o "pidfile=$d/p.pid,socket=$d/s.sock" "$d/store" "$d/nodir/mnt"
check 2 -o bogus "$d/a" "$d/b"
check 2 -o "pidfile=$d/p" --check
check 0 -o default_parent=x --version
check 2 -o "socket=$d/s.sock" "$d/store"
check 1 -o "pidfile=$d/p" "$d/store" "$d/mnt/x"
[ "$fails" -eq 0 ] && echo "refusals: 6 refusals, no sanitizer report"
[ "$fails" -eq 0 ]
