/* tt_alert.c - Alertmanager v2 alerts over libcurl. */
#include "tt_alert.h"

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "tt_time.h"

#define ALERT_BODY_MAX (8 << 20)
#define URL_MAX 2048

static int label(tt_buf *b, const char *k, const char *v, int *first)
{
    if (v == NULL || *v == '\0') {
        return 0;
    }
    int rc = tt_buf_printf(b, "%s\"%s\":\"", *first ? "" : ",", k);
    *first = 0;
    return rc | tt_buf_add_json_escaped(b, v) | tt_buf_adds(b, "\"");
}

int tt_alert_body(tt_finding_row *const *rows, size_t n, tt_buf *out)
{
    int rc = tt_buf_adds(out, "[");
    for (size_t i = 0; i < n; i++) {
        const tt_finding_row *r = rows[i];
        char t[TT_TIME_BUFSZ];
        tt_time_format(r->time_ms, t);
        int first = 1;
        rc |= tt_buf_adds(out, i ? ",{\"labels\":{" : "{\"labels\":{");
        rc |= label(out, "alertname", "TokentrailFinding", &first);
        rc |= label(out, "finding_id", r->id, &first);
        rc |= label(out, "finding_kind", tt_finding_kind_name(r->kind), &first);
        rc |= label(out, "severity", tt_severity_name(r->severity), &first);
        rc |= label(out, "token_id", r->token_id, &first);
        rc |= label(out, "client_id", r->client_id, &first);
        rc |= label(out, "subject", r->subject, &first);
        rc |= label(out, "incident_id", r->incident_id, &first);
        first = 1;
        rc |= tt_buf_adds(out, "},\"annotations\":{");
        rc |= label(out, "summary", r->message, &first);
        /* the evidence list, as the finding's JSON has it */
        json_t *j = json_loads(r->json, 0, NULL);
        json_t *ev = json_object_get(j, "evidence");
        size_t k;
        json_t *v;
        char evs[2048] = "";
        size_t len = 0;
        json_array_foreach(ev, k, v)
        {
            int w =
                snprintf(evs + len, sizeof(evs) - len, "%s%s", k ? " " : "", json_string_value(v));
            if (w < 0 || (size_t)w >= sizeof(evs) - len) {
                break;
            }
            len += (size_t)w;
        }
        json_decref(j);
        rc |= label(out, "evidence", evs, &first);
        rc |= tt_buf_printf(out, "},\"startsAt\":\"%s\",\"generatorURL\":\"", t);
        rc |= tt_buf_adds(out, "https://tokentrail.invalid/findings/");
        rc |= tt_buf_add_json_escaped(out, r->id);
        rc |= tt_buf_adds(out, "\"}");
    }
    rc |= tt_buf_adds(out, "]");
    return rc ? -1 : 0;
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

int tt_alert_push(const char *base_url, tt_finding_row *const *rows, size_t n, long timeout_ms,
                  char *err, size_t errlen)
{
    char url[URL_MAX];
    size_t bl = strlen(base_url);
    while (bl > 0 && base_url[bl - 1] == '/') {
        bl--;
    }
    if (bl + sizeof("/api/v2/alerts") > sizeof(url)) {
        snprintf(err, errlen, "alertmanager URL too long");
        return -1;
    }
    snprintf(url, sizeof(url), "%.*s/api/v2/alerts", (int)bl, base_url);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        snprintf(err, errlen, "alertmanager: cannot initialise libcurl");
        return -1;
    }
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < n; off += TT_ALERT_MAX_BATCH) {
        size_t m = n - off < TT_ALERT_MAX_BATCH ? n - off : TT_ALERT_MAX_BATCH;
        tt_buf b;
        tt_buf_init(&b, ALERT_BODY_MAX);
        if (tt_alert_body(rows + off, m, &b) != 0) {
            snprintf(err, errlen, "alertmanager: alert body over %d bytes", ALERT_BODY_MAX);
            tt_buf_free(&b);
            rc = -1;
            break;
        }
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, b.data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)b.len);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        CURLcode cc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK) {
            snprintf(err, errlen, "alertmanager %s: %s", url, curl_easy_strerror(cc));
            rc = -1;
        } else if (status < 200 || status > 299) {
            snprintf(err, errlen, "alertmanager %s: HTTP %ld", url, status);
            rc = -1;
        }
        tt_buf_free(&b);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return rc;
}
