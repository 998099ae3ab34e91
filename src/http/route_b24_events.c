/*
 * POST /v1/bitrix24/events: Bitrix24's outgoing webhook (b24restdocs api-reference/events,
 * crm/deals/events/on-crm-deal-add.md): a form with event=ONCRMDEALADD|ONCRMDEALUPDATE,
 * data[FIELDS][ID]=<deal id>, ts, auth[domain], auth[application_token]. The portal posts
 * each event once and never again, so the answer is immediate: the token is checked
 * (constant time; the token itself is never logged, echoed or named in a message), the
 * deal id handed to the Bitrix24 source's queue, and 200 answered. The source fetches
 * the deal and does the work; its poll finds whatever an event lost, so a full queue is
 * only a warning. The only place a Bitrix24 event becomes an HTTP status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "base/log.h"
#include "http/form.h"
#include "http/route.h"
#include "sinks/bitrix24_conf.h"
#include "sources/b24_deal.h"

#define TOKEN_MAX 256 /* a longer token is not ours: refused as any wrong one */
#define EVENT_MAX 64
#define DOMAIN_MAX 255 /* a host name */

static int refuse_not_configured(struct http_request *rq)
{
        log_warn("b24.event_refused", "reason=not_configured what=\"no [bitrix24] "
                                      "application_token_file\"");
        return http_request_reply_error(rq, 503, "not_configured", NULL,
                                        "no application token is configured ([bitrix24] "
                                        "application_token_file)");
}

/* Before the body: without a token nothing can be checked, so nothing is read. */
static int events_check_headers(const struct http_env *env, void *state, struct http_request *rq)
{
        const struct b24_conf *bc = b24_conf_get(env->cfg);

        (void)state;
        return bc && bc->application_token ? 0 : refuse_not_configured(rq);
}

/* Whether the form's auth[application_token] is the configured one: a length check,
 * then CRYPTO_memcmp over the whole length. */
static bool token_ok(const char *body, size_t len, const char *want, const char **ret_reason)
{
        char *got = NULL;
        int r = http_form_value(body, len, "auth[application_token]", TOKEN_MAX, &got);
        bool ok;

        if (r < 0) {
                *ret_reason = r == -ENOENT ? "missing" : "malformed";
                return false;
        }
        ok = strlen(got) == strlen(want) && CRYPTO_memcmp(got, want, strlen(want)) == 0;
        OPENSSL_cleanse(got, strlen(got));
        free(got);
        *ret_reason = "wrong";
        return ok;
}

/* A field's value: 0 and *ret (caller frees), or answers 400 naming the field and returns
 * -1. A field that is absent is 400 only when `required` (then *ret is NULL). */
static int field(struct http_request *rq, const char *body, size_t len, const char *name,
                 size_t max, bool required, char **ret)
{
        char msg[160];
        int r = http_form_value(body, len, name, max, ret);

        if (r == 0 || (r == -ENOENT && !required)) {
                if (r == -ENOENT)
                        *ret = NULL;
                return 0;
        }
        if (r == -ENOENT)
                snprintf(msg, sizeof(msg), "%s is required", name);
        else if (r == -E2BIG)
                snprintf(msg, sizeof(msg), "%s is longer than %zu bytes", name, max);
        else
                snprintf(msg, sizeof(msg), "%s must not contain NUL characters", name);
        log_warn("b24.event_invalid", "field=%s message=\"%s\"", name, msg);
        http_request_reply_error(rq, 400, "invalid_field", name, msg);
        return -1;
}

/* Hands the deal id to the source and answers. */
static int accept_deal(const struct http_env *env, struct http_request *rq, const char *event,
                       const char *id)
{
        struct source *src = http_env_source(env, "bitrix24");
        char json[128];
        int r = src ? source_notify(src, id) : -ESRCH;

        if (r == -ENOSPC) {
                log_warn("b24.event_queue_full", "event=%s deal_id=%s what=\"left to the poll\"",
                         event, id);
                snprintf(json, sizeof(json),
                         "{\"accepted\":false,\"deal_id\":\"%s\",\"reason\":\"queue_full\"}", id);
                return http_request_reply(rq, 200, json, 0, NULL);
        }
        if (r < 0) {
                log_err("b24.event_refused", "reason=no_source event=%s deal_id=%s error=\"%s\"",
                        event, id, strerror(-r));
                return http_request_reply_error(rq, 503, "not_running", NULL,
                                                "the Bitrix24 source is not running");
        }
        log_info("b24.event", "event=%s deal_id=%s", event, id);
        snprintf(json, sizeof(json), "{\"accepted\":true,\"deal_id\":\"%s\"}", id);
        return http_request_reply(rq, 200, json, 0, NULL);
}

static int events_handle(const struct http_env *env, void *state, struct http_request *rq)
{
        const struct b24_conf *bc = b24_conf_get(env->cfg);
        const char *reason;
        char *event = NULL, *id = NULL, *domain = NULL;
        size_t len;
        const char *body = http_request_body(rq, &len);
        int r;

        (void)state;
        if (!bc || !bc->application_token)
                return refuse_not_configured(rq);
        /* the token first: who does not have it learns nothing about the rest */
        if (!token_ok(body, len, bc->application_token, &reason)) {
                /* the sender's domain, for the operator; it proves nothing */
                if (http_form_value(body, len, "auth[domain]", DOMAIN_MAX, &domain) < 0)
                        domain = NULL;
                log_warn("b24.event_refused", "reason=bad_token why=%s domain=%s", reason,
                         domain ? domain : "");
                free(domain);
                return http_request_reply_error(rq, 401, "bad_token", "auth[application_token]",
                                                "auth[application_token] is not this "
                                                "outgoing webhook's application token");
        }
        if (field(rq, body, len, "event", EVENT_MAX, true, &event) < 0)
                return 0;
        if (strcasecmp(event, "ONCRMDEALADD") != 0 && strcasecmp(event, "ONCRMDEALUPDATE") != 0) {
                log_debug("b24.event_ignored", "event=%s", event);
                free(event);
                return http_request_reply(rq, 200, "{\"ignored\":true}", 0, NULL);
        }
        if (field(rq, body, len, "data[FIELDS][ID]", B24_DEAL_ID_MAX, true, &id) < 0) {
                free(event);
                return 0;
        }
        if (!b24_deal_id_valid(id)) {
                log_warn("b24.event_invalid",
                         "event=%s field=data[FIELDS][ID] message=\"not a "
                         "deal id\"",
                         event);
                r = http_request_reply_error(rq, 400, "invalid_field", "data[FIELDS][ID]",
                                             "data[FIELDS][ID] must be a deal id (1-18 digits)");
        } else {
                r = accept_deal(env, rq, event, id);
        }
        free(event);
        free(id);
        return r;
}

const struct http_route route_b24_events = {
    .methods = "POST",
    .path = "/v1/bitrix24/events",
    .body = HTTP_BODY_FORM,
    .check_headers = events_check_headers,
    .handle = events_handle,
};
