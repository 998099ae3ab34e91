/*
 * POST /v1/orders: the site's signed order snapshots. Checked here, in the HTTP thread —
 * the signature headers before the body is read, the signature over the body, then the
 * snapshot's fields, then the site — so a refusal is answered at once and touches
 * nothing. A valid snapshot is handed to the intake and the request held; the
 * intake's committer calls `stored` after the fsync, which answers 202/200/409/503. So
 * the sender hears "accepted" only for what is durable, and concurrent senders share one
 * fsync. The only place the negative codes of signature_verify and the intake's outcomes
 * become HTTP statuses.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "base/log.h"
#include "http/route.h"
#include "http/signature.h"
#include "model/snapshot.h"

static char *outcome_json(const char *order_id, const char *what, bool duplicate)
{
        json_t *doc =
            json_pack("{s:s, s:b, s:b}", "order_id", order_id, what, 1, "duplicate", duplicate);
        char *text = json_dumps(doc, JSON_COMPACT);

        json_decref(doc);
        return text;
}

/* The intake's verdict, from its committer thread: log it, answer the held request. */
static void stored(void *userdata, const struct intake_result *res)
{
        struct http_request *rq = userdata;
        const struct snapshot *s = res->snap;
        bool dup = res->outcome == STORE_PUT_DUPLICATE;
        enum store_put_outcome o = dup ? res->first_outcome : res->outcome;

        log_info("ingest.stored", "order_id=%s version=%lld rev=%lld outcome=%s webhook_id=%s",
                 s->order_id, s->has_version ? (long long)s->version : -1LL, (long long)res->rev,
                 store_outcome_name(res->outcome), res->webhook_id);
        switch (o) {
        case STORE_PUT_ACCEPTED:
                http_request_resume(rq, 202, outcome_json(s->order_id, "accepted", dup), 0);
                break;
        case STORE_PUT_STALE:
                http_request_resume(rq, 200, outcome_json(s->order_id, "stale", dup), 0);
                break;
        case STORE_PUT_CONFLICT:
                http_request_resume(rq, 409,
                                    http_error_json("webhook_id_reused", "webhook-id",
                                               "this webhook-id was already used for a "
                                               "different body; a new snapshot needs a new "
                                               "webhook-id"),
                                    0);
                break;
        default:
                http_request_resume(rq, 503,
                                    http_error_json("store_unavailable", NULL,
                                               "the order could not be stored; nothing was "
                                               "accepted, send it again"),
                                    5);
                break;
        }
}

/* Which header a refusal of signature_verify names. */
static const char *signature_field(int r)
{
        switch (r) {
        case -EINVAL:
                return "webhook-id";
        case -EDOM:
        case -ERANGE:
                return "webhook-timestamp";
        default:
                return "webhook-signature";
        }
}

/* Answers a refusal of signature_check_headers or signature_verify (r < 0). */
static int refuse_signature(struct http_request *rq, int r)
{
        log_warn("ingest.unauthorized", "reason=\"%s\"", signature_strerror(r));
        return http_request_reply_error(rq, 401, "bad_signature", signature_field(r),
                                        signature_strerror(r));
}

static int refuse_not_configured(struct http_request *rq)
{
        return http_request_reply_error(rq, 503, "not_configured", NULL,
                                        "no signing secret is configured ([server] "
                                        "signing_secret_file)");
}

/* On the headers, before the body: everything but the HMAC, so that a sender without
 * the secret's headers never makes the server buffer its body. */
static int orders_check_headers(const struct http_env *env, void *state, struct http_request *rq)
{
        int r;

        (void)state;
        if (!env->cfg->has_signing_key)
                return refuse_not_configured(rq);
        r = signature_check_headers(http_request_header(rq, "webhook-id"),
                                    http_request_header(rq, "webhook-timestamp"),
                                    http_request_header(rq, "webhook-signature"), time(NULL));
        return r < 0 ? refuse_signature(rq, r) : 0;
}

/* Signature, fields, site: NULL (answered) when refused, else the snapshot. The headers
 * were checked before the body came; they are checked again with it (the clock moved). */
/* 400, the field named, and its message as "field message". */
static void refuse_invalid(struct http_request *rq, const struct snapshot_error *err)
{
        char msg[300];

        snprintf(msg, sizeof(msg), "%s %s", err->field, err->message);
        http_request_reply_error(rq, 400, "invalid_field", err->field, msg);
}

static struct snapshot *check(const struct config *cfg, struct http_request *rq, const char *body,
                              size_t len)
{
        struct snapshot_error err;
        struct snapshot *snap;
        int r;

        if (!cfg->has_signing_key) {
                refuse_not_configured(rq);
                return NULL;
        }
        r = signature_verify(&cfg->signing_key, http_request_header(rq, "webhook-id"),
                             http_request_header(rq, "webhook-timestamp"),
                             http_request_header(rq, "webhook-signature"), body, len, time(NULL));
        if (r < 0) {
                refuse_signature(rq, r);
                return NULL;
        }
        if (snapshot_parse(body, len, &snap, &err) < 0) {
                log_warn("ingest.invalid", "webhook_id=%s field=%s message=\"%s\"",
                         http_request_header(rq, "webhook-id"), err.field, err.message);
                refuse_invalid(rq, &err);
                return NULL;
        }
        if (snapshot_check_from_site(snap, cfg->site_id, &err) < 0) {
                log_warn("ingest.invalid", "order_id=%s field=%s message=\"%s\"", snap->order_id,
                         err.field, err.message);
                refuse_invalid(rq, &err);
                snapshot_free(snap);
                return NULL;
        }
        if (snap->visit_dropped)
                log_warn("ingest.visit_dropped",
                         "order_id=%s reason=\"roistat_visit must be 1-%d digits\"", snap->order_id,
                         SNAPSHOT_VISIT_MAX);
        return snap;
}

static int orders_handle(const struct http_env *env, void *state, struct http_request *rq)
{
        struct intake_item item = {.source = "ingest"};
        unsigned int dlen;
        size_t len;
        const char *body = http_request_body(rq, &len);
        char *json;
        bool held;
        int r;

        item.snap = check(env->cfg, rq, body, len);
        if (!item.snap)
                return 0;
        item.webhook_id = http_request_header(rq, "webhook-id");
        EVP_Digest(body, len, item.body_sha256, &dlen, EVP_sha256(), NULL);

        held = http_request_hold(rq) == 0;
        r = held ? intake_submit(env->intake, &item, stored, rq) : -ESHUTDOWN;
        if (r == 0)
                return 0; /* `stored` answers */
        snapshot_free(item.snap);
        json = http_error_json("shutting_down", NULL, "orderbridge is stopping; send it again");
        if (held) {
                http_request_resume(rq, 503, json, 5);
                return 0;
        }
        r = http_request_reply(rq, 503, json, 5, NULL);
        free(json);
        return r;
}

const struct http_route route_orders = {
    .methods = "POST",
    .path = "/v1/orders",
    .body = HTTP_BODY_JSON,
    .check_headers = orders_check_headers,
    .handle = orders_handle,
};
