#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check.sh - the one test command: on a fresh Debian 12, as root, install
# what the build and the tests need, then run `make check` (build, layer
# check, unit tests under ASan/UBSan, stress tests under TSan, integration
# tests against a real mount and real Postgres).  Exits nonzero on any
# failure.  Usage: sudo bash scripts/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

t_start=$(date +%s)
stage() { printf '\n==== [%s +%ss] %s ====\n' "$(date -u +%H:%M:%S)" "$(($(date +%s) - t_start))" "$*"; }
die() { printf '\ncheck.sh: FAILED: %s\n' "$*" >&2; exit 1; }

stage "1/4 toolchain"
if ! command -v make >/dev/null || ! command -v cc >/dev/null; then
	[ "$(id -u)" -eq 0 ] || die "make/cc missing and not root: run as root (sudo bash scripts/check.sh)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	apt-get install -y -qq --no-install-recommends build-essential >/dev/null ||
		die "apt-get install build-essential failed"
fi
echo "make: $(make --version | head -n 1); cc: $(cc --version | head -n 1)"

stage "2/4 dependencies (scripts/install-deps.sh)"
bash scripts/install-deps.sh || die "installing dependencies failed"
echo "dependencies present"

stage "3/4 environment"
[ "$(id -u)" -eq 0 ] || die "the integration tests mount FUSE and create a user: run as root"
[ -c /dev/fuse ] || die "/dev/fuse missing: FUSE is required (in a container: --device /dev/fuse --cap-add SYS_ADMIN)"
[ -x /usr/lib/postgresql/15/bin/postgres ] || die "PostgreSQL 15 not found under /usr/lib/postgresql/15/bin"
echo "kernel $(uname -r), $(nproc) cpus, /dev/fuse ok, PostgreSQL $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}')"

stage "4/4 make check (build, layers, unit, stress, integration)"
make -j"$(nproc)" check || die "make check failed (see the output above)"

stage "all checks passed in $(($(date +%s) - t_start))s"
