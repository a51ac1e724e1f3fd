/* proto/envelope.c: the client JSON envelope (PROTOCOL.md section 1).
 *
 * Requests are checked byte-wise before cJSON sees them (UTF-8, NUL), then
 * structurally (object, id, action, data, depth). Responses are built as
 * cJSON trees and printed compactly in the field order id, action, code,
 * data|error. */
#include "proto/proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest magnitude at which every integer is exactly a double: ids beyond
 * it could not be echoed unchanged. */
#define ID_INT_LIMIT 9007199254740992.0

/* Small allocations abort on OOM (STYLE.md 1.4): callers stay simple. */
static void *oom_check(void *p)
{
    if (!p) {
        fputs("proto: out of memory\n", stderr);
        abort();
    }
    return p;
}

int proto_fail(proto_err_t *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        e->msg[0] = '\0';
    return code;
}

/* ------------------------------------------------------------ byte checks */

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, max U+10FFFF), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* cJSON strings are NUL-terminated, so a NUL (raw or \u0000) would silently
 * cut a value short ("bob\u0000x" read as "bob"): refuse such frames. A
 * \u0000 escape is valid JSON, so it only sets *escaped (the caller still
 * reads the id to answer with it); when patch is given, each such escape
 * becomes \u0001 there, at the same offset. */
static int check_bytes(const char *buf, size_t len, proto_err_t *e, int *escaped, char *patch)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        if (s[i] == 0)
            return proto_fail(e, PROTO_BAD_REQUEST, "frame contains a NUL byte");
        if (s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0) {
                *escaped = 1;
                if (patch)
                    patch[i + 5] = '1';
                i += 6;
                continue;
            }
            /* Skip an escaped ASCII char, so an escaped backslash before "u0000" stays text. */
            i += (s[i + 1] != 0 && s[i + 1] < 0x80) ? 2 : 1;
            continue;
        }
        size_t n = utf8_seq_len(s + i, len - i);
        if (n == 0)
            return proto_fail(e, PROTO_BAD_REQUEST, "frame is not valid UTF-8");
        i += n;
    }
    return 0;
}

static int only_whitespace(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return 0;
    return 1;
}

/* Whether objects/arrays nest more than limit levels (item itself is one;
 * scalars add none). Stops as soon as the limit is passed. */
static int depth_exceeds(const cJSON *item, int limit)
{
    if (!cJSON_IsObject(item) && !cJSON_IsArray(item))
        return 0;
    if (limit <= 0)
        return 1;
    for (const cJSON *c = item->child; c; c = c->next)
        if (depth_exceeds(c, limit - 1))
            return 1;
    return 0;
}

/* ------------------------------------------------------------ request */

static int id_is_integer(const cJSON *id)
{
    if (!cJSON_IsNumber(id))
        return 0;
    double v = id->valuedouble;
    if (!(v >= -ID_INT_LIMIT && v <= ID_INT_LIMIT)) /* also rejects NaN */
        return 0;
    return (double)(long long)v == v;
}

static int read_id(proto_req_t *req, proto_err_t *e)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req->root, "id");
    if (!id)
        return 0;
    if (!cJSON_IsString(id) && !id_is_integer(id))
        return proto_fail(e, PROTO_BAD_REQUEST, "field 'id' must be an integer or a string");
    req->id = id;
    return 0;
}

static int read_action(proto_req_t *req, proto_err_t *e)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(req->root, "action");
    if (!a)
        return proto_fail(e, PROTO_BAD_REQUEST, "missing field 'action'");
    if (!cJSON_IsString(a))
        return proto_fail(e, PROTO_BAD_REQUEST, "field 'action' must be a string");
    req->action = a->valuestring;
    return 0;
}

static int read_data(proto_req_t *req, proto_err_t *e)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(req->root, "data");
    if (!d) {
        /* Owned by root, so proto_req_free releases it with the frame. */
        cJSON *empty = oom_check(cJSON_CreateObject());
        if (!cJSON_AddItemToObject(req->root, "data", empty))
            oom_check(NULL);
        d = empty;
    } else if (!cJSON_IsObject(d)) {
        return proto_fail(e, PROTO_BAD_REQUEST, "field 'data' must be an object");
    }
    req->data = d;
    return 0;
}

static int check_object(proto_req_t *req, const char *end, const char *buf_end, proto_err_t *e)
{
    int rc;
    if ((rc = read_id(req, e)) != 0)
        return rc;
    if (!only_whitespace(end, buf_end))
        return proto_fail(e, PROTO_BAD_REQUEST, "unexpected data after the JSON object");
    if (depth_exceeds(req->root, PROTO_MAX_DEPTH))
        return proto_fail(e, PROTO_BAD_REQUEST, "JSON nested deeper than %d levels",
                          PROTO_MAX_DEPTH);
    if ((rc = read_action(req, e)) != 0)
        return rc;
    return read_data(req, e);
}

/* A frame holding \u0000 is refused, but answered with its id when the id
 * itself is readable: parse a copy where every \u0000 is \u0001, and keep
 * the id only if it holds no \u0001 (it may have been a \u0000). */
static int refuse_nul_escape(const char *buf, size_t len, proto_req_t *req, proto_err_t *e)
{
    char *copy = oom_check(malloc(len));
    int escaped = 0;
    memcpy(copy, buf, len);
    check_bytes(buf, len, e, &escaped, copy);
    req->root = cJSON_ParseWithLength(copy, len);
    free(copy);
    if (cJSON_IsObject(req->root)) {
        proto_err_t ignored;
        if (read_id(req, &ignored) == 0 && cJSON_IsString(req->id) && strchr(req->id->valuestring, 1))
            req->id = NULL;
    }
    return proto_fail(e, PROTO_BAD_REQUEST, "\\u0000 is not allowed in strings");
}

int proto_req_parse(const char *buf, size_t len, proto_req_t *req, proto_err_t *e)
{
    memset(req, 0, sizeof *req);
    if (!buf || len == 0)
        return proto_fail(e, PROTO_BAD_REQUEST, "empty frame");
    int escaped = 0;
    int rc = check_bytes(buf, len, e, &escaped, NULL);
    if (rc != 0)
        return rc;
    if (escaped)
        return refuse_nul_escape(buf, len, req, e);
    const char *end = NULL;
    req->root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!req->root)
        return proto_fail(e, PROTO_BAD_REQUEST, "invalid JSON");
    if (!cJSON_IsObject(req->root))
        return proto_fail(e, PROTO_BAD_REQUEST, "frame must be a JSON object");
    rc = check_object(req, end, buf + len, e);
    if (rc != 0) {
        req->action = NULL; /* only id survives a failure, for the error reply */
        req->data = NULL;
    }
    return rc;
}

void proto_req_free(proto_req_t *req)
{
    if (!req)
        return;
    cJSON_Delete(req->root);
    memset(req, 0, sizeof *req);
}

/* ------------------------------------------------------------ responses */

/* Integer ids are written from an integer (never "4242.0" or "1e+15"). */
static cJSON *copy_id(const cJSON *id)
{
    if (id_is_integer(id)) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)id->valuedouble);
        return oom_check(cJSON_CreateRaw(num));
    }
    if (cJSON_IsString(id))
        return oom_check(cJSON_CreateString(id->valuestring));
    return oom_check(cJSON_Duplicate(id, 1));
}

static void add_item(cJSON *obj, const char *key, cJSON *item)
{
    if (!cJSON_AddItemToObject(obj, key, item))
        oom_check(NULL);
}

static cJSON *response_head(const cJSON *id, const char *action, int code)
{
    cJSON *o = oom_check(cJSON_CreateObject());
    if (id)
        add_item(o, "id", copy_id(id));
    if (action)
        add_item(o, "action", oom_check(cJSON_CreateString(action)));
    add_item(o, "code", oom_check(cJSON_CreateNumber(code)));
    return o;
}

/* Prints and frees o. */
static char *finish(cJSON *o, size_t *len)
{
    char *s = oom_check(proto_json_print(o, len));
    cJSON_Delete(o);
    return s;
}

static cJSON *data_or_empty(cJSON *data)
{
    return data ? data : oom_check(cJSON_CreateObject());
}

char *proto_ok(const cJSON *id, const char *action, cJSON *data, size_t *len)
{
    cJSON *o = response_head(id, action, PROTO_OK);
    add_item(o, "data", data_or_empty(data));
    return finish(o, len);
}

char *proto_error(const cJSON *id, const char *action, int code, const char *text, size_t *len)
{
    cJSON *o = response_head(id, action, code);
    add_item(o, "error", oom_check(cJSON_CreateString(text ? text : "")));
    return finish(o, len);
}

char *proto_error_data(const cJSON *id, const char *action, int code, const char *text, cJSON *data,
                       size_t *len)
{
    cJSON *o = response_head(id, action, code);
    add_item(o, "error", oom_check(cJSON_CreateString(text ? text : "")));
    add_item(o, "data", data_or_empty(data));
    return finish(o, len);
}

char *proto_event(const char *name, cJSON *data, size_t *len)
{
    cJSON *o = oom_check(cJSON_CreateObject());
    add_item(o, "event", oom_check(cJSON_CreateString(name ? name : "")));
    add_item(o, "data", data_or_empty(data));
    return finish(o, len);
}
