/* micro.c - component costs of the ingest path in CPU time per event:
 * parse+validate+normalise, serialise, and the SQLite group commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tt_buf.h"
#include "tt_event.h"
#include "tt_ingest.h"
#include "tt_json.h"
#include "tt_store.h"

#define BATCH 1000

#define TMPL \
    "{\"specversion\":\"1.0\",\"id\":\"%s-%d\",\"source\":\"//rs/orders-api\",\"type\":\"token.used\"," \
    "\"time\":\"2026-11-22T07:47:51.123Z\",\"data\":{\"token_id\":\"sha256:0c4d9ad3f2b1c6e8a7d5b3f1e9" \
    "c7a5b3d1f0e8c6a4b2d0f9e7c5a3b1d9f7e5c3\",\"client_id\":\"oncall-cli\",\"subject\":\"alice@exam" \
    "ple.com\",\"scopes\":\"db:orders:read db:orders:write\",\"incident_id\":\"INC-2041\",\"resour" \
    "ce\":\"orders-api\",\"method\":\"GET\",\"path\":\"/v1/orders/12345/items?limit=50\",\"status\":" \
    "200,\"ip\":\"10.20.30.40\"}}\n"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_batch(tt_buf *b, const char *prefix)
{
    tt_buf_reset(b);
    for (int i = 0; i < BATCH; i++) {
        tt_buf_printf(b, TMPL, prefix, i);
    }
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 50;
    if (rounds <= 0) {
        fprintf(stderr, "usage: tt_micro [ROUNDS > 0] [DB]\n");
        return 2;
    }
    const char *db = argc > 2 ? argv[2] : "build/bench/micro.db";
    tt_buf body;
    tt_buf_init(&body, 1 << 24);
    make_batch(&body, "warm");
    printf("event size: %zu bytes\n", body.len / BATCH);

    /* 1. parse + validate + normalise only */
    double t0 = cpu_s();
    for (int r = 0; r < rounds; r++) {
        const char *p = body.data;
        for (int i = 0; i < BATCH; i++) {
            const char *nl = strchr(p, '\n');
            tt_event ev;
            tt_event_error err;
            if (tt_event_parse(p, (size_t)(nl - p), &ev, &err) != 0) {
                fprintf(stderr, "parse failed: %s\n", err.msg);
                return 1;
            }
            tt_event_clear(&ev);
            p = nl + 1;
        }
    }
    double parse_us = (cpu_s() - t0) / (rounds * BATCH) * 1e6;

    /* 2. serialise (jansson vs tt_json) */
    tt_event ev;
    tt_event_error err;
    tt_event_parse(body.data, strcspn(body.data, "\n"), &ev, &err);
    t0 = cpu_s();
    for (int i = 0; i < rounds * BATCH; i++) {
        free(tt_event_dump(&ev));
    }
    double dumps_us = (cpu_s() - t0) / (rounds * BATCH) * 1e6;
    tt_buf out;
    tt_buf_init(&out, 1 << 20);
    t0 = cpu_s();
    for (int i = 0; i < rounds * BATCH; i++) {
        tt_buf_reset(&out);
        tt_json_dump(ev.json, &out);
    }
    double ttdump_us = (cpu_s() - t0) / (rounds * BATCH) * 1e6;
    tt_event_clear(&ev);
    tt_buf_free(&out);

    /* 3. the whole ingest path into a fresh store (1000-event commits) */
    unlink(db);
    char e[256];
    tt_store *s = tt_store_open(db, NULL, e, sizeof(e));
    if (s == NULL) {
        fprintf(stderr, "%s\n", e);
        return 1;
    }
    double total = 0;
    for (int r = 0; r < rounds; r++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "r%d", r);
        make_batch(&body, prefix);
        tt_buf resp;
        tt_buf_init(&resp, 1 << 24);
        tt_ingest_stats st;
        memset(&st, 0, sizeof(st));
        t0 = cpu_s();
        tt_ingest_body(s, body.data, body.len, TT_BODY_NDJSON, &resp, &st);
        total += cpu_s() - t0;
        if (st.n_accepted != BATCH) {
            fprintf(stderr, "accepted %zu of %d: %s\n", st.n_accepted, BATCH, resp.data);
            return 1;
        }
        tt_buf_free(&resp);
    }
    /* CPU time of the process includes the writer thread. */
    double ingest_us = total / (rounds * BATCH) * 1e6;
    const tt_histogram *h = tt_store_commit_hist(s);
    double commit_ms = (double)h->sum_ns / (double)h->count / 1e6;
    tt_store_close(s);
    tt_buf_free(&body);

    printf("parse+validate+normalise: %.2f us/event\n", parse_us);
    printf("serialise (jansson json_dumps): %.2f us/event\n", dumps_us);
    printf("serialise (tt_json_dump): %.2f us/event\n", ttdump_us);
    printf("ingest incl. store commit: %.2f us/event CPU (%.0f events/s per core)\n", ingest_us,
           1e6 / ingest_us);
    printf("group commit of %d events: %.2f ms wall on average\n", BATCH, commit_ms);
    return 0;
}
