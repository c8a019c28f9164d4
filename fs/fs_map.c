/* SPDX-License-Identifier: MIT */
/*
 * fs_map.c - a small chained hash map from u64 keys to (count, flags).
 *
 * Not thread-safe: the owner guards each map with its own mutex.  The
 * table doubles when it holds more entries than buckets and halves when
 * it holds fewer than a quarter (the node map follows the inodes the
 * kernel caches: a walk of a million files grows it to 8 MiB of buckets,
 * which stayed after the kernel forgot them).  Resizing can fail with
 * ENOMEM; the map then just stays denser or sparser.
 */
#include <stdlib.h>

#include "fs_int.h"

#define FS_MAP_MIN_BUCKETS 64u

static size_t fs_map_hash(uint64_t key, size_t nb)
{
	key ^= key >> 33;
	key *= UINT64_C(0xff51afd7ed558ccd);
	key ^= key >> 33;
	return (size_t)key & (nb - 1);
}

/* Rehash into nb buckets (a power of two); on -ENOMEM the map stays as it
 * is. */
static void fs_map_resize(struct fs_map *m, size_t nb)
{
	struct fs_map_ent **b = calloc(nb, sizeof(*b));
	size_t i;

	if (!b)
		return;
	for (i = 0; i < m->nb; i++) {
		struct fs_map_ent *e = m->b[i], *next;

		for (; e; e = next) {
			size_t h = fs_map_hash(e->key, nb);

			next = e->next;
			e->next = b[h];
			b[h] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

struct fs_map_ent *fs_map_find(struct fs_map *m, uint64_t key)
{
	struct fs_map_ent *e;

	if (!m->nb)
		return NULL;
	for (e = m->b[fs_map_hash(key, m->nb)]; e; e = e->next) {
		if (e->key == key)
			return e;
	}
	return NULL;
}

struct fs_map_ent *fs_map_get(struct fs_map *m, uint64_t key)
{
	struct fs_map_ent *e = fs_map_find(m, key);
	size_t h;

	if (e)
		return e;
	if (m->n >= m->nb)
		fs_map_resize(m, m->nb ? m->nb * 2 : FS_MAP_MIN_BUCKETS);
	if (!m->nb)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->key = key;
	h = fs_map_hash(key, m->nb);
	e->next = m->b[h];
	m->b[h] = e;
	m->n++;
	return e;
}

bool fs_map_del(struct fs_map *m, uint64_t key)
{
	struct fs_map_ent **pp;

	if (!m->nb)
		return false;
	for (pp = &m->b[fs_map_hash(key, m->nb)]; *pp; pp = &(*pp)->next) {
		if ((*pp)->key == key) {
			struct fs_map_ent *e = *pp;

			*pp = e->next;
			free(e);
			m->n--;
			break;
		}
	}
	/* Halve below a quarter full: between that and doubling when full,
	 * a map whose size goes back and forth rehashes at most once per
	 * nb / 4 changes. */
	if (m->nb > FS_MAP_MIN_BUCKETS && m->n < m->nb / 4) {
		size_t nb = m->nb;

		fs_map_resize(m, nb / 2);
		return m->nb < nb;
	}
	return false;
}

void fs_map_release(struct fs_map *m)
{
	size_t i;

	for (i = 0; i < m->nb; i++) {
		struct fs_map_ent *e = m->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->b);
	m->b = NULL;
	m->nb = m->n = 0;
}
