/*
 * wakeup_latency.c - how late this machine wakes a sleeping thread, for
 * tests/bench/drill_bench.sh (in the manner of rt-tests' cyclictest). The
 * drill sleeps in epoll_wait until its next probe tick; however little else it
 * does, a tick cannot go out earlier than the kernel (and, on a virtual
 * machine, the hypervisor) runs it again. This thread sleeps to absolute
 * CLOCK_MONOTONIC instants every PERIOD_US and records how late each wakeup
 * was, doing nothing else; after a stall every tick that passed counts, with
 * its own lateness, so the percentiles are over time. It asks for SCHED_FIFO
 * (when allowed), so a busy drill on the same cpu does not delay it: what
 * remains is the kernel's and the hypervisor's share, the floor under the
 * drill's own lateness on this cpu. Runs for SECONDS or until SIGTERM/SIGINT,
 * then prints one line:
 *   wakeups=N p50_us=A p99_us=B p999_us=C max_us=D over1ms=E over5ms=F fifo=0|1
 *
 * Usage: wakeup_latency SECONDS [PERIOD_US]   (period default 1000)
 */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SECONDS [PERIOD_US]\n", argv[0]);
        return 2;
    }
    char *end = NULL;
    double secs = strtod(argv[1], &end);
    if (end == argv[1] || *end != '\0') {
        secs = 0;
    }
    long period_us = 1000;
    if (argc > 2) {
        period_us = strtol(argv[2], &end, 10);
        if (end == argv[2] || *end != '\0' || period_us > 10000000) {
            period_us = 0;
        }
    }
    if (secs <= 0 || period_us < 10) {
        fprintf(stderr, "wakeup_latency: SECONDS must be > 0 and PERIOD_US >= 10\n");
        return 2;
    }
    size_t cap = (size_t)(secs * 1e6 / (double)period_us) + 2, n = 0;
    long *late = malloc(cap * sizeof *late);
    if (late == NULL) {
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sched_param sp = {.sched_priority = 1};
    int fifo = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
    struct timespec next, now;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (n < cap && !stop) {
        next.tv_nsec += period_us * 1000;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) != 0) {
            continue; /* a signal: stop is set */
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ns = (now.tv_sec - next.tv_sec) * 1000000000L + (now.tv_nsec - next.tv_nsec);
        /* Every tick that passed while the thread could not run counts, each
         * with its own lateness: as a drill's engineers whose ticks fell in a
         * stall are each that late. So the percentiles are over time, not
         * over wakeups, and compare with the drill's `late`. */
        for (long k = ns; k >= 0 && n < cap; k -= period_us * 1000L) {
            late[n++] = k / 1000;
            if (k >= period_us * 1000L) {
                next.tv_nsec += period_us * 1000;
                while (next.tv_nsec >= 1000000000L) {
                    next.tv_nsec -= 1000000000L;
                    next.tv_sec++;
                }
            }
        }
    }
    if (n == 0) {
        printf("wakeups=0 p50_us=0 p99_us=0 p999_us=0 max_us=0 over1ms=0 over5ms=0 fifo=%d\n",
               fifo);
        free(late);
        return 0;
    }
    qsort(late, n, sizeof *late, cmp_long);
    size_t over1 = 0, over5 = 0;
    for (size_t i = 0; i < n; i++) {
        over1 += late[i] >= 1000;
        over5 += late[i] >= 5000;
    }
    printf("wakeups=%zu p50_us=%ld p99_us=%ld p999_us=%ld max_us=%ld over1ms=%zu over5ms=%zu "
           "fifo=%d\n",
           n, late[n / 2], late[(size_t)((double)(n - 1) * 0.99)],
           late[(size_t)((double)(n - 1) * 0.999)], late[n - 1], over1, over5, fifo);
    free(late);
    return 0;
}
