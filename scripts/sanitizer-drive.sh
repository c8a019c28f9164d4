#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# sanitizer-drive.sh asan|tsan [NAME...] - run integration tests (all, or
# those whose names contain a NAME, as tests/integration/run.sh picks them;
# the NAME soak runs the soak, tests/soak/soak.py, SOAK_SECONDS as there)
# against the sanitizer builds of branchd and branchctl (make san-bins:
# build/asan/bin/ with AddressSanitizer, LeakSanitizer and UBSan, or
# build/tsan/bin/ with ThreadSanitizer), every report to a file of its own.
# At the end it prints each report's summary line, counted, and exits
# nonzero if a test failed or there was a report.  Not part of `make check`
# (a TSan daemon is 5-15 times slower): `make sanitizer-drive SAN=tsan
# TESTS='t30 t63'` runs it.  RocksDB and libfuse are not instrumented:
# tests/sanitizers/*.supp list what is suppressed inside them, and why.
#
# With asan it first runs tests/sanitizers/refusals.sh (branchd refusing bad
# arguments leaks nothing).
#
# SAN_KEEP=1 keeps the report directory (printed) even when it is empty;
# otherwise it stays only when it holds a report.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

san=${1:-}
case "$san" in
asan | tsan) shift ;;
*)
	echo "usage: $0 asan|tsan [TEST...]" >&2
	exit 2
	;;
esac
for b in branchd branchctl; do
	[ -x "build/$san/bin/$b" ] || {
		echo "sanitizer-drive: build/$san/bin/$b not built: run 'make san-bins'" >&2
		exit 2
	}
done

# Daemons run as root, postgres, nobody or a test's own users: all of them
# must be able to write their report there.
logs=$(mktemp -d /var/tmp/bfs-san-$san.XXXXXX)
chmod 1777 "$logs"
export BRANCHD=$root/build/$san/bin/branchd
export BRANCHCTL=$root/build/$san/bin/branchctl
# The reports go to $logs/<san>.<pid>; UBSan's with ASan's.  The tests'
# LD_PRELOAD shims (build/powercut.so, build/logdelay.so, build/procfail.so) load before the
# ASan runtime, which it refuses by default: they only wrap libc calls.
export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1:verify_asan_link_order=0:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="log_path=$logs/tsan:suppressions=$root/tests/sanitizers/tsan.supp:second_deadlock_stack=1:history_size=4:print_suppressions=0"

names=() soak=0
for a in "$@"; do
	if [ "$a" = soak ]; then soak=1; else names+=("$a"); fi
done
t0=$(date +%s)
echo "sanitizer-drive: $san, reports in $logs"
rc=0
if [ "$san" = asan ]; then
	bash tests/sanitizers/refusals.sh "$BRANCHD" || rc=1
fi
if [ $# -eq 0 ] || [ ${#names[@]} -gt 0 ]; then
	bash tests/integration/run.sh "${names[@]}" || rc=1
fi
if [ "$soak" = 1 ]; then
	python3 tests/soak/soak.py || rc=1
fi
echo "=== sanitizer reports ($san, $(($(date +%s) - t0)) s)"
shopt -s nullglob
files=("$logs"/*)
if [ ${#files[@]} -eq 0 ]; then
	echo "none"
	[ "${SAN_KEEP:-0}" = 1 ] || rmdir "$logs"
else
	grep -h '^SUMMARY:' "${files[@]}" | sort | uniq -c | sort -rn
	echo "${#files[@]} report files in $logs"
	rc=1
fi
exit "$rc"
