/* SPDX-License-Identifier: MIT */
/*
 * walscan.h - find and cut a hole in RocksDB's WAL left by a power cut
 * (private to store/; only kv.c uses it).
 *
 * Why: RocksDB's WAL is not synced on the fsync path (the journal is,
 * journal.h), so a power cut keeps some of each WAL file's unsynced
 * tail.  The kernel writes files back in no particular order: after a
 * memtable switch, the new WAL file's first records can reach the disk
 * while the older file's tail does not.  RocksDB 7.8's point-in-time
 * recovery reads the older file to its (clean) end and goes on with the
 * newer one: it checks that sequence numbers follow on only after a
 * damaged record, not after a file that simply ends early.  The database
 * then holds later batches without earlier ones, and its journal mark
 * "J", set by the last batch it holds, makes the journal's replay skip
 * the missing ones, fsynced or not: a non-prefix state with acknowledged
 * writes gone.  (A flush syncs every closed WAL file first, RocksDB does
 * that with more than one column family, so the window is from a switch
 * to the next flush; the stress test powercut_store met it once in about
 * 130 power cuts.)
 *
 * How: before RocksDB opens, after a run that did not close cleanly,
 * walscan_find_hole() reads the WAL files that RocksDB's recovery reads
 * (from its MANIFEST's min_log_number_to_keep on: older ones are obsolete,
 * their data flushed, and may be left with gaps between them by a crash
 * while RocksDB deleted them, newest first) in number order the way
 * RocksDB's reader does (32 KiB blocks, 7-byte record headers, CRC-32C,
 * fragments; a zero header skips the rest of its block; a bad record, or
 * one of a recyclable type that names another file (stale bytes), ends
 * the file) and follows the batches' sequence numbers: each batch must
 * start where the one before ended (its sequence plus its count).  The
 * first batch that starts later is the hole's end.  walscan_cut() then
 * keeps a copy of everything from that batch on (the tail of its file and
 * every later WAL file) in a directory of the database's, and cuts the
 * WAL there.  RocksDB recovers the prefix before the hole, its mark says
 * where that ends, and the journal replays every record after it that it
 * holds, which includes every synced one.  What is cut was never synced
 * in RocksDB's WAL (a sync there syncs every live WAL file, and a hole
 * needs an unsynced older one), so only writes never acknowledged, or
 * acknowledged through the journal, are in it.
 *
 * A batch that starts before the one before it ended (a step back) is
 * not what RocksDB 7.8 writes, with one exception (walscan.c): the first
 * batch of a file may re-use the sequence of the batch before it, the last
 * of the previous file, whose write failed after its record reached the
 * disk.  Any other step back is foreign or damaged content (a file with
 * another file's bytes), which RocksDB would replay, older batches over
 * newer ones, and which Debian's librocksdb, built with assertions, aborts
 * on: the scan stops there and says so, and the open refuses the store
 * (kv.c), naming the file and the sequences.  The scan reads on past a
 * hole to find one: the read-only open that learns which files RocksDB
 * reads (kv.c) would replay it too.
 *
 * Not handled: a WAL written with record types this reader does not know
 * (recycled files, WAL compression, neither set by kv.c): the scan says
 * so at the first such record whose CRC holds, and finds nothing, as
 * before it existed.
 */
#ifndef BRANCHFS_WALSCAN_H
#define BRANCHFS_WALSCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "kv.h"

/* Where a hole in the WAL ends: the first batch after it.  Or, back set,
 * a step back: the first batch that starts before the one before it
 * ended (seq_found < seq_expected). */
struct walscan_hole {
	uint64_t file;	       /* number of its WAL file (NNNNNN.log) */
	uint64_t offset;       /* offset of its first record header there */
	uint64_t seq_expected; /* the sequence the batch before it ended at */
	uint64_t seq_found;    /* the batch's own sequence */
	uint64_t bytes;	    /* WAL bytes from it to the end of the last file */
	bool back;	    /* a step back, not a hole: nothing to cut */
	uint64_t prev_file; /* back: the file of the batch before it */
};

/* Read the WAL files of RocksDB's directory dir numbered first_file or
 * more (RocksDB's min_log_number_to_keep).  1 and *hole set: a step back
 * if there is one (hole->back), else the first hole (bytes: from it to the
 * end, later files included); 0: neither (or no WAL file); -ENOTSUP: a
 * record type this reader does not know, logged; -EIO: a file could not
 * be read, logged; -ENOMEM.  log NULL: nothing logged. */
int walscan_find_hole(const char *dir, uint64_t first_file,
		      const struct store_log *log, struct walscan_hole *hole);

/* Cut dir's WAL at hole (from walscan_find_hole): the bytes of its file
 * from hole->offset on are copied to dir/BRANCHFS-WAL-HOLE/NNNNNN.log.tail,
 * every later WAL file is moved into that directory, then the file is
 * truncated at hole->offset; each step durable before the next, so that
 * a crash in between leaves a WAL in which a new scan finds the same hole.
 * On a full disk the copy is left out (a warning says so).
 * Logs what it did.  0, or -errno (logged): the WAL is then as a new scan
 * would find it. */
int walscan_cut(const char *dir, const struct walscan_hole *hole,
		const struct store_log *log);

#endif /* BRANCHFS_WALSCAN_H */
