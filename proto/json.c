/* proto/json.c: compact printing of cJSON trees, byte for byte what
 * cJSON_PrintUnformatted writes, without its cost on the hot path: cJSON
 * prints every number above 2^31 (each ts, msgid time, epoch) with
 * "%1.15g" and reads it back with sscanf to check it; here an integral
 * value below 10^15 is written with a digit loop, and anything else goes
 * through cJSON's own steps. */
#include "proto/proto.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FIRST_CAP 256
/* below this an integral double prints as its digits with %1.15g */
#define JSON_PLAIN_LIMIT 1e15

typedef struct jbuf {
    char *p;
    size_t len, cap;
} jbuf_t;

static void *oom_check(void *p)
{
    if (!p) {
        fputs("proto: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Room for n more bytes and the final NUL. */
static char *reserve(jbuf_t *b, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : JSON_FIRST_CAP;
        while (b->len + n + 1 > cap)
            cap *= 2;
        b->p = oom_check(realloc(b->p, cap));
        b->cap = cap;
    }
    return b->p + b->len;
}

static void put(jbuf_t *b, const char *s, size_t n)
{
    memcpy(reserve(b, n), s, n);
    b->len += n;
}

static void put_char(jbuf_t *b, char c)
{
    *reserve(b, 1) = c;
    b->len++;
}

/* cJSON's escapes: the two-character ones, \u00xx for other control bytes;
 * bytes from 0x7f up are copied as they are. */
static size_t escape_len(const unsigned char *s, size_t *n)
{
    size_t extra = 0, i = 0;
    for (; s[i]; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            extra++;
        else if (c < 32)
            extra += 5;
    }
    *n = i;
    return extra;
}

static char escape_letter(unsigned char c)
{
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '\b': return 'b';
    case '\f': return 'f';
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    default: return 0;
    }
}

static void put_string(jbuf_t *b, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    size_t n = 0;
    size_t extra = escape_len(s, &n);
    char *o = reserve(b, n + extra + 2);
    *o++ = '"';
    if (!extra) {
        memcpy(o, s, n);
        o += n;
    } else {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = s[i];
            char letter = escape_letter(c);
            if (c > 31 && c != '"' && c != '\\') {
                *o++ = (char)c;
            } else if (letter) {
                *o++ = '\\';
                *o++ = letter;
            } else {
                memcpy(o, "\\u00", 4);
                o[4] = hex[c >> 4];
                o[5] = hex[c & 15];
                o += 6;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
}

/* Digits of an integral |d| < 10^15, as %1.15g (and %d) writes them. */
static void put_integral(jbuf_t *b, double d)
{
    char tmp[24];
    char *end = tmp + sizeof tmp, *o = end;
    int neg = d < 0;
    uint64_t v = (uint64_t)(neg ? -d : d);
    do {
        *--o = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg)
        *--o = '-';
    put(b, o, (size_t)(end - o));
}

/* cJSON's test of a read-back value: equal within one DBL_EPSILON step. */
static int close_enough(double a, double b)
{
    double larger = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= larger * DBL_EPSILON;
}

/* cJSON's own way: 15 digits if they read back close enough, else 17; the
 * locale's decimal point becomes '.'. */
static void put_general(jbuf_t *b, double d)
{
    char num[32];
    double back = 0;
    int n = snprintf(num, sizeof num, "%1.15g", d);
    if (sscanf(num, "%lg", &back) != 1 || !close_enough(back, d))
        n = snprintf(num, sizeof num, "%1.17g", d);
    for (int i = 0; i < n; i++)
        if (num[i] == ',')
            num[i] = '.';
    put(b, num, (size_t)n);
}

static void put_number(jbuf_t *b, const cJSON *item)
{
    double d = item->valuedouble;
    if (isnan(d) || isinf(d))
        put(b, "null", 4);
    else if (fabs(d) < JSON_PLAIN_LIMIT && d == trunc(d) && !(d == 0 && signbit(d)))
        put_integral(b, d);
    else /* fractions, large values, -0 */
        put_general(b, d);
}

static int put_value(jbuf_t *b, const cJSON *item);

/* Children of an array or object, with keys for an object. */
static int put_children(jbuf_t *b, const cJSON *item, int keyed, char open, char close)
{
    put_char(b, open);
    for (const cJSON *c = item->child; c; c = c->next) {
        if (keyed) {
            put_string(b, c->string);
            put_char(b, ':');
        }
        if (put_value(b, c) != 0)
            return -1;
        if (c->next)
            put_char(b, ',');
    }
    put_char(b, close);
    return 0;
}

static int put_value(jbuf_t *b, const cJSON *item)
{
    switch (item->type & 0xFF) {
    case cJSON_NULL: put(b, "null", 4); return 0;
    case cJSON_False: put(b, "false", 5); return 0;
    case cJSON_True: put(b, "true", 4); return 0;
    case cJSON_Number: put_number(b, item); return 0;
    case cJSON_String: put_string(b, item->valuestring); return 0;
    case cJSON_Array: return put_children(b, item, 0, '[', ']');
    case cJSON_Object: return put_children(b, item, 1, '{', '}');
    case cJSON_Raw:
        if (!item->valuestring)
            return -1;
        put(b, item->valuestring, strlen(item->valuestring));
        return 0;
    default: return -1;
    }
}

char *proto_json_print(const cJSON *item, size_t *len)
{
    if (!item)
        return NULL;
    jbuf_t b = {0};
    reserve(&b, 0);
    if (put_value(&b, item) != 0) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = '\0';
    if (len)
        *len = b.len;
    return b.p;
}
