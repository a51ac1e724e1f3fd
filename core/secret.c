/* core/secret.c: credentials from a file or an environment variable, never
 * from argv (ps shows a command line to every user of the machine). */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

/* Trailing newlines and spaces are an editor's, not the secret's. */
static size_t secret_trim(const char *s, size_t len)
{
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                   s[len - 1] == '\t'))
        len--;
    return len;
}

/* A secret others may read is no secret: said once, not refused (a config
 * management tool may own the file). */
static void secret_check_mode(int fd, const char *what, const char *path)
{
    struct stat st;

    if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
        CORE_WARN("%s %s is readable by others (mode %03o): chmod 600 it", what, path,
                  (unsigned)(st.st_mode & 0777));
}

/* Bytes past what fits: whitespace only, or the file is too long. */
static int secret_rest_blank(int fd)
{
    char more[64];
    ssize_t n;

    while ((n = read(fd, more, sizeof more)) > 0)
        if (secret_trim(more, (size_t)n) != 0)
            return 0;
    return n == 0;
}

static int secret_read_file(const char *what, const char *path, char *out, size_t cap,
                            char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    size_t len;
    int fits;

    if (fd < 0) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    secret_check_mode(fd, what, path);
    n = read(fd, out, cap - 1); /* a regular file this small comes in one read */
    fits = n >= 0 && ((size_t)n < cap - 1 || secret_rest_blank(fd));
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    len = secret_trim(out, (size_t)n);
    out[len] = '\0';
    if (!fits) {
        sodium_memzero(out, cap);
        snprintf(err, errlen, "%s %s: longer than %zu bytes", what, path, cap - 1);
        return -1;
    }
    if (len == 0 || memchr(out, '\0', len) || memchr(out, '\n', len)) {
        sodium_memzero(out, cap);
        snprintf(err, errlen, "%s %s: must be one line of text, not empty", what, path);
        return -1;
    }
    return 0;
}

int core_redis_auth_load(const char *password_file, char *user, size_t user_cap, char *password,
                         size_t password_cap, char *err, size_t errlen)
{
    if (core_secret_load("Redis password", password_file, "CHAT_REDIS_PASSWORD", password,
                         password_cap, err, errlen) != 0)
        return -1;
    const char *env_user = getenv("CHAT_REDIS_USER");
    if (!user[0] && env_user && core_copy_str(user, user_cap, env_user) != 0) {
        snprintf(err, errlen, "$CHAT_REDIS_USER is too long");
        return -1;
    }
    if (user[0] && !password[0]) {
        snprintf(err, errlen, "--redis-user needs a password (--redis-password-file or "
                              "CHAT_REDIS_PASSWORD)");
        return -1;
    }
    return 0;
}

int core_secret_load(const char *what, const char *file, const char *env, char *out, size_t cap,
                     char *err, size_t errlen)
{
    const char *v = env ? getenv(env) : NULL;
    size_t len;

    if (cap < 2)
        return -1;
    out[0] = '\0';
    if (file && file[0])
        return secret_read_file(what, file, out, cap, err, errlen);
    if (!v || !v[0])
        return 0;
    len = secret_trim(v, strlen(v));
    if (len == 0 || len >= cap) {
        snprintf(err, errlen, "%s in $%s: empty or longer than %zu bytes", what, env, cap - 1);
        return -1;
    }
    memcpy(out, v, len);
    out[len] = '\0';
    return 0;
}
