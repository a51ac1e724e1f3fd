/* core/buf.c: growable byte buffers and shared refcounted bytes. */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void core_buf_init(core_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void core_buf_free(core_buf_t *b)
{
    if (!b)
        return;
    free(b->data);
    core_buf_init(b);
}

void core_buf_reset(core_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for extra more bytes plus the trailing NUL. */
void core_buf_reserve(core_buf_t *b, size_t extra)
{
    size_t need, cap;

    if (extra > SIZE_MAX - b->len - 1)
        abort(); /* cannot be represented: a caller bug, not OOM */
    need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = core_xrealloc(b->data, cap);
    b->cap = cap;
}

void core_buf_append(core_buf_t *b, const void *data, size_t len)
{
    core_buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void core_buf_append_str(core_buf_t *b, const char *s)
{
    core_buf_append(b, s, strlen(s));
}

void core_buf_printf(core_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    core_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void core_buf_consume(core_buf_t *b, size_t n)
{
    if (n >= b->len) {
        core_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

core_bytes_t *core_bytes_new(const void *data, size_t len)
{
    core_bytes_t *b;

    if (len > SIZE_MAX - sizeof(*b) - 1)
        abort();
    b = core_xmalloc(sizeof(*b) + len + 1);
    b->refs = 1;
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    b->data[len] = '\0';
    return b;
}

core_bytes_t *core_bytes_ref(core_bytes_t *b)
{
    b->refs++;
    return b;
}

void core_bytes_unref(core_bytes_t *b)
{
    if (b && --b->refs == 0)
        free(b);
}
