/*
 * curl_ceiling.c - the libcurl ceiling for tests/bench/drill_bench.sh: how many
 * keep-alive GETs per second libcurl's multi interface completes on one core
 * when the program does nothing else. The drill must send its HTTP through
 * libcurl's multi interface; this is that library's floor cost per request,
 * with none of the drill's own work (no timers, no JSON, no events, no
 * reports), the way `kcat -P` is the floor for the Kafka bench.
 *
 * Each of CONNS easy handles is created once and re-added as soon as its
 * transfer completes (connection kept alive), so the figure is what libcurl
 * spends per transfer: request building, the connection cache, the send and
 * receive, header parsing, the multi state machine. Prints one line:
 *   requests=N secs=S user_us_per_req=U sys_us_per_req=K errors=E
 *
 * Usage: curl_ceiling URL CONNS SECONDS [HEADER]
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv_us(struct timeval tv)
{
    return (double)tv.tv_sec * 1e6 + (double)tv.tv_usec;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s URL CONNS SECONDS [HEADER]\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    char *rest = NULL;
    long conns = strtol(argv[2], &rest, 10);
    if (rest == argv[2] || *rest != '\0' || conns > 100000) {
        conns = 0;
    }
    double secs = strtod(argv[3], &rest);
    if (rest == argv[3] || *rest != '\0') {
        secs = 0;
    }
    if (conns < 1 || secs <= 0) {
        fprintf(stderr, "curl_ceiling: CONNS must be >= 1 and SECONDS > 0\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct curl_slist *hdr = argc > 4 ? curl_slist_append(NULL, argv[4]) : NULL;
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)conns);
    CURL **easy = calloc((size_t)conns, sizeof *easy);
    if (!multi || !easy)
        return 2;
    for (long i = 0; i < conns; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy[i], CURLOPT_PROXY, "");
        if (hdr)
            curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hdr);
        curl_multi_add_handle(multi, easy[i]);
    }
    struct rusage r0, r1;
    double t0 = now_s(), end = t0 + secs;
    getrusage(RUSAGE_SELF, &r0);
    long done = 0, errors = 0;
    int running = 1;
    while (now_s() < end) {
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            CURL *e = m->easy_handle;
            long code = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
            if (m->data.result != CURLE_OK || code != 200)
                errors++;
            done++;
            curl_multi_remove_handle(multi, e);
            curl_multi_add_handle(multi, e);
        }
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    getrusage(RUSAGE_SELF, &r1);
    double wall = now_s() - t0;
    printf("requests=%ld secs=%.2f user_us_per_req=%.1f sys_us_per_req=%.1f errors=%ld\n", done,
           wall, done ? (tv_us(r1.ru_utime) - tv_us(r0.ru_utime)) / (double)done : 0,
           done ? (tv_us(r1.ru_stime) - tv_us(r0.ru_stime)) / (double)done : 0, errors);
    for (long i = 0; i < conns; i++) {
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    free(easy);
    curl_slist_free_all(hdr);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
