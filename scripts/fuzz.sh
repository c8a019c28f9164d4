#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets under tests/fuzz with clang and run each for
# FUZZ_TIME seconds (default 20) from its seed corpus.  Crashes fail the run
# and leave the crashing input in build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZ_TIME:-20}
out=build/fuzz
mkdir -p "$out"
libs="$(pkg-config --libs rocksdb libzstd libcrypto) -lpthread -lm"
cflags="-std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. -g -O1 -DBRANCHFS_VERSION=\"fuzz\" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
store=$(ls store/*.c)
build() { # name sources...
	local n=$1; shift
	echo "fuzz: building $n"
	clang $cflags -o "$out/$n" "$@" $libs
}
build fuzz_json tests/fuzz/fuzz_json.c branchd/json.c
build fuzz_records tests/fuzz/fuzz_records.c $store
build fuzz_ctl tests/fuzz/fuzz_ctl.c branchd/ctl.c branchd/json.c branchd/ctlproto.c branchd/pgckpt.c $store $(pkg-config --cflags --libs libpq)
fs=$(ls fs/*.c)
bd=$(ls branchd/*.c | grep -v -e "/branchd\.c$" -e "/branchctl\.c$")
build fuzz_opts tests/fuzz/fuzz_opts.c $fs $bd $store $(pkg-config --cflags --libs fuse3 liburing libpq)
for f in "$out"/fuzz_*; do
	[ -x "$f" ] || continue
	n=$(basename "$f")
	corpus=tests/fuzz/corpus/${n#fuzz_}
	work=$(mktemp -d)
	[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
	echo "fuzz: running $n for ${t}s"
	set +e
	# -close_fd_mask=2: the option parser's one-line errors go to stderr.
	(cd "$out" && ./"$n" -max_total_time="$t" -max_len=4096 -close_fd_mask=2 "$work" >"$work.log" 2>&1)
	rc=$?
	set -e
	grep -E '^Done|ERROR|SUMMARY' "$work.log" || tail -5 "$work.log"
	rm -rf "$work" "$work.log"
	if [ "$rc" -ne 0 ]; then echo "fuzz: $n FAILED"; exit 1; fi
done
echo "fuzz: all targets ran clean"
