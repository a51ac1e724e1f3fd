/* core/strtab.c: a table of pointers to items keyed by a string inside
 * each item. Linear probing, at most 3/4 full; removal shifts entries
 * back, so there are no tombstones. 8 bytes a slot and nothing in the
 * item (a uthash handle is 56). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define STRTAB_MIN_CAP 16

static const char *key_of(const core_strtab_t *t, const void *item)
{
    return (const char *)item + t->key_off;
}

uint64_t core_strhash(const char *s)
{
    uint64_t h = 14695981039346656037u; /* the FNV-1a 64 offset basis */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211u;
    return h;
}

static size_t key_hash(const char *s)
{
    uint64_t h = core_strhash(s);
    return (size_t)(h ^ (h >> 29)); /* the low bits pick the slot: fold the high ones in */
}

/* The slot holding key, or the empty slot where it would go. */
static size_t slot_of(const core_strtab_t *t, const char *key)
{
    size_t mask = t->cap - 1, i = key_hash(key) & mask;
    while (t->slots[i] && strcmp(key_of(t, t->slots[i]), key) != 0)
        i = (i + 1) & mask;
    return i;
}

void core_strtab_init(core_strtab_t *t, size_t key_off)
{
    memset(t, 0, sizeof *t);
    t->key_off = key_off;
}

void core_strtab_free(core_strtab_t *t)
{
    free(t->slots);
    core_strtab_init(t, t->key_off);
}

void core_strtab_free_all(core_strtab_t *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i]);
    core_strtab_free(t);
}

void *core_strtab_find(const core_strtab_t *t, const char *key)
{
    return t->cap ? t->slots[slot_of(t, key)] : NULL;
}

static void resize(core_strtab_t *t, size_t cap)
{
    core_strtab_t to = {NULL, cap, t->count, t->key_off};
    to.slots = core_xcalloc(to.cap, sizeof *to.slots);
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i])
            to.slots[slot_of(&to, key_of(t, t->slots[i]))] = t->slots[i];
    free(t->slots);
    *t = to;
}

void core_strtab_add(core_strtab_t *t, void *item)
{
    if ((t->count + 1) * 4 > t->cap * 3)
        resize(t, t->cap ? t->cap * 2 : STRTAB_MIN_CAP);
    t->slots[slot_of(t, key_of(t, item))] = item;
    t->count++;
}

void core_strtab_remove(core_strtab_t *t, const void *item)
{
    size_t mask = t->cap - 1, hole = slot_of(t, key_of(t, item));
    t->slots[hole] = NULL;
    t->count--;
    for (size_t i = (hole + 1) & mask; t->slots[i]; i = (i + 1) & mask) {
        size_t home = key_hash(key_of(t, t->slots[i])) & mask;
        /* it may fill the hole when its home is not in (hole, i] */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            t->slots[hole] = t->slots[i];
            t->slots[i] = NULL;
            hole = i;
        }
    }
}

void core_strtab_fit(core_strtab_t *t)
{
    size_t cap = t->cap;
    if (t->count == 0) {
        core_strtab_free(t);
        return;
    }
    while (cap > STRTAB_MIN_CAP && t->count * 8 < cap)
        cap /= 2;
    if (cap != t->cap)
        resize(t, cap);
}
