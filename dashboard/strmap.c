/* SPDX-License-Identifier: MIT */
#include "strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strmap_slot {
	char *key; /* NULL: empty */
	void *value;
	uint64_t hash;
};

struct strmap {
	struct strmap_slot *slots;
	size_t cap; /* power of two */
	size_t n;
};

#define STRMAP_MIN_CAP 64

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct strmap *strmap_new(void)
{
	struct strmap *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->cap = STRMAP_MIN_CAP;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	return m;
}

void strmap_clear(struct strmap *m, void (*free_value)(void *))
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key) {
			if (free_value)
				free_value(m->slots[i].value);
			free(m->slots[i].key);
			m->slots[i].key = NULL;
		}
	m->n = 0;
}

struct strmap *strmap_free(struct strmap *m, void (*free_value)(void *))
{
	if (!m)
		return NULL;
	strmap_clear(m, free_value);
	free(m->slots);
	free(m);
	return NULL;
}

static size_t find(const struct strmap *m, const char *key, uint64_t h)
{
	size_t i = (size_t)h & (m->cap - 1);

	while (m->slots[i].key && (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
		i = (i + 1) & (m->cap - 1);
	return i;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	size_t i = find(m, key, hash_str(key));

	return m->slots[i].key ? m->slots[i].value : NULL;
}

static int grow(struct strmap *m)
{
	struct strmap_slot *old = m->slots;
	size_t old_cap = m->cap;

	m->slots = calloc(old_cap * 2, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -ENOMEM;
	}
	m->cap = old_cap * 2;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].key)
			m->slots[find(m, old[i].key, old[i].hash)] = old[i];
	free(old);
	return 0;
}

int strmap_put(struct strmap *m, const char *key, void *value, void **ret_old)
{
	uint64_t h = hash_str(key);
	size_t i;

	if (ret_old)
		*ret_old = NULL;
	if ((m->n + 1) * 2 > m->cap && grow(m) < 0)
		return -ENOMEM;
	i = find(m, key, h);
	if (m->slots[i].key) {
		if (ret_old)
			*ret_old = m->slots[i].value;
		m->slots[i].value = value;
		return 0;
	}
	m->slots[i].key = strdup(key);
	if (!m->slots[i].key)
		return -ENOMEM;
	m->slots[i].value = value;
	m->slots[i].hash = h;
	m->n++;
	return 0;
}

void *strmap_remove(struct strmap *m, const char *key)
{
	size_t mask = m->cap - 1, i = find(m, key, hash_str(key)), j;
	void *value;

	if (!m->slots[i].key)
		return NULL;
	value = m->slots[i].value;
	free(m->slots[i].key);
	m->slots[i].key = NULL;
	m->n--;
	/* backward shift: move later entries of the probe chain into the hole */
	for (j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		size_t home = (size_t)m->slots[j].hash & mask;

		/* j's entry may move to i when i lies cyclically in [home, j) */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			m->slots[j].key = NULL;
			i = j;
		}
	}
	return value;
}

size_t strmap_size(const struct strmap *m)
{
	return m->n;
}

void strmap_foreach(const struct strmap *m, void (*fn)(const char *key, void *value, void *ctx),
                    void *ctx)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			fn(m->slots[i].key, m->slots[i].value, ctx);
}
