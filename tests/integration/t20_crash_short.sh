#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# timeout: 240
# t20: the short crash-safety run inside make check: crash.sh with 6 rounds
# (kill -9 branchd; kill -9 Postgres; a power cut with branches created and
# deleted under load; both killed, with churn; branchd with churn and once
# more during WAL recovery; a power cut and another during WAL recovery),
# scale 1, 3-6 s of load per round.
# Every acknowledged COMMIT and fsync must survive, pg_amcheck must be clean,
# pgbench's sums must agree and the snapshot branch made just before each
# crash must start.  `make crashtest` runs the long version (50 rounds).
export CRASH_ROUNDS=${CRASH_ROUNDS:-6}
export CRASH_SCALE=${CRASH_SCALE:-1}
export CRASH_MIN=${CRASH_MIN:-3} CRASH_MAX=${CRASH_MAX:-6}
export CRASH_KINDS=${CRASH_KINDS:-"bd pg pwr+churn both+churn bd+churn+rec pwr+rec"}
source "$(dirname "$0")/crash.sh"
