/* The web client's static files (--web-root DIR), served from memory.
 *
 * Every file under DIR is read once, inside gateway_new, so serving never
 * touches the disk on the loop (a restart picks up new files). Bounded:
 * at most GATEWAY_WEB_FILES files, GATEWAY_WEB_BYTES in all, names of
 * [A-Za-z0-9._-/] only (others are skipped with a warning). Answers carry a
 * strong ETag (If-None-Match -> 304), Cache-Control (HTML revalidates every
 * time, assets may be reused for 5 minutes), a strict Content-Security-Policy
 * and nosniff. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gateway/gateway_int.h"

#define WEB_NAME_MAX 200

struct gateway__web_file {
    char path[WEB_NAME_MAX + 2]; /* "/index.html" */
    const char *ctype;
    char *body;
    size_t len;
    char etag[24];               /* "\"<16 hex>\"" */
};

/* Scripts and styles from this origin only; sockets to any node (nodes
 * are other origins: ws:/wss:); nothing may frame the page. */
static const char security_headers[] =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n";

static const struct {
    const char *ext;
    const char *ctype;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".webmanifest", "application/manifest+json"},
};

const char *gateway__web_ctype(const char *name)
{
    const char *dot = strrchr(name, '.');

    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].ctype;
    return "application/octet-stream";
}

static int name_ok(const char *name)
{
    if (name[0] == '.' || strlen(name) > 64)
        return 0; /* no dotfiles (and so no "." or "..") */
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

static int read_file(const char *path, size_t cap, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;

    if (!f)
        return -1;
    if (fstat(fileno(f), &st) != 0 || (size_t)st.st_size > cap) {
        fclose(f);
        return -1;
    }
    *out = core_xmalloc((size_t)st.st_size + 1);
    *len = fread(*out, 1, (size_t)st.st_size, f);
    fclose(f);
    return 0;
}

static void etag_of(gateway__web_file_t *f)
{
    unsigned char h[8];

    crypto_generichash(h, sizeof h, (const unsigned char *)f->body, f->len, NULL, 0);
    snprintf(f->etag, sizeof f->etag, "\"%02x%02x%02x%02x%02x%02x%02x%02x\"", h[0], h[1], h[2],
             h[3], h[4], h[5], h[6], h[7]);
}

typedef struct web_load {
    gateway__web_t *web;
    size_t bytes;
    char *err;
    size_t errlen;
} web_load_t;

static int add_file(web_load_t *ld, const char *fs_path, const char *url_path)
{
    gateway__web_t *w = ld->web;
    gateway__web_file_t *f;

    if (w->count == GATEWAY_WEB_FILES) {
        snprintf(ld->err, ld->errlen, "--web-root: more than %d files", GATEWAY_WEB_FILES);
        return -1;
    }
    f = &w->files[w->count];
    if (read_file(fs_path, GATEWAY_WEB_BYTES - ld->bytes, &f->body, &f->len) != 0) {
        snprintf(ld->err, ld->errlen, "--web-root: cannot read '%s' (or over %d bytes in all)",
                 fs_path, GATEWAY_WEB_BYTES);
        return -1;
    }
    core_copy_trunc(f->path, sizeof f->path, url_path);
    f->ctype = gateway__web_ctype(url_path);
    etag_of(f);
    ld->bytes += f->len;
    w->count++;
    return 0;
}

/* Walks dir (url_prefix is its path in URLs), depth-bounded. */
static int load_dir(web_load_t *ld, const char *dir, const char *url_prefix, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    if (!d) {
        snprintf(ld->err, ld->errlen, "--web-root: cannot open '%s': %s", dir, strerror(errno));
        return -1;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char fs_path[1400], url_path[WEB_NAME_MAX + 2];
        struct stat st;

        if (e->d_name[0] == '.')
            continue;
        if (!name_ok(e->d_name) ||
            snprintf(url_path, sizeof url_path, "%s/%s", url_prefix, e->d_name) >=
                (int)sizeof url_path) {
            CORE_WARN("--web-root: skipping '%s/%s' (name)", dir, e->d_name);
            continue;
        }
        snprintf(fs_path, sizeof fs_path, "%s/%s", dir, e->d_name);
        if (stat(fs_path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < 4)
            rc = load_dir(ld, fs_path, url_path, depth + 1);
        else if (S_ISREG(st.st_mode))
            rc = add_file(ld, fs_path, url_path);
    }
    closedir(d);
    return rc;
}

int gateway__web_load(gateway__web_t *w, const char *root, char *err, size_t errlen)
{
    web_load_t ld = {w, 0, err, errlen};

    memset(w, 0, sizeof *w);
    w->files = core_xcalloc(GATEWAY_WEB_FILES, sizeof *w->files);
    if (strlen(root) > 1000) {
        snprintf(err, errlen, "--web-root: path too long");
        return -1;
    }
    if (load_dir(&ld, root, "", 0) != 0)
        return -1;
    if (!gateway__web_find(w, "/index.html")) {
        snprintf(err, errlen, "--web-root '%s' has no index.html", root);
        return -1;
    }
    CORE_INFO("web client: %zu files, %zu bytes from %s", w->count, ld.bytes, root);
    return 0;
}

void gateway__web_free(gateway__web_t *w)
{
    for (size_t i = 0; i < w->count; i++)
        free(w->files[i].body);
    free(w->files);
    memset(w, 0, sizeof *w);
}

const gateway__web_file_t *gateway__web_find(const gateway__web_t *w, const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < w->count; i++)
        if (strcmp(w->files[i].path, path) == 0)
            return &w->files[i];
    return NULL;
}

/* A weak comparison of If-None-Match: our tag anywhere in the list, or "*". */
static int not_modified(const core_http_req_t *req, const gateway__web_file_t *f)
{
    const char *inm = core_http_req_header(req, "If-None-Match");

    return inm && (strstr(inm, f->etag) || strcmp(inm, "*") == 0);
}

int gateway__web_serve(gateway_t *g, core_http_req_t *req)
{
    const gateway__web_file_t *f;
    const char *method = core_http_req_method(req);
    char headers[sizeof security_headers + 160];

    if (!g->web.count || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0))
        return 0;
    f = gateway__web_find(&g->web, core_http_req_path(req));
    if (!f)
        return 0;
    snprintf(headers, sizeof headers, "%sETag: %s\r\nCache-Control: %s\r\n", security_headers,
             f->etag,
             strcmp(f->ctype, types[0].ctype) == 0 ? "no-cache" : "public, max-age=300");
    gateway__count(g, GW_ROUTE_WEB, not_modified(req, f) ? 304 : 200);
    if (not_modified(req, f))
        core_http_respond_headers(req, 304, headers, NULL, NULL, 0);
    else
        core_http_respond_headers(req, 200, headers, f->ctype, f->body, f->len);
    return 1;
}
