#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fail when a lower layer includes a higher layer's header, or when a
# third-party header escapes its confinement file (STYLE.md section 1).
set -u
rc=0
bad() { echo "check-layers: $*" >&2; rc=1; }
for f in store/*.[ch]; do
	[ -e "$f" ] || continue
	grep -nE '#include *["<](\.\./)?(fs|branchd)/|#include *"(fs|fs_int|branchd|bd_[a-z_]*)\.h"|fuse' "$f" | grep '#include' &&
		bad "$f includes a higher layer"
done
for f in fs/*.[ch]; do
	[ -e "$f" ] || continue
	grep -nE '#include *["<](\.\./)?branchd/|#include *"bd_' "$f" && bad "$f includes branchd/"
	grep -nE '#include *["<](\.\./)?store/[a-z_]*_int\.h|#include *"(kv|store_int)\.h"' "$f" && bad "$f includes store internals"
done
conf() { # header allowed-file
	local h=$1 allowed=$2
	grep -lE "#include *<$h" store/*.[ch] fs/*.[ch] branchd/*.[ch] 2>/dev/null | grep -vxE "$allowed" |
		while read -r f; do bad "$f includes <$h> (only $allowed may)"; echo x; done | grep -q x && rc=1
}
conf 'rocksdb/' 'store/kv.c'
conf 'zstd.h' 'store/compress.c'
conf 'openssl/' 'store/digest.c'
conf 'fuse' 'fs/.*'
conf 'liburing' 'fs/fs_uring.c'
conf 'libpq' 'branchd/pgckpt.c'
[ $rc -eq 0 ] && echo "check-layers: ok"
exit $rc
