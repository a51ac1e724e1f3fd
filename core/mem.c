/* core/mem.c: allocation helpers that abort on out-of-memory. */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void mem_die(const char *what, size_t size)
{
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "fatal: %s(%zu): out of memory\n", what, size);

    if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
        abort();
    abort();
}

void *core_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (!p)
        mem_die("malloc", size);
    return p;
}

void *core_xcalloc(size_t n, size_t size)
{
    void *p;

    if (size && n > SIZE_MAX / size)
        mem_die("calloc overflow", n);
    p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        mem_die("calloc", n * size);
    return p;
}

void *core_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);

    if (!q)
        mem_die("realloc", size);
    return q;
}

char *core_xstrdup(const char *s)
{
    return core_xstrndup(s, strlen(s));
}

char *core_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p;

    if (len == SIZE_MAX)
        mem_die("strndup overflow", len);
    p = core_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
