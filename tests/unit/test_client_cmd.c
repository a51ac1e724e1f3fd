/* The client's pure parts: command parser, frame formatter, gateway answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "client/client.h"
#include "core/core.h"

/* Parses line (current room "lobby") expecting a request; returns data as JSON text. */
static char *parse_send(const char *line, const char *action)
{
    client_cmd_t cmd;
    char err[256] = "";
    char *json;

    if (client_cmd_parse(line, "lobby", &cmd, err, sizeof err) != 0)
        fail_msg("'%s' failed: %s", line, err);
    assert_int_equal(cmd.kind, CLIENT_CMD_SEND);
    assert_string_equal(cmd.action, action);
    assert_non_null(cmd.data);
    json = cJSON_PrintUnformatted(cmd.data);
    client_cmd_free(&cmd);
    return json;
}

static void expect_send(const char *line, const char *action, const char *data)
{
    char *json = parse_send(line, action);

    assert_string_equal(json, data);
    free(json);
}

static void expect_error(const char *line, const char *needle)
{
    client_cmd_t cmd;
    char err[256] = "";

    assert_int_equal(client_cmd_parse(line, NULL, &cmd, err, sizeof err), -1);
    assert_null(cmd.data);
    if (!strstr(err, needle))
        fail_msg("'%s': error '%s' lacks '%s'", line, err, needle);
}

static void test_account(void **state)
{
    (void)state;
    expect_send("/register bob secret1", "register", "{\"user\":\"bob\",\"password\":\"secret1\"}");
    expect_send("/register bob secret1 Bob the Builder\n", "register",
                "{\"user\":\"bob\",\"password\":\"secret1\",\"nickname\":\"Bob the Builder\"}");
    expect_send("  /login alice pw123456", "login",
                "{\"user\":\"alice\",\"password\":\"pw123456\"}");
    expect_send("/logout", "logout", "{}");
    expect_send("/whois carol", "user_info", "{\"user\":\"carol\"}");
    expect_send("/ping", "ping", "{}");
}

static void test_direct(void **state)
{
    (void)state;
    expect_send("/msg bob hi  there ", "chat", "{\"to\":\"bob\",\"message\":\"hi  there \"}");
    expect_send("/ack 1 2", "ack", "{\"msgids\":[\"1\",\"2\"]}");
    expect_send("/history bob", "history", "{\"with\":\"bob\"}");
    expect_send("/history #lobby 5", "history", "{\"room\":\"lobby\",\"limit\":5}");
    expect_send("/history +g00ff 10 179542970319000000-d40b", "history",
                "{\"group\":\"g00ff\",\"limit\":10,\"before\":\"179542970319000000-d40b\"}");
}

static void test_friends(void **state)
{
    (void)state;
    expect_send("/friend bob", "friend_request", "{\"user\":\"bob\"}");
    expect_send("/friend bob let us talk", "friend_request",
                "{\"user\":\"bob\",\"note\":\"let us talk\"}");
    expect_send("/accept bob", "friend_reply", "{\"user\":\"bob\",\"accept\":true}");
    expect_send("/reject bob", "friend_reply", "{\"user\":\"bob\",\"accept\":false}");
    expect_send("/friends", "friends", "{}");
}

static void test_groups(void **state)
{
    (void)state;
    expect_send("/group create Book club", "group_create", "{\"name\":\"Book club\"}");
    expect_send("/group join g1", "group_join", "{\"group\":\"g1\"}");
    expect_send("/group leave g1", "group_leave", "{\"group\":\"g1\"}");
    expect_send("/group members g1", "group_members", "{\"group\":\"g1\"}");
    expect_send("/group say g1 hello all", "group_chat",
                "{\"group\":\"g1\",\"message\":\"hello all\"}");
    expect_send("/gsay g1 hi", "group_chat", "{\"group\":\"g1\",\"message\":\"hi\"}");
    expect_send("/group list", "groups", "{}");
    expect_send("/groups", "groups", "{}");
}

static void test_rooms(void **state)
{
    (void)state;
    expect_send("/room create den The den", "room_create", "{\"room\":\"den\",\"title\":\"The den\"}");
    expect_send("/room create den", "room_create", "{\"room\":\"den\"}");
    expect_send("/room join den", "room_join", "{\"room\":\"den\"}");
    expect_send("/room leave den", "room_leave", "{\"room\":\"den\"}");
    expect_send("/room members den", "room_members", "{\"room\":\"den\"}");
    expect_send("/room say den yo", "room_chat", "{\"room\":\"den\",\"message\":\"yo\"}");
    expect_send("/room list", "rooms", "{}");
    expect_send("/rooms", "rooms", "{}");
    expect_send("/join den", "room_join", "{\"room\":\"den\"}");
    expect_send("/leave", "room_leave", "{\"room\":\"lobby\"}");
    expect_send("/leave den", "room_leave", "{\"room\":\"den\"}");
    expect_send("/members", "room_members", "{\"room\":\"lobby\"}");
    expect_send("/say hello room", "room_chat", "{\"room\":\"lobby\",\"message\":\"hello room\"}");
    expect_send("plain words", "room_chat", "{\"room\":\"lobby\",\"message\":\"plain words\"}");
}

static void test_default_room(void **state)
{
    client_cmd_t cmd;
    char err[64];
    char *json;

    (void)state;
    assert_int_equal(client_cmd_parse("hi", NULL, &cmd, err, sizeof err), 0);
    json = cJSON_PrintUnformatted(cmd.data);
    assert_string_equal(json, "{\"room\":\"world\",\"message\":\"hi\"}");
    free(json);
    client_cmd_free(&cmd);
}

static void test_misc(void **state)
{
    client_cmd_t cmd;
    char err[64];

    (void)state;
    expect_send("/popular", "popular", "{}");
    expect_send("/popular 5", "popular", "{\"limit\":5}");
    expect_send("/raw {\"action\":\"rooms\"}", "rooms", "{}");
    expect_send("/raw {\"action\":\"chat\",\"data\":{\"to\":\"x\",\"message\":\"m\"}}", "chat",
                "{\"to\":\"x\",\"message\":\"m\"}");
    assert_int_equal(client_cmd_parse("/wait 1.5", NULL, &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.kind, CLIENT_CMD_WAIT);
    assert_true(cmd.seconds == 1.5);
    assert_int_equal(client_cmd_parse("/expect chat", NULL, &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.kind, CLIENT_CMD_EXPECT);
    assert_string_equal(cmd.event, "chat");
    assert_true(cmd.seconds == 10);
    assert_int_equal(client_cmd_parse("/expect room_chat 3", NULL, &cmd, err, sizeof err), 0);
    assert_true(cmd.seconds == 3);
    assert_int_equal(client_cmd_parse("/help", NULL, &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.kind, CLIENT_CMD_HELP);
    assert_int_equal(client_cmd_parse("/quit", NULL, &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.kind, CLIENT_CMD_QUIT);
    assert_int_equal(client_cmd_parse("/exit", NULL, &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.kind, CLIENT_CMD_QUIT);
    assert_int_equal(client_cmd_parse("   \n", NULL, &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.kind, CLIENT_CMD_EMPTY);
    assert_int_equal(client_cmd_parse("# a comment", NULL, &cmd, err, sizeof err), 0);
    assert_int_equal(cmd.kind, CLIENT_CMD_EMPTY);
}

static void test_bad_input(void **state)
{
    char longline[CLIENT_LINE_MAX + 10];

    (void)state;
    expect_error("/", "missing command");
    expect_error("/nope", "unknown command '/nope'");
    expect_error("/msg", "missing user");
    expect_error("/msg bob", "missing message text");
    expect_error("/msg bad/name hi", "bad user");
    expect_error("/register bob", "missing password");
    expect_error("/login bob pw extra", "unexpected 'extra'");
    expect_error("/whois", "missing user");
    expect_error("/logout now", "unexpected");
    expect_error("/ack", "missing msgid");
    expect_error("/history", "missing user");
    expect_error("/history # 5", "missing name");
    expect_error("/history bob 0", "limit must be");
    expect_error("/history bob 101", "limit must be");
    expect_error("/history bob 5x", "limit must be");
    expect_error("/history bob 5 id more", "unexpected");
    expect_error("/accept", "missing user");
    expect_error("/group", "missing subcommand");
    expect_error("/group dance", "unknown /group subcommand");
    expect_error("/group create", "missing group name");
    expect_error("/group say g1", "missing message text");
    expect_error("/room", "missing subcommand");
    expect_error("/room fly", "unknown /room subcommand");
    expect_error("/room create a:b", "bad room");
    expect_error("/join", "missing room");
    expect_error("/join a b", "unexpected");
    expect_error("/say", "missing message text");
    expect_error("/popular 0", "limit must be");
    expect_error("/popular 51", "limit must be");
    expect_error("/raw [1]", "want a JSON object");
    expect_error("/raw {\"action\":1}", "want a JSON object");
    expect_error("/raw {\"action\":\"x\",\"data\":3}", "want a JSON object");
    expect_error("/wait", "missing seconds");
    expect_error("/wait -1", "seconds must be");
    expect_error("/wait 5000", "seconds must be");
    expect_error("/expect", "missing event name");
    expect_error("/expect chat soon", "seconds must be");
    expect_error("/quit now", "unexpected");
    memset(longline, 'a', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    expect_error(longline, "line longer than");
}

static void test_help_lists_commands(void **state)
{
    const char *names[] = {"/register", "/login", "/logout", "/whois", "/ping", "/msg",
                           "/ack", "/history", "/friend", "/accept", "/reject", "/friends",
                           "/group", "/groups", "/gsay", "/room", "/rooms", "/join",
                           "/leave", "/members", "/say", "/popular", "/raw", "/wait",
                           "/expect", "/help", "/quit"};

    (void)state;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strstr(client_cmd_help(), names[i]))
            fail_msg("help lacks %s", names[i]);
}

/* ------------------------------------------------------------------ formatter */

static void expect_fmt(const char *frame_json, const char *needle)
{
    cJSON *frame = cJSON_Parse(frame_json);
    char *text;

    assert_non_null(frame);
    text = client_fmt_frame(frame);
    if (!strstr(text, needle))
        fail_msg("'%s' formatted as '%s', lacks '%s'", frame_json, text, needle);
    free(text);
    cJSON_Delete(frame);
}

static void test_fmt(void **state)
{
    (void)state;
    expect_fmt("{\"event\":\"chat\",\"data\":{\"from\":\"alice\",\"message\":\"hi\",\"ts\":1}}",
               "<alice> hi");
    expect_fmt("{\"event\":\"chat\",\"data\":{\"from\":\"a\",\"message\":\"m\",\"offline\":true}}",
               "(offline)");
    expect_fmt("{\"event\":\"room_chat\",\"data\":{\"room\":\"r\",\"from\":\"a\",\"message\":\"m\"}}",
               "[#r] <a> m");
    expect_fmt("{\"event\":\"group_chat\",\"data\":{\"group\":\"g\",\"from\":\"a\",\"message\":\"m\"}}",
               "[+g] <a> m");
    expect_fmt("{\"event\":\"receipt\",\"data\":{\"msgid\":\"7\",\"by\":\"bob\"}}", "bob received 7");
    expect_fmt("{\"event\":\"friend_request\",\"data\":{\"from\":\"bob\",\"note\":\"hey\"}}",
               "friend request from bob: hey");
    expect_fmt("{\"event\":\"friend_reply\",\"data\":{\"from\":\"bob\",\"accept\":true}}",
               "bob accepted");
    expect_fmt("{\"event\":\"presence\",\"data\":{\"user\":\"bob\",\"online\":false}}",
               "bob is offline");
    expect_fmt("{\"event\":\"system\",\"data\":{\"message\":\"maintenance\"}}", "*** maintenance");
    expect_fmt("{\"event\":\"kicked\",\"data\":{\"reason\":\"login elsewhere\"}}",
               "kicked: login elsewhere");
    expect_fmt("{\"event\":\"future\",\"data\":{\"x\":1}}", "event future {\"x\":1}");
    expect_fmt("{\"id\":1,\"action\":\"chat\",\"code\":404,\"error\":\"no bob\"}",
               "! chat failed (404): no bob");
    expect_fmt("{\"id\":1,\"action\":\"chat\",\"code\":0,\"data\":{\"msgid\":\"9\",\"online\":false}}",
               "sent 9 (offline");
    expect_fmt("{\"action\":\"history\",\"code\":0,\"data\":{\"messages\":[{\"from\":\"a\","
               "\"message\":\"old\"}]}}",
               "<a> old");
    expect_fmt("{\"action\":\"friends\",\"code\":0,\"data\":{\"friends\":[{\"user\":\"a\","
               "\"online\":true},{\"user\":\"b\"}]}}",
               "friends: a (online), b");
    expect_fmt("{\"action\":\"room_members\",\"code\":0,\"data\":{\"members\":[\"a\",\"b\"]}}",
               "members: a, b");
    expect_fmt("{\"action\":\"popular\",\"code\":0,\"data\":{\"words\":[{\"word\":\"hi\","
               "\"count\":3}]}}",
               "hi (3)");
    expect_fmt("{\"action\":\"logout\",\"code\":0}", "ok: logout");
}

/* ------------------------------------------------------------------ gateway bits */

static void test_gw_pick(void **state)
{
    char url[64];
    const char *ok = "{\"servers\":[{\"id\":\"n1\",\"url\":\"ws://127.0.0.1:9001/ws\"},"
                     "{\"id\":\"n2\",\"url\":\"ws://127.0.0.1:9002/ws\"}]}";
    const char *wss = "{\"servers\":[{\"url\":\"wss://h:1/ws\"}]}";

    (void)state;
    assert_int_equal(client_gw_pick(ok, strlen(ok), url, sizeof url), 0);
    assert_string_equal(url, "ws://127.0.0.1:9001/ws");
    assert_int_equal(client_gw_pick("{\"servers\":[]}", 14, url, sizeof url), -1);
    assert_int_equal(client_gw_pick("{\"servers\":[{\"url\":\"http://x\"}]}", 32, url, sizeof url),
                     -1);
    assert_int_equal(client_gw_pick("not json", 8, url, sizeof url), -1);
    assert_int_equal(client_gw_pick(wss, strlen(wss), url, sizeof url), 0);
    assert_string_equal(url, "wss://h:1/ws");
    assert_int_equal(client_gw_pick(ok, strlen(ok), url, 8), -1); /* does not fit */
}

static void test_http_url(void **state)
{
    char host[64], path[64];
    int port, secure;

    (void)state;
    assert_int_equal(client_http_url_parse("http://127.0.0.1:8080", host, sizeof host, &port,
                                           path, sizeof path, &secure),
                     0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_string_equal(path, "/");
    assert_int_equal(secure, 0);
    assert_int_equal(client_http_url_parse("http://localhost/api", host, sizeof host, &port, path,
                                           sizeof path, &secure),
                     0);
    assert_int_equal(port, 80);
    assert_string_equal(path, "/api");
    assert_int_equal(client_http_url_parse("https://x:1", host, sizeof host, &port, path,
                                           sizeof path, &secure),
                     0);
    assert_int_equal(secure, 1);
    assert_int_equal(port, 1);
    assert_int_equal(client_http_url_parse("https://chat.example", host, sizeof host, &port, path,
                                           sizeof path, &secure),
                     0);
    assert_int_equal(port, 443);
    assert_int_equal(client_http_url_parse("ftp://x:1", host, sizeof host, &port, path,
                                           sizeof path, &secure),
                     -1);
    assert_int_equal(client_http_url_parse("http://:80", host, sizeof host, &port, path,
                                           sizeof path, &secure),
                     -1);
    assert_int_equal(client_http_url_parse("http://h:99999", host, sizeof host, &port, path,
                                           sizeof path, &secure),
                     -1);
}


/* ------------------------------------------------------------------ gateway lookup, real sockets */

typedef struct gw_server {
    int status;                /* what /servers answers; 0 = hold the request */
    core_http_req_t *held;
    char path[64];
} gw_server_t;

typedef struct gw_result {
    int calls;
    int ok;
    char url[128];
    char why[128];
} gw_result_t;

static void gw_on_request(core_http_req_t *req, void *ud)
{
    gw_server_t *g = ud;
    const char *body = "{\"servers\":[{\"id\":\"n1\",\"addr\":\"127.0.0.1:1\","
                       "\"url\":\"ws://127.0.0.1:1/ws\",\"load\":0}]}";

    snprintf(g->path, sizeof g->path, "%s", core_http_req_path(req));
    if (g->status == 0)
        g->held = req;
    else if (g->status == 200)
        core_http_respond(req, 200, "application/json", body, strlen(body));
    else
        core_http_respond(req, g->status, "application/json", "{\"servers\":[]}", 14);
}

static void gw_done(int ok, const char *url, const char *why, void *ud)
{
    gw_result_t *r = ud;

    r->calls++;
    r->ok = ok;
    snprintf(r->url, sizeof r->url, "%s", url ? url : "");
    snprintf(r->why, sizeof r->why, "%s", why ? why : "");
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop until r has its answer (or 5 s pass), plus a short drain
 * so the connection is torn down. */
static void run_until_done(struct ev_loop *loop, gw_result_t *r)
{
    ev_timer deadline, drain;
    uint64_t end = core_mono_ms() + 5000;

    ev_timer_init(&deadline, on_deadline, 0.01, 0.01);
    ev_timer_start(loop, &deadline);
    while (r->calls == 0 && core_mono_ms() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &deadline);
    ev_timer_init(&drain, on_deadline, 0.05, 0);
    ev_timer_start(loop, &drain);
    ev_run(loop, 0);
    ev_timer_stop(loop, &drain);
}

static void gw_case(int status, const char *base_path, double timeout, int cancel,
                    gw_result_t *r, gw_server_t *g)
{
    struct ev_loop *loop = ev_loop_new(0);
    core_http_server_cbs_t cbs = {.on_request = gw_on_request};
    char err[128], url[128];
    core_http_server_t *srv;
    client_gw_t *req;

    memset(r, 0, sizeof *r);
    memset(g, 0, sizeof *g);
    g->status = status;
    srv = core_http_server_new(loop, "127.0.0.1", 0, NULL, &cbs, g, err, sizeof err);
    assert_non_null(srv);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", core_http_server_port(srv), base_path);
    req = client_gw_fetch(loop, url, NULL, timeout, gw_done, r);
    assert_non_null(req);
    if (cancel)
        client_gw_cancel(req);
    run_until_done(loop, r);
    if (g->held)
        core_http_respond(g->held, 200, "text/plain", "late", 4); /* dropped: client gone */
    core_http_server_free(srv);
    ev_loop_destroy(loop);
}

static void test_gw_fetch_ok(void **state)
{
    gw_result_t r;
    gw_server_t g;

    (void)state;
    gw_case(200, "", 5, 0, &r, &g);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.ok, 1);
    assert_string_equal(r.url, "ws://127.0.0.1:1/ws");
    assert_string_equal(g.path, "/servers");
    gw_case(200, "/api/", 5, 0, &r, &g); /* a base path is kept */
    assert_int_equal(r.ok, 1);
    assert_string_equal(g.path, "/api/servers");
}

/* A port nobody listens on: the kernel picks one, then it is closed. */
static int unused_port(void)
{
    struct ev_loop *loop = ev_loop_new(0);
    core_http_server_cbs_t cbs = {.on_request = gw_on_request};
    char err[64];
    core_http_server_t *srv = core_http_server_new(loop, "127.0.0.1", 0, NULL, &cbs, NULL, err,
                                                   sizeof err);
    int port;

    assert_non_null(srv);
    port = core_http_server_port(srv);
    core_http_server_free(srv);
    ev_loop_destroy(loop);
    return port;
}

static void test_gw_fetch_errors(void **state)
{
    gw_result_t r;
    gw_server_t g;
    int port;
    char url[64];
    struct ev_loop *loop;

    (void)state;
    gw_case(503, "", 5, 0, &r, &g);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.ok, 0);
    assert_non_null(strstr(r.why, "503"));

    gw_case(0, "", 0.2, 0, &r, &g); /* the gateway never answers */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.ok, 0);
    assert_non_null(strstr(r.why, "timed out"));

    gw_case(0, "", 5, 1, &r, &g);
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.why, "cancelled");

    port = unused_port();
    loop = ev_loop_new(0);
    memset(&r, 0, sizeof r);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    if (client_gw_fetch(loop, url, NULL, 5, gw_done, &r)) {
        run_until_done(loop, &r);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.ok, 0);
    }
    assert_null(client_gw_fetch(loop, "ws://127.0.0.1:1", NULL, 5, gw_done, &r));
    ev_loop_destroy(loop);
}

/* ------------------------------------------------------------ who closes first */

/* A gateway by hand: accepts, reads the request, answers (Connection:
 * close) and then decides when to close itself. */
static int raw_listen(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Runs the loop in small steps until the gateway side is answered and the
 * client's callback ran; returns the accepted socket. */
static int raw_serve(struct ev_loop *loop, int lfd, gw_result_t *r)
{
    static const char answer[] =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        "Content-Length: 74\r\n\r\n"
        "{\"servers\":[{\"id\":\"n\",\"addr\":\"x:1\",\"url\":\"ws://127.0.0.1:1/ws\",\"load\":0}]}";
    char req[2048];
    size_t got = 0;
    int fd = -1, answered = 0;
    uint64_t end = core_mono_ms() + 5000;
    while (r->calls == 0 && core_mono_ms() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        if (fd < 0) {
            fd = accept(lfd, NULL, NULL);
            continue;
        }
        ssize_t n = recv(fd, req + got, sizeof req - 1 - got, MSG_DONTWAIT);
        got += n > 0 ? (size_t)n : 0;
        req[got] = '\0';
        if (!answered && strstr(req, "\r\n\r\n")) {
            assert_int_equal(send(fd, answer, sizeof answer - 1, 0), (ssize_t)(sizeof answer - 1));
            answered = 1;
        }
    }
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->ok, 1);
    return fd;
}

/* Runs the loop for ms; 1 when the client closed its side of fd meanwhile
 * (fd -1: only runs it). */
static int client_closed_within(struct ev_loop *loop, int fd, int ms)
{
    char b;
    uint64_t end = core_mono_ms() + (uint64_t)ms;
    while (core_mono_ms() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        if (fd < 0)
            continue;
        ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);
        if (n == 0)
            return 1;
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
    return 0;
}

/* After an answer the client waits for the gateway's close (so the
 * TIME_WAIT is the gateway's, not one of the client host's ports), and
 * gives up waiting after a second. */
static void test_gw_gateway_closes_first(void **state)
{
    struct ev_loop *loop = ev_loop_new(0);
    char url[64];
    int port, lfd = raw_listen(&port);
    gw_result_t r;

    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    memset(&r, 0, sizeof r);
    assert_non_null(client_gw_fetch(loop, url, NULL, 5, gw_done, &r));
    int fd = raw_serve(loop, lfd, &r);
    assert_string_equal(r.url, "ws://127.0.0.1:1/ws");
    assert_false(client_closed_within(loop, fd, 200)); /* still open: waits for us */
    close(fd);
    client_closed_within(loop, -1, 50); /* the client sees the close and frees */

    memset(&r, 0, sizeof r); /* a gateway that never closes */
    assert_non_null(client_gw_fetch(loop, url, NULL, 5, gw_done, &r));
    fd = raw_serve(loop, lfd, &r);
    assert_false(client_closed_within(loop, fd, 300));
    assert_true(client_closed_within(loop, fd, 3000));
    close(fd);
    close(lfd);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account),       cmocka_unit_test(test_direct),
        cmocka_unit_test(test_friends),       cmocka_unit_test(test_groups),
        cmocka_unit_test(test_rooms),         cmocka_unit_test(test_default_room),
        cmocka_unit_test(test_misc),          cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_help_lists_commands), cmocka_unit_test(test_fmt),
        cmocka_unit_test(test_gw_pick),       cmocka_unit_test(test_http_url),
        cmocka_unit_test(test_gw_fetch_ok),   cmocka_unit_test(test_gw_fetch_errors),
        cmocka_unit_test(test_gw_gateway_closes_first),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
