/* proto/fields.c: typed reads of request fields with the contract's limits.
 *
 * A JSON null counts as an absent field (clients often send null for
 * "not given"). Lengths are in bytes; proto_req_parse has already checked
 * that the frame is UTF-8 without NULs, so strlen is the true length. */
#include "proto/proto.h"

#include <string.h>

/* Bounds of long as exact doubles: [-2^63, 2^63). */
#define LONG_LOW_D (-9223372036854775808.0)
#define LONG_HIGH_D 9223372036854775808.0

/* The field, or NULL when absent or null. */
static const cJSON *field(const cJSON *data, const char *key)
{
    if (!cJSON_IsObject(data))
        return NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(data, key);
    return cJSON_IsNull(it) ? NULL : it;
}

static int missing(const char *key, int required, proto_err_t *e)
{
    return required ? proto_fail(e, PROTO_BAD_REQUEST, "missing field '%s'", key) : 0;
}

/* Reads a string of any length: 1 = found, 0 = absent and optional, else the error code. */
static int read_string(const cJSON *data, const char *key, int required, const char **s,
                       size_t *len, proto_err_t *e)
{
    const cJSON *it = field(data, key);
    if (!it)
        return missing(key, required, e);
    if (!cJSON_IsString(it) || !it->valuestring)
        return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must be a string", key);
    *s = it->valuestring;
    *len = strlen(*s);
    return 1;
}

static int check_len(const char *key, size_t len, size_t min, size_t max, proto_err_t *e)
{
    if (len < min)
        return min == 1 ? proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must not be empty", key)
                        : proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must be at least %zu bytes",
                                     key, min);
    if (len > max)
        return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must be at most %zu bytes", key, max);
    return 0;
}

int proto_get_string(const cJSON *data, const char *key, int required, size_t min, size_t max,
                     const char **out, proto_err_t *e)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = read_string(data, key, required, &s, &len, e);
    if (rc != 1)
        return rc;
    if ((rc = check_len(key, len, min, max, e)) != 0)
        return rc;
    *out = s;
    return 0;
}

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

int proto_valid_name(const char *s, size_t len)
{
    if (!s || len < 1 || len > PROTO_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!name_char((unsigned char)s[i]))
            return 0;
    return 1;
}

int proto_get_name(const cJSON *data, const char *key, int required, const char **out,
                   proto_err_t *e)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = read_string(data, key, required, &s, &len, e);
    if (rc != 1)
        return rc;
    if (!proto_valid_name(s, len))
        return proto_fail(e, PROTO_BAD_REQUEST,
                          "field '%s' must be 1..%d characters of [A-Za-z0-9_.-]", key,
                          PROTO_NAME_MAX);
    *out = s;
    return 0;
}

int proto_get_password(const cJSON *data, const char *key, const char **out, proto_err_t *e)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = read_string(data, key, 1, &s, &len, e);
    if (rc != 1)
        return rc;
    if (len < PROTO_PASSWORD_MIN || len > PROTO_PASSWORD_MAX)
        return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must be %d..%d bytes", key,
                          PROTO_PASSWORD_MIN, PROTO_PASSWORD_MAX);
    *out = s;
    return 0;
}

int proto_get_text(const cJSON *data, const char *key, const char **out, proto_err_t *e)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = read_string(data, key, 1, &s, &len, e);
    if (rc != 1)
        return rc;
    if (len == 0)
        return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must not be empty", key);
    if (len > PROTO_TEXT_MAX)
        return proto_fail(e, PROTO_TOO_LONG, "field '%s' is too long (%zu bytes, max %d)", key,
                          len, PROTO_TEXT_MAX);
    *out = s;
    return 0;
}

static int format_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int proto_get_format(const cJSON *data, const char **out, proto_err_t *e)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = read_string(data, "format", 0, &s, &len, e);
    if (rc == 0) {
        *out = "text";
        return 0;
    }
    if (rc != 1)
        return rc;
    int ok = len >= 1 && len <= PROTO_FORMAT_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = format_char((unsigned char)s[i]);
    if (!ok)
        return proto_fail(e, PROTO_BAD_REQUEST,
                          "field 'format' must be 1..%d characters of [a-z0-9_-]",
                          PROTO_FORMAT_MAX);
    *out = s;
    return 0;
}

int proto_get_int(const cJSON *data, const char *key, int required, long min, long max,
                  long *out, proto_err_t *e)
{
    const cJSON *it = field(data, key);
    if (!it)
        return missing(key, required, e);
    if (!cJSON_IsNumber(it))
        return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must be an integer", key);
    double v = it->valuedouble;
    /* Range-check as a double first: converting an out-of-range double is UB. */
    if (!(v >= LONG_LOW_D && v < LONG_HIGH_D))
        return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must be between %ld and %ld", key,
                          min, max);
    long l = (long)v;
    if ((double)l != v)
        return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must be an integer", key);
    if (l < min || l > max)
        return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must be between %ld and %ld", key,
                          min, max);
    *out = l;
    return 0;
}

int proto_get_bool(const cJSON *data, const char *key, int required, int *out, proto_err_t *e)
{
    const cJSON *it = field(data, key);
    if (!it)
        return missing(key, required, e);
    if (!cJSON_IsBool(it))
        return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must be true or false", key);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return 0;
}

int proto_get_msgids(const cJSON *data, const char *key, size_t max, const cJSON **arr,
                     proto_err_t *e)
{
    const cJSON *it = field(data, key);
    if (!it)
        return missing(key, 1, e);
    if (!cJSON_IsArray(it) || !it->child)
        return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' must be a non-empty array", key);
    size_t n = 0;
    for (const cJSON *c = it->child; c; c = c->next, n++) {
        if (n == max)
            return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' has more than %zu entries", key,
                              max);
        if (!cJSON_IsString(c) || !c->valuestring ||
            !proto_msgid_valid(c->valuestring, strlen(c->valuestring)))
            return proto_fail(e, PROTO_BAD_REQUEST, "field '%s' entry %zu is not a valid msgid",
                              key, n);
    }
    *arr = it;
    return 0;
}
