/* core/log.c: one-line log records on stderr, one write(2) per line. */
#include "core/core.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096
#define LOG_TAG_MAX 64

static atomic_int log_level = CORE_LOG_INFO;
static pthread_mutex_t log_tag_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_tag[LOG_TAG_MAX];

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void core_log_set_level(core_log_level_t level)
{
    atomic_store(&log_level, (int)level);
}

void core_log_set_tag(const char *tag)
{
    pthread_mutex_lock(&log_tag_lock);
    core_copy_trunc(log_tag, sizeof(log_tag), tag ? tag : "");
    pthread_mutex_unlock(&log_tag_lock);
}

int core_log_parse_level(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};

    if (!name)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* "2026-11-23T09:31:37.123Z LEVEL [tag] "; returns the length written. */
static size_t log_prefix(char *out, size_t cap, core_log_level_t level)
{
    struct timespec ts;
    struct tm tm;
    char tag[LOG_TAG_MAX];
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    pthread_mutex_lock(&log_tag_lock);
    memcpy(tag, log_tag, sizeof(tag));
    pthread_mutex_unlock(&log_tag_lock);
    n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s%s%s", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 level_names[level], tag[0] ? "[" : "", tag, tag[0] ? "] " : "");
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

static void log_write_all(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

void core_log(core_log_level_t level, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    size_t len;
    va_list ap;
    int n;

    if ((int)level < atomic_load(&log_level) || (int)level < 0 || level > CORE_LOG_ERROR)
        return;
    len = log_prefix(line, sizeof(line), level);
    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
    va_end(ap);
    if (n > 0)
        len += (size_t)n < sizeof(line) - len - 1 ? (size_t)n : sizeof(line) - len - 2;
    line[len++] = '\n';
    log_write_all(line, len);
}
