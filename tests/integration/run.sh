#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh [NAME...] - run the branchfs integration tests (all t[0-9]*.sh, or
# those whose names contain one of the NAMEs), each under its own hard
# timeout (the "# timeout: N" line in the script, seconds).  Prints PASS or
# FAIL per test and, last, exactly "N passed, M failed"; exits nonzero if any
# test failed.  The whole run has a budget (IT_BUDGET, default 900 s).  Called by `make check-integration`.  Needs root, /dev/fuse,
# PostgreSQL 15 and a built bin/branchd; a missing one fails every test.
set -uo pipefail
cd "$(dirname "$0")/../.."

tests=()
for t in tests/integration/t[0-9]*.sh; do
	if [ $# -eq 0 ]; then
		tests+=("$t")
	else
		for pat in "$@"; do [[ "$(basename "$t")" == *"$pat"* ]] && tests+=("$t") && break; done
	fi
done
[ ${#tests[@]} -gt 0 ] || { echo "run.sh: no test matches: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

# total budget for the whole run (seconds): a hung test must not push
# `make check` past CI's limits; tests that would start after it is spent fail
budget=${IT_BUDGET:-900}
passed=0 failed=0 results=()
start_all=$(date +%s)
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	limit=$(sed -n 's/^# timeout: *\([0-9][0-9]*\).*/\1/p' "$t" | head -n 1)
	limit=${limit:-300}
	left=$((budget - ($(date +%s) - start_all)))
	if [ "$left" -le 10 ]; then
		failed=$((failed + 1))
		results+=("FAIL  $name (not run: the ${budget}s budget of run.sh is spent)")
		echo "FAIL  $name (not run: the ${budget}s budget of run.sh is spent)"
		continue
	fi
	[ "$limit" -le "$left" ] || limit=$left
	echo "=== $name (timeout ${limit}s)"
	t0=$(date +%s)
	# timeout puts the test in its own process group and signals all of it;
	# the test's EXIT trap then stops what it started (up to 90 s more).
	timeout -k 90 "$limit" bash "$t" </dev/null 2>&1 | sed -u 's/^/    /'
	rc=${PIPESTATUS[0]}
	dt=$(($(date +%s) - t0))
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		results+=("PASS  $name (${dt}s)")
		echo "PASS  $name (${dt}s)"
	else
		failed=$((failed + 1))
		why="exit $rc"
		[ "$rc" -eq 124 ] && why="TIMEOUT after ${limit}s"
		[ "$rc" -eq 137 ] && why="killed after timeout"
		results+=("FAIL  $name (${dt}s, $why)")
		echo "FAIL  $name (${dt}s, $why)"
	fi
done
echo "=== summary ($(($(date +%s) - start_all))s)"
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
