/* Latency histogram and worker results (merge, JSON, report). */
#include "bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

#define HALF (1u << (BENCH_HIST_SUB_BITS - 1)) /* linear buckets per power of two */

void bench_hist_init(bench_hist_t *h)
{
    memset(h, 0, sizeof *h);
}

size_t bench_hist_index(uint64_t v)
{
    if (v < 2 * HALF)
        return (size_t)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - (BENCH_HIST_SUB_BITS - 1);
    uint64_t sub = v >> shift; /* in [HALF, 2*HALF) */
    return 2 * HALF + (size_t)(msb - BENCH_HIST_SUB_BITS) * HALF + (size_t)(sub - HALF);
}

uint64_t bench_hist_bucket_high(size_t index)
{
    if (index < 2 * HALF)
        return index;
    size_t k = index - 2 * HALF;
    int shift = (int)(k / HALF) + 1;
    uint64_t sub = HALF + k % HALF;
    return ((sub + 1) << shift) - 1;
}

void bench_hist_record(bench_hist_t *h, uint64_t v)
{
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += (double)v;
    h->counts[bench_hist_index(v)]++;
}

void bench_hist_merge(bench_hist_t *into, const bench_hist_t *from)
{
    if (from->count == 0)
        return;
    if (into->count == 0 || from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->count += from->count;
    into->sum += from->sum;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
}

uint64_t bench_hist_percentile(const bench_hist_t *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p <= 0)
        return h->min;
    /* the smallest value v with at least p% of samples <= v */
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t hi = bench_hist_bucket_high(i);
            return hi > h->max ? h->max : hi;
        }
    }
    return h->max;
}

/* ------------------------------------------------------------------ results */

void bench_result_init(bench_result_t *r)
{
    memset(r, 0, sizeof *r);
}

void bench_result_merge(bench_result_t *into, const bench_result_t *from)
{
    into->clients += from->clients;
    into->sent += from->sent;
    into->expected += from->expected;
    into->delivered += from->delivered;
    into->dup += from->dup;
    into->reordered += from->reordered;
    into->errors += from->errors;
    into->connect_errors += from->connect_errors;
    into->receivers += from->receivers;
    into->self_rss_kb += from->self_rss_kb;
    into->dropped += from->dropped;
    into->reconnected += from->reconnected;
    into->asked += from->asked;
    into->ask_misses += from->ask_misses;
    into->last_tries += from->last_tries;
    into->last_misses += from->last_misses;
    if (from->first_drop_unix_us &&
        (!into->first_drop_unix_us || from->first_drop_unix_us < into->first_drop_unix_us))
        into->first_drop_unix_us = from->first_drop_unix_us;
    if (from->last_back_unix_us > into->last_back_unix_us)
        into->last_back_unix_us = from->last_back_unix_us;
    if (from->first_back_unix_us &&
        (!into->first_back_unix_us || from->first_back_unix_us < into->first_back_unix_us))
        into->first_back_unix_us = from->first_back_unix_us;
    /* workers run the same phase side by side: the longest one is the phase */
    if (from->elapsed_s > into->elapsed_s)
        into->elapsed_s = from->elapsed_s;
    bench_hist_merge(&into->lat, &from->lat);
}

uint64_t bench_result_lost(const bench_result_t *r)
{
    return r->expected > r->delivered ? r->expected - r->delivered : 0;
}

#define RESULT_FIELDS(X)                                                                           \
    X(clients) X(sent) X(expected) X(delivered) X(dup) X(reordered) X(errors) X(connect_errors)   \
    X(receivers) X(self_rss_kb) X(dropped) X(reconnected) X(first_drop_unix_us)                  \
    X(last_back_unix_us) X(first_back_unix_us) X(asked) X(ask_misses) X(last_tries) X(last_misses)

char *bench_result_encode(const bench_result_t *r)
{
    core_buf_t b;
    core_buf_init(&b);
    core_buf_append_str(&b, "{");
#define ENC(f) core_buf_printf(&b, "\"" #f "\":%llu,", (unsigned long long)r->f);
    RESULT_FIELDS(ENC)
#undef ENC
    core_buf_printf(&b, "\"elapsed_s\":%.6f,\"lat_min\":%llu,\"lat_max\":%llu,\"lat_sum\":%.17g,"
                        "\"lat\":[",
                    r->elapsed_s, (unsigned long long)r->lat.min,
                    (unsigned long long)r->lat.max, r->lat.sum);
    /* sparse [index, count] pairs: most buckets are empty */
    int first = 1;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        if (r->lat.counts[i] == 0)
            continue;
        core_buf_printf(&b, "%s[%zu,%llu]", first ? "" : ",", i,
                        (unsigned long long)r->lat.counts[i]);
        first = 0;
    }
    core_buf_append_str(&b, "]}");
    return b.data;
}

static int get_u64(const cJSON *o, const char *key, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0)
        return -1;
    *out = v->valuedouble >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)v->valuedouble;
    return 0;
}

static int decode_hist(const cJSON *o, bench_hist_t *h)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "lat");
    const cJSON *pair;
    if (!cJSON_IsArray(arr))
        return -1;
    cJSON_ArrayForEach(pair, arr) {
        const cJSON *i = cJSON_GetArrayItem(pair, 0), *c = cJSON_GetArrayItem(pair, 1);
        if (!cJSON_IsNumber(i) || !cJSON_IsNumber(c) || i->valuedouble < 0 ||
            i->valuedouble >= BENCH_HIST_BUCKETS || c->valuedouble < 0)
            return -1;
        h->counts[(size_t)i->valuedouble] += (uint64_t)c->valuedouble;
        h->count += (uint64_t)c->valuedouble;
    }
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(o, "lat_sum");
    h->sum = cJSON_IsNumber(sum) ? sum->valuedouble : 0;
    if (get_u64(o, "lat_min", &h->min) || get_u64(o, "lat_max", &h->max))
        return -1;
    return 0;
}

int bench_result_decode(const char *json, size_t len, bench_result_t *r)
{
    int rc = -1;
    bench_result_init(r);
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(o))
        goto out;
#define DEC(f)                                                                                     \
    if (get_u64(o, #f, &r->f))                                                                     \
        goto out;
    RESULT_FIELDS(DEC)
#undef DEC
    const cJSON *el = cJSON_GetObjectItemCaseSensitive(o, "elapsed_s");
    if (!cJSON_IsNumber(el))
        goto out;
    r->elapsed_s = el->valuedouble;
    rc = decode_hist(o, &r->lat);
out:
    cJSON_Delete(o);
    return rc;
}

/* ------------------------------------------------------------------ server CPU */

#define STAT_UTIME_FIELD 11 /* fields after ") ": state is 0, utime 11, stime 12 */

int bench_proc_stat_cpu_ticks(const char *stat, uint64_t *ticks)
{
    const char *p = strrchr(stat, ')'); /* comm is "(...)" and may contain ')' */
    uint64_t sum = 0;
    if (!p || p[1] != ' ')
        return -1;
    p += 2;
    for (int field = 0; field <= STAT_UTIME_FIELD + 1; field++) {
        char *end;
        if (field >= STAT_UTIME_FIELD) {
            if (*p < '0' || *p > '9')
                return -1;
            sum += strtoull(p, &end, 10);
            p = end;
        } else {
            p += strcspn(p, " ");
        }
        if (*p != ' ' && !(field == STAT_UTIME_FIELD + 1 && (*p == '\0' || *p == '\n')))
            return -1;
        if (*p == ' ')
            p++;
    }
    *ticks = sum;
    return 0;
}

double bench_pids_cpu_s(const int *pids, int n)
{
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        char path[64], text[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            return -1;
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = '\0';
        uint64_t ticks;
        if (bench_proc_stat_cpu_ticks(text, &ticks) != 0)
            return -1;
        sum += ticks;
    }
    return hz > 0 ? (double)sum / (double)hz : -1;
}

double bench_cpu_per_million(double cpu_s, uint64_t delivered)
{
    return delivered ? cpu_s * 1e6 / (double)delivered : -1;
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

cJSON *bench_report_json(const char *scenario, const bench_result_t *r, cJSON *extra)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "scenario", scenario);
    cJSON_AddNumberToObject(o, "clients", (double)r->clients);
    cJSON_AddNumberToObject(o, "sent", (double)r->sent);
    cJSON_AddNumberToObject(o, "delivered", (double)r->delivered);
    cJSON_AddNumberToObject(o, "lost", (double)bench_result_lost(r));
    cJSON_AddNumberToObject(o, "dup", (double)r->dup);
    cJSON_AddNumberToObject(o, "errors", (double)r->errors);
    double rate = r->elapsed_s > 0 ? (double)r->delivered / r->elapsed_s : 0;
    cJSON_AddNumberToObject(o, "rate", (double)(uint64_t)(rate * 10 + 0.5) / 10);
    cJSON_AddNumberToObject(o, "measured", (double)r->lat.count); /* latencies behind p50..max */
    cJSON_AddNumberToObject(o, "p50_ms", ms(bench_hist_percentile(&r->lat, 50)));
    cJSON_AddNumberToObject(o, "p99_ms", ms(bench_hist_percentile(&r->lat, 99)));
    cJSON_AddNumberToObject(o, "max_ms", ms(r->lat.max));
    cJSON_AddNumberToObject(o, "mean_ms",
                            r->lat.count ? (double)(uint64_t)(r->lat.sum / (double)r->lat.count) / 1000.0 : 0);
    cJSON_AddNumberToObject(o, "expected", (double)r->expected);
    cJSON_AddNumberToObject(o, "reordered", (double)r->reordered);
    cJSON_AddNumberToObject(o, "connect_errors", (double)r->connect_errors);
    cJSON_AddNumberToObject(o, "bench_rss_kb", (double)r->self_rss_kb);
    if (r->dropped) { /* --reconnect: lat is the time from drop to logged in again */
        cJSON_AddNumberToObject(o, "dropped", (double)r->dropped);
        cJSON_AddNumberToObject(o, "reconnected", (double)r->reconnected);
        if (r->last_back_unix_us > r->first_drop_unix_us)
            cJSON_AddNumberToObject(o, "storm_s",
                                    (double)(r->last_back_unix_us - r->first_drop_unix_us) / 1e6);
        cJSON_AddNumberToObject(o, "first_drop_unix_ms", (double)(r->first_drop_unix_us / 1000));
        if (r->first_back_unix_us > r->first_drop_unix_us) /* the storm's logins: first to last back */
            cJSON_AddNumberToObject(o, "first_back_s",
                                    (double)(r->first_back_unix_us - r->first_drop_unix_us) / 1e6);
    }
    if (r->asked || r->last_tries) { /* --ask-gateway */
        cJSON_AddNumberToObject(o, "asked_gateway", (double)r->asked);
        cJSON_AddNumberToObject(o, "gateway_misses", (double)r->ask_misses);
        cJSON_AddNumberToObject(o, "last_node_tries", (double)r->last_tries);
        cJSON_AddNumberToObject(o, "last_node_misses", (double)r->last_misses);
    }
    cJSON_AddNumberToObject(o, "elapsed_s", (double)(uint64_t)(r->elapsed_s * 1000) / 1000);
    if (extra) {
        cJSON *it = extra->child;
        while (it) {
            cJSON *next = it->next;
            cJSON_AddItemToObject(o, it->string, cJSON_DetachItemViaPointer(extra, it));
            it = next;
        }
        cJSON_Delete(extra);
    }
    return o;
}
