/*
 * The site sink: what the CRM decided that the shop must hear, through the module's
 * status endpoint ([site] status_url), signed the Standard Webhooks way:
 *   - the status a deal stage maps back to, or "cancel", when a manager moved the deal
 *     (site_sync.c writes that wish as the order's "site.want" link and asks this sink);
 *   - the order's deal id, once the Bitrix24 sink created the deal (it asks this sink
 *     in the same transaction as the link), so the shop's admin page links to it.
 * A pass reads the order's latest snapshot and those links and sends only what the site
 * does not have yet: a wish the snapshot already shows, or that the site overtook by a
 * later change of its own (the rule in site_sync.h), is not sent. The site's answer is
 * checked, not assumed: a 200 that leaves the order elsewhere is a failure, a refusal
 * (409, 422: Bitrix refused the change) a dead letter in Bitrix's words.
 */
#include "sinks/sink_site.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "base/xalloc.h"
#include "http/client.h"
#include "http/signature.h"
#include "model/snapshot.h"
#include "sinks/bitrix24_conf.h"
#include "sinks/site_map.h"

#define MAX_ANSWER 65536
#define TIMEOUT_MS 15000
#define BATCH 10

struct site {
        struct sink_ops ops;
        const struct config *cfg;
        struct http_client *http;
        char portal[256]; /* https://portal.bitrix24.ru, for deal links; "" without [bitrix24] */
        atomic_bool stopping;
};

/* What one order needs the site to hear. */
struct tell {
        bool has_want;
        struct site_state want; /* with has_want: what the site is to become */
        long long want_at;      /* the deal's DATE_MODIFY the wish came from */
        char deal_id[24];  /* "" when the site has it already or there is none */
};

/* The portal's origin from the (secret) webhook URL: scheme and host only, no path, no
 * code, so a deal link never carries the webhook's secret. */
static void portal_origin(const struct config *cfg, char *buf, size_t size)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        char *scheme = NULL, *host = NULL, *port = NULL;
        CURLU *u;

        buf[0] = '\0';
        if (!conf || !conf->webhook_url || !(u = curl_url()))
                return;
        if (curl_url_set(u, CURLUPART_URL, conf->webhook_url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
                curl_url_get(u, CURLUPART_PORT, &port, 0);
                snprintf(buf, size, "%s://%s%s%s", scheme, host, port ? ":" : "",
                         port ? port : "");
        }
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        curl_url_cleanup(u);
}

/* A link, or "" when there is none. 0 or -errno (a read that failed). */
static int link_or_empty(struct store *st, const char *order_id, const char *kind, char *buf,
                         size_t size)
{
        char *v = NULL;
        int r = store_link_get(st, order_id, kind, &v);

        buf[0] = '\0';
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        snprintf(buf, size, "%s", v);
        free(v);
        return 0;
}

/* The wish in the "site.want" link (site_sync.c's JSON), if it still stands against the
 * snapshot: not shown by it yet, and not overtaken by a later change of the site's. */
static void read_want(const char *text, const struct snapshot *s, int64_t received_ms,
                      struct tell *t)
{
        json_t *o = text[0] ? json_loads(text, 0, NULL) : NULL;
        json_t *status = json_object_get(o, "status");
        json_t *at = json_object_get(o, "at");

        if (!json_is_integer(at) || (!json_is_string(status) &&
                                     !json_is_true(json_object_get(o, "canceled"))))
                goto out;
        t->want_at = json_integer_value(at);
        t->want.cancel = !json_is_string(status);
        if (!t->want.cancel)
                snprintf(t->want.status, sizeof(t->want.status), "%s", json_string_value(status));
        if (t->want_at <= site_change_time(s, received_ms))
                goto out; /* the site changed since: its state stands (site_sync.h) */
        if (site_state_shown(&t->want, s))
                goto out; /* the site is there already */
        t->has_want = true;
out:
        json_decref(o);
}

/* The request's body: {"site","order_id", "status"|"canceled", "deal_id","deal_url"}. */
static char *request_body(const struct site *site, const struct snapshot *s,
                          const struct tell *t)
{
        json_t *o = json_pack("{s:s, s:s}", "site", s->site, "order_id", s->order_id);
        char *text;

        if (t->has_want && t->want.cancel)
                json_object_set_new(o, "canceled", json_true());
        else if (t->has_want)
                json_object_set_new(o, "status", json_string(t->want.status));
        if (t->deal_id[0]) {
                json_object_set_new(o, "deal_id", json_string(t->deal_id));
                if (site->portal[0]) {
                        char url[400];
                        snprintf(url, sizeof(url), "%s/crm/deal/details/%s/", site->portal,
                                 t->deal_id);
                        json_object_set_new(o, "deal_url", json_string(url));
                }
        }
        text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        if (!text)
                abort();
        return text;
}

/* The message id: the same for a retry of the same request, so that the site applies it
 * once; another for the same body asked again later (a deal moved away and back). */
static void message_id(const char *order_id, int64_t rev, const struct tell *t,
                       const char *body, char *buf, size_t size)
{
        unsigned char d[32];
        unsigned int n = 0;
        char seed[96];
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        snprintf(seed, sizeof(seed), "%s\n%lld\n%lld\n", order_id, (long long)rev,
                 (long long)t->want_at);
        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(ctx, seed, strlen(seed)) != 1 ||
            EVP_DigestUpdate(ctx, body, strlen(body)) != 1 || EVP_DigestFinal_ex(ctx, d, &n) != 1)
                abort(); /* SHA-256 of memory fails only when out of memory */
        EVP_MD_CTX_free(ctx);
        snprintf(buf, size, "ob_");
        for (unsigned i = 0; i < 16 && 3 + 2 * i + 2 < size; i++)
                snprintf(buf + 3 + 2 * i, 3, "%02x", d[i]);
}

/* The site's words from an error answer ({"error","field","message"}), or a summary. */
static void site_words(const struct http_response *resp, char *buf, size_t size)
{
        json_t *o = json_loadb(resp->body, resp->len, 0, NULL);
        const char *error = json_string_value(json_object_get(o, "error"));
        const char *field = json_string_value(json_object_get(o, "field"));
        const char *message = json_string_value(json_object_get(o, "message"));

        if (error)
                snprintf(buf, size, "HTTP %ld %s%s%s%s%s", resp->status, error,
                         field ? " " : "", field ? field : "", message ? ": " : "",
                         message ? message : "");
        else
                snprintf(buf, size, "HTTP %ld, the answer is not the status endpoint's JSON "
                         "(%zu bytes)", resp->status, resp->len);
        json_decref(o);
}

/* A 200: did the site do what was asked? 0 when it did, else -EPROTO with why. */
static int check_done(const struct http_response *resp, const struct snapshot *s,
                      const struct tell *t, char *why, size_t size)
{
        json_t *o = json_loadb(resp->body, resp->len, 0, NULL);
        const char *status = json_string_value(json_object_get(o, "status"));
        json_t *canceled = json_object_get(o, "canceled");
        const char *deal = json_string_value(json_object_get(o, "deal_id"));
        const char *order = json_string_value(json_object_get(o, "order_id"));
        int r = -EPROTO;

        if (!json_is_object(o) || !order || strcmp(order, s->order_id) != 0 || !status ||
            !json_is_boolean(canceled))
                snprintf(why, size, "HTTP 200 without the order's state (order_id, status, "
                         "canceled): is the module up to date?");
        else if (t->has_want && t->want.cancel && !json_is_true(canceled))
                snprintf(why, size, "HTTP 200, yet the site did not cancel the order");
        else if (t->has_want && !t->want.cancel && (strcmp(status, t->want.status) != 0 ||
                                               json_is_true(canceled)))
                snprintf(why, size, "HTTP 200, yet the order is at status %.16s%s, not %s",
                         status, json_is_true(canceled) ? " (canceled)" : "", t->want.status);
        else if (t->deal_id[0] && (!deal || strcmp(deal, t->deal_id) != 0))
                snprintf(why, size, "HTTP 200, yet the site did not keep deal %s: is the "
                         "module up to date?", t->deal_id);
        else
                r = 0;
        json_decref(o);
        return r;
}

/* One request and its verdict. Returns 0, or -EACCES / -EAGAIN for the whole sink. */
static int tell_site(struct site *site, struct store_writes *w, const struct store_work *work,
                     const struct snapshot *s, const struct tell *t, struct sink_outcome *out)
{
        char id[40], ts[24], sig[128], h_id[64], h_ts[48], h_sig[160];
        const char *headers[] = {"Content-Type: application/json", "Accept: application/json",
                                 h_id, h_ts, h_sig, NULL};
        struct http_response resp = {0};
        char *body = request_body(site, s, t);
        int64_t now = (int64_t)time(NULL);
        int rc, st = 0;

        message_id(s->order_id, work->rev, t, body, id, sizeof(id));
        snprintf(ts, sizeof(ts), "%lld", (long long)now);
        if (signature_sign(&site->cfg->site_status_key, id, now, body, strlen(body), sig,
                           sizeof(sig)) < 0)
                abort(); /* the buffer is sized for the signature */
        snprintf(h_id, sizeof(h_id), "webhook-id: %s", id);
        snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %s", ts);
        snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s", sig);
        rc = http_client_post(site->http, site->cfg->site_status_url, headers, body,
                              strlen(body), &resp);
        free(body);
        if (rc < 0) {
                out->kind = STORE_TEMPFAIL;
                out->uncertain = rc != -ECONNREFUSED;
                snprintf(out->detail, sizeof(out->detail), "transport: %s", resp.error);
                st = -EAGAIN;
        } else if (resp.status == 200) {
                if (check_done(&resp, s, t, out->detail, sizeof(out->detail)) < 0) {
                        out->kind = STORE_PERMFAIL;
                } else {
                        out->kind = STORE_OK;
                        if (t->deal_id[0])
                                store_writes_link(w, s->order_id, SITE_DEAL_LINK, t->deal_id);
                }
        } else {
                site_words(&resp, out->detail, sizeof(out->detail));
                if (resp.status == 401 || resp.status == 403) {
                        out->kind = STORE_TEMPFAIL; /* the secrets disagree: pause, loudly */
                        st = -EACCES;
                } else if (resp.status >= 400 && resp.status < 500 && resp.status != 408 &&
                           resp.status != 429) {
                        out->kind = STORE_PERMFAIL; /* refused (409, 422), invalid, no order */
                } else {
                        out->kind = STORE_TEMPFAIL;
                        out->retry_after_ms = resp.retry_after_s > 0 ? resp.retry_after_s * 1000
                                                                     : 0;
                        out->uncertain = resp.status >= 500;
                        st = -EAGAIN;
                }
        }
        http_response_clear(&resp);
        return st;
}

/* What the site must hear about one order; 0, or -errno when a store read failed. */
static int what_to_tell(struct store *st, const struct snapshot *s, int64_t received_ms,
                        struct tell *t)
{
        char want[512], deal[32], told[32];
        int r;

        memset(t, 0, sizeof(*t));
        if ((r = link_or_empty(st, s->order_id, SITE_WANT_LINK, want, sizeof(want))) < 0 ||
            (r = link_or_empty(st, s->order_id, "b24.deal", deal, sizeof(deal))) < 0 ||
            (r = link_or_empty(st, s->order_id, SITE_DEAL_LINK, told, sizeof(told))) < 0)
                return r;
        read_want(want, s, received_ms, t);
        /* a deal id, not the "pending" mark of a create whose outcome is unknown */
        if (deal[0] && strspn(deal, "0123456789") == strlen(deal) && strcmp(deal, told) != 0)
                snprintf(t->deal_id, sizeof(t->deal_id), "%s", deal);
        return 0;
}

static int deliver(void *ctx, struct store *store, struct store_writes *writes,
                   const struct store_work *works, size_t n, struct sink_outcome *out)
{
        struct site *site = ctx;

        for (size_t i = 0; i < n; i++) {
                struct snapshot_error err;
                struct snapshot *s = NULL;
                struct tell t;
                int r;

                if (atomic_load(&site->stopping)) {
                        for (size_t j = i; j < n; j++) {
                                out[j].kind = STORE_TEMPFAIL;
                                snprintf(out[j].detail, sizeof(out[j].detail),
                                         "not sent: the daemon is stopping");
                        }
                        return -ECANCELED;
                }
                if (snapshot_parse(works[i].json, strlen(works[i].json), &s, &err) < 0) {
                        out[i].kind = STORE_PERMFAIL;
                        snprintf(out[i].detail, sizeof(out[i].detail),
                                 "stored snapshot unreadable: %s %s", err.field, err.message);
                        continue;
                }
                if ((r = what_to_tell(store, s, works[i].received_at, &t)) < 0) {
                        snapshot_free(s);
                        return -EIO; /* the rest are TEMPFAIL: nothing was sent for them */
                }
                if (!t.has_want && !t.deal_id[0]) {
                        out[i].kind = STORE_OK; /* nothing the site does not know */
                        snapshot_free(s);
                        continue;
                }
                r = tell_site(site, writes, &works[i], s, &t, &out[i]);
                snapshot_free(s);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void site_stop(void *ctx)
{
        struct site *site = ctx;

        atomic_store(&site->stopping, true);
}

static void site_free(void *ctx)
{
        struct site *site = ctx;

        if (!site)
                return;
        http_client_free(site->http);
        free(site);
}

static const struct sink_ops site_ops = {
        .name = "site",
        .batch_max = BATCH,
        .deliver = deliver,
        .stop = site_stop,
        .free = site_free,
};

bool sink_site_enabled(const struct config *cfg)
{
        return cfg->site_status_url != NULL;
}

int sink_site_new(const struct config *cfg, const struct sink_ops **ret_ops, void **ret_ctx)
{
        struct site *site;

        if (!sink_site_enabled(cfg) || !cfg->has_site_status_key)
                return -EINVAL;
        site = xcalloc(1, sizeof(*site));
        site->cfg = cfg;
        /* a status change is not an upsert: never re-sent silently on a reused connection */
        site->http = http_client_new(TIMEOUT_MS, MAX_ANSWER, false);
        if (!site->http) {
                free(site);
                return -ENOMEM;
        }
        http_client_measure(site->http, "site");
        portal_origin(cfg, site->portal, sizeof(site->portal));
        atomic_init(&site->stopping, false);
        site->ops = site_ops;
        *ret_ops = &site->ops;
        *ret_ctx = site;
        return 0;
}

int sink_site_report(const struct config *cfg)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        CURLU *u = curl_url();
        char *host = NULL;

        if (u && curl_url_set(u, CURLUPART_URL, cfg->site_status_url, 0) == CURLUE_OK)
                curl_url_get(u, CURLUPART_HOST, &host, 0);
        printf("  site: status endpoint on %s; %s\n", host ? host : "?",
               conf ? "deal stages move site orders back, deal ids reach the site"
                    : "[bitrix24] is off: nothing to tell the site");
        for (size_t i = 0; i < cfg->site_map.n; i++)
                printf("    [site.map] %s → %s\n", cfg->site_map.entries[i].key,
                       cfg->site_map.entries[i].value);
        curl_free(host);
        curl_url_cleanup(u);
        return 0;
}
