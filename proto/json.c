/* proto/json.c: compact printing of cJSON trees, byte for byte what
 * cJSON_PrintUnformatted writes, without its cost on the hot path: cJSON
 * prints every number above 2^31 (each ts, msgid time, epoch) with
 * "%1.15g" and reads it back with sscanf to check it; here an integral
 * value below 10^15 is written with a digit loop, and anything else goes
 * through cJSON's own steps. */
#include "proto/proto.h"
#include "core/core.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* below this an integral double prints as its digits with %1.15g */
#define JSON_PLAIN_LIMIT 1e15
/* a first allocation that holds a typical message or event whole (the
 * buffer would otherwise start at 64 bytes and double) */
#define JSON_FIRST_ALLOC 384

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

/* cJSON's escapes: the two-character ones, \u00xx for other control bytes;
 * bytes from 0x7f up are copied as they are. Runs between escapes go in
 * with one append each. */
static void put_string(core_buf_t *b, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)(str ? str : ""), *run = s;
    core_buf_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s > 31 && *s != '"' && *s != '\\')
            continue;
        core_buf_append(b, run, (size_t)(s - run));
        char letter = escape_letter(*s);
        if (letter) {
            char esc[2] = {'\\', letter};
            core_buf_append(b, esc, sizeof esc);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[*s >> 4], hex[*s & 15]};
            core_buf_append(b, esc, sizeof esc);
        }
        run = s + 1;
    }
    core_buf_append(b, run, (size_t)(s - run));
    core_buf_append(b, "\"", 1);
}

/* Digits of an integral |d| < 10^15, as %1.15g (and %d) writes them. */
static void put_integral(core_buf_t *b, double d)
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
    core_buf_append(b, o, (size_t)(end - o));
}

/* cJSON's test of a read-back value: equal within one DBL_EPSILON step. */
static int close_enough(double a, double b)
{
    double larger = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= larger * DBL_EPSILON;
}

/* cJSON's own way: 15 digits if they read back close enough, else 17; the
 * locale's decimal point becomes '.'. */
static void put_general(core_buf_t *b, double d)
{
    char num[32];
    double back = 0;
    int n = snprintf(num, sizeof num, "%1.15g", d);
    if (sscanf(num, "%lg", &back) != 1 || !close_enough(back, d))
        n = snprintf(num, sizeof num, "%1.17g", d);
    for (int i = 0; i < n; i++)
        if (num[i] == ',')
            num[i] = '.';
    core_buf_append(b, num, (size_t)n);
}

static void put_number(core_buf_t *b, const cJSON *item)
{
    double d = item->valuedouble;
    if (isnan(d) || isinf(d))
        core_buf_append_str(b, "null");
    else if (fabs(d) < JSON_PLAIN_LIMIT && d == trunc(d) && !(d == 0 && signbit(d)))
        put_integral(b, d);
    else /* fractions, large values, -0 */
        put_general(b, d);
}

static int put_value(core_buf_t *b, const cJSON *item);

/* Children of an array or object, with keys for an object; children keyed
 * skip (NULL: none) are left out. */
static int put_children(core_buf_t *b, const cJSON *item, int keyed, char open, char close,
                        const char *skip)
{
    int first = 1;
    core_buf_append(b, &open, 1);
    for (const cJSON *c = item->child; c; c = c->next) {
        if (skip && c->string && strcmp(c->string, skip) == 0)
            continue;
        if (!first)
            core_buf_append(b, ",", 1);
        first = 0;
        if (keyed) {
            put_string(b, c->string);
            core_buf_append(b, ":", 1);
        }
        if (put_value(b, c) != 0)
            return -1;
    }
    core_buf_append(b, &close, 1);
    return 0;
}

static int put_value(core_buf_t *b, const cJSON *item)
{
    switch (item->type & 0xFF) {
    case cJSON_NULL: core_buf_append_str(b, "null"); return 0;
    case cJSON_False: core_buf_append_str(b, "false"); return 0;
    case cJSON_True: core_buf_append_str(b, "true"); return 0;
    case cJSON_Number: put_number(b, item); return 0;
    case cJSON_String: put_string(b, item->valuestring); return 0;
    case cJSON_Array: return put_children(b, item, 0, '[', ']', NULL);
    case cJSON_Object: return put_children(b, item, 1, '{', '}', NULL);
    case cJSON_Raw:
        if (!item->valuestring)
            return -1;
        core_buf_append_str(b, item->valuestring);
        return 0;
    default: return -1;
    }
}

char *proto_json_print(const cJSON *item, size_t *len)
{
    if (!item)
        return NULL;
    core_buf_t b;
    core_buf_init(&b);
    core_buf_reserve(&b, JSON_FIRST_ALLOC);
    if (put_value(&b, item) != 0) {
        core_buf_free(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.data; /* core_buf keeps it NUL-terminated */
}

char *proto_event_text(const char *name, const char *data_json, size_t *len)
{
    const char *data = data_json && *data_json ? data_json : "{}";
    size_t data_len = strlen(data);
    core_buf_t b;
    core_buf_init(&b);
    core_buf_reserve(&b, 32 + (name ? strlen(name) : 0) + data_len);
    core_buf_append_str(&b, "{\"event\":");
    put_string(&b, name);
    core_buf_append_str(&b, ",\"data\":");
    core_buf_append(&b, data, data_len);
    core_buf_append(&b, "}", 1);
    if (len)
        *len = b.len;
    return b.data;
}

char *proto_cm_print(const cJSON *m, size_t *len)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(m, "f");
    if (!cJSON_IsObject(m) || !cJSON_IsString(f) || !f->valuestring)
        return proto_json_print(m, len);
    size_t tail = strlen(f->valuestring);
    core_buf_t b;
    core_buf_init(&b);
    core_buf_reserve(&b, JSON_FIRST_ALLOC + tail);
    if (put_children(&b, m, 1, '{', '}', "f") != 0) { /* f goes as the tail */
        core_buf_free(&b);
        return NULL;
    }
    core_buf_append(&b, "", 1); /* the NUL between the JSON and the frame */
    core_buf_append(&b, f->valuestring, tail);
    if (len)
        *len = b.len;
    return b.data;
}
