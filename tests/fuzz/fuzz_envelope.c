/* Fuzz target: a client frame through proto_req_parse, every field getter
 * on its data, and the response echoing its id. Invariants are checked
 * with abort() so the replay run fails loudly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(int rc, const proto_err_t *e)
{
    CHECK(rc == 0 || rc == PROTO_BAD_REQUEST || rc == PROTO_TOO_LONG);
    if (rc != 0) {
        CHECK(e->code == rc);
        CHECK(memchr(e->msg, '\0', sizeof e->msg) != NULL);
        CHECK(e->msg[0] != '\0');
    }
}

static void strings(const cJSON *d)
{
    static const char *name_keys[] = {"to", "user", "with", "room", "from"};
    proto_err_t e;
    const char *s = NULL;
    int rc;
    for (size_t i = 0; i < sizeof name_keys / sizeof name_keys[0]; i++) {
        s = NULL;
        rc = proto_get_name(d, name_keys[i], (int)(i & 1), &s, &e);
        check_err(rc, &e);
        CHECK(rc != 0 || !s || proto_valid_name(s, strlen(s)));
    }
    s = NULL;
    rc = proto_get_password(d, "password", &s, &e);
    check_err(rc, &e);
    CHECK(rc != 0 || (strlen(s) >= PROTO_PASSWORD_MIN && strlen(s) <= PROTO_PASSWORD_MAX));
    s = NULL;
    rc = proto_get_text(d, "message", &s, &e);
    check_err(rc, &e);
    CHECK(rc != 0 || (strlen(s) >= 1 && strlen(s) <= PROTO_TEXT_MAX));
    CHECK(rc != PROTO_TOO_LONG || strlen(cJSON_GetObjectItemCaseSensitive(d, "message")->valuestring) > PROTO_TEXT_MAX);
    s = NULL;
    rc = proto_get_format(d, &s, &e);
    check_err(rc, &e);
    CHECK(rc != 0 || (s && strlen(s) >= 1 && strlen(s) <= PROTO_FORMAT_MAX));
    s = NULL;
    rc = proto_get_string(d, "nickname", 0, 1, PROTO_NICK_MAX, &s, &e);
    check_err(rc, &e);
    CHECK(rc != 0 || !s || (strlen(s) >= 1 && strlen(s) <= PROTO_NICK_MAX));
    rc = proto_get_string(d, "title", 1, 0, PROTO_TITLE_MAX, &s, &e);
    check_err(rc, &e);
}

static void numbers(const cJSON *d)
{
    proto_err_t e;
    long l = -1;
    int rc = proto_get_int(d, "limit", 0, 1, 100, &l, &e);
    check_err(rc, &e);
    CHECK(rc != 0 || l == -1 || (l >= 1 && l <= 100));
    rc = proto_get_int(d, "n", 1, -9223372036854775807L - 1, 9223372036854775807L, &l, &e);
    check_err(rc, &e);
    int b = -1;
    rc = proto_get_bool(d, "accept", 0, &b, &e);
    check_err(rc, &e);
    CHECK(rc != 0 || b == -1 || b == 0 || b == 1);
}

/* Valid msgids feed the clock; the next id sorts after every one of them. */
static void msgids(const cJSON *d)
{
    proto_err_t e;
    const cJSON *arr = NULL;
    int rc = proto_get_msgids(d, "msgids", 100, &arr, &e);
    check_err(rc, &e);
    if (rc != 0)
        return;
    proto_msgid_gen_t g;
    proto_msgid_init(&g, 1);
    char id[PROTO_MSGID_LEN + 1];
    for (const cJSON *c = arr->child; c; c = c->next) {
        CHECK(proto_msgid_valid(c->valuestring, strlen(c->valuestring)));
        proto_msgid_observe(&g, c->valuestring);
    }
    proto_msgid_next(&g, 1, id);
    CHECK(proto_msgid_valid(id, strlen(id)));
    for (const cJSON *c = arr->child; c; c = c->next)
        CHECK(strcmp(id, c->valuestring) > 0 || strncmp(c->valuestring, "9999999999999", 13) == 0);
}

/* The reply parses back as a frame with the same id. */
static void echo(const proto_req_t *req, int rc, const proto_err_t *e)
{
    size_t len = 0;
    char *out = rc == 0 ? proto_ok(req->id, req->action, cJSON_Duplicate(req->data, 1), &len)
                        : proto_error(req->id, "error", rc, e->msg, &len);
    CHECK(out && strlen(out) == len);
    proto_req_t back;
    proto_err_t e2;
    CHECK(proto_req_parse(out, len, &back, &e2) == 0);
    CHECK((req->id == NULL) == (back.id == NULL));
    CHECK(!req->id || cJSON_Compare(req->id, back.id, 1));
    proto_req_free(&back);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_req_t req;
    proto_err_t e;
    int rc = proto_req_parse((const char *)data, size, &req, &e);
    CHECK(rc == 0 || rc == PROTO_BAD_REQUEST);
    if (rc == 0) {
        CHECK(req.action && cJSON_IsObject(req.data));
        strings(req.data);
        numbers(req.data);
        msgids(req.data);
    } else {
        CHECK(e.code == rc && !req.action && !req.data);
    }
    echo(&req, rc, &e);
    proto_req_free(&req);
    return 0;
}
