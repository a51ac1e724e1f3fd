/* Dirty-word masking and hot-word splitting. Matching folds ASCII case;
 * other bytes must match exactly. A word list is small (hundreds), so a
 * scan per word is enough; Aho-Corasick would be the step up. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "node/node.h"

#define FILTER_WORD_MAX 64
#define FILTER_WORDS_MAX 10000

struct node_filter {
    char **words; /* lowercased */
    size_t *lens;
    size_t count;
};

static void lower_copy(char *dst, const char *src, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[len] = '\0';
}

/* Trims whitespace; returns the usable length of a list line (0 = skip). */
static size_t clean_line(char *line)
{
    size_t len = strcspn(line, "\r\n#");
    while (len > 0 && isspace((unsigned char)line[len - 1]))
        len--;
    size_t start = 0;
    while (start < len && isspace((unsigned char)line[start]))
        start++;
    memmove(line, line + start, len - start);
    line[len - start] = '\0';
    return len - start;
}

static void filter_add(node_filter_t *f, const char *word, size_t len)
{
    f->words = core_xrealloc(f->words, (f->count + 1) * sizeof *f->words);
    f->lens = core_xrealloc(f->lens, (f->count + 1) * sizeof *f->lens);
    f->words[f->count] = core_xmalloc(len + 1);
    lower_copy(f->words[f->count], word, len);
    f->lens[f->count] = len;
    f->count++;
}

node_filter_t *node_filter_load(const char *path, char *err, size_t errlen)
{
    node_filter_t *f = core_xcalloc(1, sizeof *f);
    if (!path || !*path)
        return f;
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "cannot open word list %s: %s", path, strerror(errno));
        node_filter_free(f);
        return NULL;
    }
    char line[256];
    while (fgets(line, sizeof line, fp) && f->count < FILTER_WORDS_MAX) {
        size_t len = clean_line(line);
        if (len > 0 && len <= FILTER_WORD_MAX)
            filter_add(f, line, len);
    }
    fclose(fp);
    return f;
}

void node_filter_free(node_filter_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->count; i++)
        free(f->words[i]);
    free(f->words);
    free(f->lens);
    free(f);
}

size_t node_filter_size(const node_filter_t *f)
{
    return f ? f->count : 0;
}

/* Marks [at, at+len) in mask for every occurrence of word in lower. */
static void mark_word(const char *lower, size_t tlen, const char *word, size_t wlen,
                      unsigned char *mask)
{
    if (wlen == 0 || wlen > tlen)
        return;
    const char *p = lower;
    const char *end = lower + tlen;
    while ((p = memmem(p, (size_t)(end - p), word, wlen)) != NULL) {
        memset(mask + (p - lower), 1, wlen);
        p += wlen;
    }
}

/* One '*' per UTF-8 character in masked runs; continuation bytes vanish. */
static char *apply_mask(const char *text, size_t tlen, const unsigned char *mask)
{
    char *out = core_xmalloc(tlen + 1);
    size_t o = 0;
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)text[i];
        if (!mask[i])
            out[o++] = (char)c;
        else if ((c & 0xC0) != 0x80)
            out[o++] = '*';
    }
    out[o] = '\0';
    return out;
}

char *node_filter_mask(const node_filter_t *f, const char *text)
{
    size_t tlen = strlen(text);
    if (!f || f->count == 0)
        return core_xstrdup(text);
    char *lower = core_xmalloc(tlen + 1);
    lower_copy(lower, text, tlen);
    unsigned char *mask = core_xcalloc(tlen + 1, 1);
    for (size_t i = 0; i < f->count; i++)
        mark_word(lower, tlen, f->words[i], f->lens[i], mask);
    char *out = apply_mask(text, tlen, mask);
    free(mask);
    free(lower);
    return out;
}

static int word_byte(unsigned char c)
{
    return isalnum(c) || c >= 0x80 || c == '_';
}

void node_filter_words(const char *text, void (*fn)(const char *word, size_t len, void *ud),
                       void *ud)
{
    char word[33];
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        while (*p && !word_byte(*p))
            p++;
        const unsigned char *start = p;
        while (*p && word_byte(*p))
            p++;
        size_t len = (size_t)(p - start);
        if (len >= 2 && len <= 32) {
            lower_copy(word, (const char *)start, len);
            fn(word, len, ud);
        }
    }
}
