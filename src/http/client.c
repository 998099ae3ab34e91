/*
 * libcurl easy handle reused for every request of one sink, so TCP and TLS connections
 * are reused. The write callback stops the transfer as soon as the answer exceeds its
 * cap (curl's dynbuf "toobig" idea). No redirects are followed: a remote that redirects
 * an API call is misconfigured, and following it could leak credentials.
 */
#include "http/client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "base/buf.h"
#include "base/metrics.h"
#include "base/xalloc.h"

/* Remote APIs answer in tens of ms to seconds; timeouts are tens of seconds. */
static const double duration_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

static const struct metrics_family duration_family = {
    .name = "orderbridge_remote_request_duration_seconds",
    .help = "Time a request to a sink's remote took, answered or not (connect to last byte).",
    .type = METRICS_HISTOGRAM,
    .labels = {"sink"},
    .buckets = duration_buckets,
    .n_buckets = sizeof(duration_buckets) / sizeof(duration_buckets[0]),
};

struct http_client {
        CURL *easy;
        int64_t timeout_ms;
        size_t max_response;
        bool reuse;
        const char *sink; /* measured under this name, or NULL */
};

/* One transfer's answer: the body, capped, and what the headers said. */
struct answer {
        struct buf body; /* toobig: the answer passed the cap */
        int64_t retry_after_s;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *user)
{
        struct answer *a = user;
        size_t n = size * nmemb;

        if (buf_append(&a->body, ptr, n) < 0)
                return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
        return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *user)
{
        struct answer *b = user;
        size_t n = size * nmemb;

        if (n > 12 && strncasecmp(ptr, "Retry-After:", 12) == 0) {
                long long v = 0;
                size_t i = 12, digits = 0;
                while (i < n && ptr[i] == ' ')
                        i++;
                for (; i < n && ptr[i] >= '0' && ptr[i] <= '9' && digits < 7; i++, digits++)
                        v = v * 10 + (ptr[i] - '0');
                if (digits > 0)
                        b->retry_after_s = v;
        }
        return n;
}

struct http_client *http_client_new(int64_t timeout_ms, size_t max_response_bytes, bool reuse)
{
        struct http_client *c = xcalloc(1, sizeof(*c));

        c->easy = curl_easy_init();
        if (!c->easy) {
                free(c);
                return NULL;
        }
        c->timeout_ms = timeout_ms;
        c->max_response = max_response_bytes;
        c->reuse = reuse;
        return c;
}

struct http_client *http_client_free(struct http_client *c)
{
        if (!c)
                return NULL;
        curl_easy_cleanup(c->easy);
        free(c);
        return NULL;
}

void http_client_measure(struct http_client *c, const char *sink)
{
        c->sink = sink;
        metrics_declare(&duration_family, (const char *const[]){sink});
}

void http_response_clear(struct http_response *r)
{
        free(r->body);
        memset(r, 0, sizeof(*r));
}

int http_client_post(struct http_client *c, const char *url, const char *const *headers,
                     const char *body, size_t len, struct http_response *ret)
{
        struct answer b = {.retry_after_s = -1};
        struct curl_slist *hl = NULL;
        CURLcode rc;
        CURL *e = c->easy;
        int r = 0;

        memset(ret, 0, sizeof(*ret));
        ret->retry_after_s = -1;
        buf_init(&b.body, c->max_response);
        for (size_t i = 0; headers && headers[i]; i++)
                hl = curl_slist_append(hl, headers[i]);
        hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */

        curl_easy_reset(e);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->timeout_ms < 10000 ? c->timeout_ms : 10000));
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &b);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "orderbridge/0.1");
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        if (!c->reuse)
                curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);

        rc = curl_easy_perform(e);
        curl_slist_free_all(hl);
        if (c->sink) {
                curl_off_t us = 0;
                curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &us);
                metrics_observe(&duration_family, (const char *const[]){c->sink},
                                (double)us / 1e6);
        }
        if (rc == CURLE_OK) {
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &ret->status);
        } else {
                /* curl's messages name the host at most, never the path with its secrets */
                snprintf(ret->error, sizeof(ret->error), "%s", curl_easy_strerror(rc));
                if (b.body.toobig) {
                        r = -EMSGSIZE;
                        snprintf(ret->error, sizeof(ret->error), "answer larger than %zu bytes",
                                 c->max_response);
                } else if (rc == CURLE_OPERATION_TIMEDOUT) {
                        r = -ETIMEDOUT;
                } else if (rc == CURLE_COULDNT_CONNECT) {
                        r = -ECONNREFUSED;
                } else if (rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
                           rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE) {
                        r = -ECONNRESET;
                } else {
                        r = -EIO;
                }
        }
        ret->len = b.body.len;
        ret->body = buf_steal(&b.body);
        ret->retry_after_s = b.retry_after_s;
        return r;
}
