#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install, with apt-get, whatever branchfs needs to build, test and demo that
# is not installed yet.  Idempotent: does nothing when everything is present.
set -euo pipefail

pkgs=(build-essential pkg-config libfuse3-dev fuse3 librocksdb-dev libzstd-dev libssl-dev
      liburing-dev libpq-dev libcmocka-dev postgresql postgresql-contrib util-linux util-linux-extra procps psmisc e2fsprogs
      xfsprogs btrfs-progs fuse-overlayfs groff-base python3 clang libclang-rt-14-dev
      rocksdb-tools gdb sudo)
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages (${missing[*]}); run as root to install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package creates and starts a default cluster; branchfs
# never uses it, and it must not hold port 5432 during tests.
if command -v pg_lsclusters >/dev/null; then
	pg_lsclusters -h 2>/dev/null | while read -r ver name port status _; do
		if [ "$status" = online ]; then pg_ctlcluster "$ver" "$name" stop || true; fi
	done
fi
