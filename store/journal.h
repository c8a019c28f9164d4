/* SPDX-License-Identifier: MIT */
/*
 * journal.h - the fsync journal under the RocksDB backend (private to
 * store/; only kv.c uses it).
 *
 * Why: an fsync must make every write durable (DESIGN rule 3).  Syncing
 * RocksDB's WAL means fdatasync of a file that grows, and on ext4 that is a
 * journal commit of the file's size on every call: about twice the cost of
 * an fdatasync that overwrites allocated blocks, which is what Postgres
 * itself does with its preallocated WAL segments.  RocksDB 7.8 would reuse
 * WAL files only without point-in-time recovery.  So the backend keeps its
 * own journal: one zero-filled file of fixed size used as a ring, so that
 * fdatasync never changes the file's metadata.
 *
 * How it fits with RocksDB (kv.c does the orchestration):
 *  - Every batch is written to RocksDB as before (WAL on, never synced on
 *    the fsync path) and, in the same order, appended to the journal
 *    (memory first; file at sync time or when 1 MiB is pending).  The
 *    RocksDB batch also stores the record's end position ("lsn") under the
 *    meta key "J", in the same atomic batch.
 *  - journal_sync() writes what is pending and fdatasyncs the journal:
 *    every batch appended before it is then durable in the journal.
 *  - After a crash RocksDB recovers some prefix of the batches (it reports
 *    how far through "J"; a power cut can leave a hole in its WAL, which
 *    the open cuts first, walscan.h), and the journal holds a prefix too
 *    (up to its first torn or stale record).  Both are prefixes of the
 *    same order, so
 *    replaying the journal's records past "J" gives the longer prefix, which
 *    includes every synced batch.
 *  - A checkpoint (journal_checkpoint()) records that RocksDB's own WAL is
 *    durable up to an lsn (the caller synced it first), so the ring space
 *    before that lsn may be overwritten.
 *
 * File layout: two 512-byte header slots in the first 4 KiB (written in
 * turn; the valid one with the higher checkpoint number wins), then the
 * ring.  A record is a 40-byte header and the serialised ops; it may wrap
 * at the ring's end.  Header (little-endian): magic (4), payload length
 * (4), lsn (8), epoch (4), op count (4), CRC-32C of bytes 0-23 and the
 * payload (4), durable mark (8), CRC-32C of bytes 0-35 (4).  lsn is the
 * record's logical byte offset: its position in the ring is lsn modulo the
 * ring size, so a record left from an earlier lap has the wrong lsn.  The
 * epoch is raised at every open (journal_restart() writes the new epoch's
 * header before anything is appended; checkpoints keep it), so every record
 * of the chain carries the header's epoch, and a complete record left
 * behind by an earlier run after a torn tail is never taken as part of it,
 * also when it lies exactly at the start.
 *
 * The durable mark is how far the journal was synced when the record was
 * appended: every record ending at or before it was fdatasynced, so its
 * fsync may have been acknowledged.  It has its own CRC so that the main
 * one is unchanged: journals of builds before the mark (zeros in bytes
 * 28-39, "no mark") replay as they always did, and those builds read
 * records that carry one.
 *
 * Damage (journal_replay()): the walk from the checkpoint stops at the
 * first record that fails a check.  A torn tail, the unsynced end of the
 * last write, looks the same as a record damaged later (a bad sector, a
 * bit flip), and a crash in a multi-page write can keep later pages and
 * lose earlier ones, so a valid record after a bad one proves nothing by
 * itself.  Records locate themselves (magic, lsn == position, CRC), so the
 * replay finds the next valid one (R) past the damage and then:
 *  - if R starts at or before the database's mark "J", the database holds
 *    what was damaged: the walk steps over it and goes on at R.  A durable
 *    mark past the damage in R or a later record says it had been synced:
 *    no write is lost, but the disk lost data it had flushed, which is
 *    logged and counted (journal_damage_held(): branchd --check exits 3);
 *    without one it may be the torn end of records never synced that a
 *    checkpoint had made durable in RocksDB's WAL, which is no damage;
 *  - else, if R or a valid record after it has a durable mark past the
 *    first batch neither holds, that batch was synced and is lost: the
 *    replay fails (-EUCLEAN, one message naming the file and the lsns) and
 *    changes nothing, so that the store is not opened with acknowledged
 *    writes gone.  Moving the file aside opens the store as the database
 *    holds it;
 *  - else it is a torn tail: the chain ends at the damage, as always.
 * Not detected: damage to the records of the last sync before a crash, as
 * no record written after that sync carries its mark (and none if the
 * records after the damage are gone too).  Looking for R reads the rest
 * of the ring (16 MiB by default) once: a clean close seals the header
 * (journal_seal(), a flag in the slot that older builds ignore), and the
 * open after a sealed header, where no record can follow, skips it.
 *
 * Thread safety: journal_append*() are called under the caller's ordering
 * lock; journal_sync() and journal_checkpoint() may run concurrently with
 * appends (an internal mutex protects the pending buffer).
 */
#ifndef BRANCHFS_JOURNAL_H
#define BRANCHFS_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "kv.h"

struct journal;

/* Open the journal file at path, creating it zero-filled with a ring of
 * ring_bytes (rounded to 4 KiB) if it does not exist.  An existing file
 * keeps its own size.  Errors: -ENOSPC (cannot create it), -EUCLEAN (no
 * valid header), -EIO, -ENOMEM. */
int journal_open(const char *path, uint64_t ring_bytes,
		 const struct store_log *log, struct journal **out);

/* Open the journal at path for journal_replay() only, changing nothing
 * on disk (branchd --check): not created when missing (-ENOENT), no new
 * epoch.  Append, sync, checkpoint, seal and restart are not allowed on
 * it.  Errors otherwise as journal_open(). */
int journal_open_read(const char *path, const struct store_log *log,
		      struct journal **out);

/* Whether the header read at open was sealed (journal_seal()): the last
 * run closed cleanly, after syncing RocksDB's WAL. */
bool journal_sealed(const struct journal *j);

/* Replay: call apply, in order, for every valid record after the last
 * checkpoint whose end lsn is greater than applied_end (what the database
 * already holds); damage before applied_end is stepped over (see the top
 * of this file).  Sets *end to the end of the valid chain.  Errors: what
 * apply returns; -EUCLEAN the database lost synced data (applied_end is
 * before the checkpoint) or damaged records were synced, logged, nothing
 * applied; -EIO; -ENOMEM.  Reads the rest of the ring once (16 MiB by
 * default) when the chain ends before it, unless the header is sealed. */
int journal_replay(struct journal *j, uint64_t applied_end,
		   int (*apply)(void *ctx, const struct kv_batch *b,
				uint64_t end),
		   void *ctx, uint64_t *end);

/* Bytes of the first gap the last journal_replay() stepped over (the
 * database held it) that later records' durable marks say had been
 * synced; 0 if none.  Such damage lost no write, but shows a disk that
 * lost or changed data it had flushed. */
uint64_t journal_damage_held(const struct journal *j);

/* Start a new epoch at lsn (>= every lsn the database holds): the ring is
 * empty from there.  The caller made everything before lsn durable in the
 * database first.  Durable on return. */
int journal_restart(struct journal *j, uint64_t lsn);

/* The end lsn batch b would have if appended now, or 0 when b is larger
 * than the ring can hold (the caller then writes it durably without the
 * journal and calls journal_checkpoint(j, journal_lsn(j))). */
uint64_t journal_next_end(struct journal *j, const struct kv_batch *b);

/* Append b (whose end journal_next_end just gave).  -EAGAIN: the ring is
 * full, the caller must make the database durable and checkpoint first;
 * nothing was appended.  Other errors mean the journal is unusable
 * (journal_broken() is then true). */
int journal_append(struct journal *j, const struct kv_batch *b);

/* End lsn of the last appended record. */
uint64_t journal_lsn(struct journal *j);

/* Make every appended record durable (group commit). */
int journal_sync(struct journal *j);

/* The database is durable up to lsn (<= journal_lsn): space before it may
 * be reused.  Durable on return. */
int journal_checkpoint(struct journal *j, uint64_t lsn);

/* Checkpoint at journal_lsn(j) (the database is durable up to it: the
 * caller synced it) and seal: the header says that nothing was appended
 * after that, so the next open's replay skips its scan of the ring (see
 * "Damage" above).  For a clean close: nothing may be appended after it.
 * Durable on return. */
int journal_seal(struct journal *j);

/* True when more than half the ring holds records not yet checkpointed. */
bool journal_wants_checkpoint(struct journal *j);

/* Stop using the journal (the caller could not append a batch it applied):
 * from now on journal_broken() is true. */
void journal_retire(struct journal *j);

/* True after an I/O error: the caller stops using the journal. */
bool journal_broken(struct journal *j);

/* Close; pending records are dropped (call journal_sync first). */
void journal_close(struct journal *j);

/* CRC-32C (Castagnoli) of n bytes at buf, continuing crc (0 to start):
 * the journal's records' checksum, and that of RocksDB's WAL records
 * (walscan.c). */
uint32_t journal_crc32c(uint32_t crc, const void *buf, size_t n);

#endif /* BRANCHFS_JOURNAL_H */
