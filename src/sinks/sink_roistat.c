/*
 * Roistat: add-orders is an upsert keyed by order id, so any re-send is safe and a
 * batch that failed as a whole is simply sent again. The answer is read with
 * `Use-Http-Code: 1`, so HTTP statuses mean what they say:
 *   transport error, 429, 5xx → the remote is unwell: pause the sink, retry later
 *   401/403                   → credentials refused: pause long, log loudly
 *   other 4xx                 → this data is refused: isolate the order (re-send the batch
 *                               one by one) and dead-letter only the one at fault
 * A 200 is a success only with "status":"success"; any other 200 is read by its error
 * code as one of those three (none, or no JSON: the remote is unwell).
 *
 * An order is done only when Roistat says it took it: no skip counter, and saved (or
 * uploaded) plus skipped_because_not_changed (it has it already) cover every order sent.
 * The counters are per batch, so a batch not wholly taken is re-sent one order at a time
 * to learn each one's verdict. That isolation stops at the first answer that is not
 * about the order's own data (the remote is unwell: the rest would only wait out their
 * timeouts one by one), and at a stop of the daemon. Alone, an order skipped
 *   by_invalid_format        → dead letter in Roistat's words
 *   by_internal_error, or by no counter at all → retry (a dead letter after the lifetime)
 *   by_status                → Roistat's dictionary is not ours (set-statuses replaces it
 *                              whole, for every integration of the project): send ours
 *                              again, once a pass, and the order; still skipped → dead
 *                              letter naming the status
 *   by_waiting_visit_info    → Roistat has not seen the visit yet: look again after
 *                              visit_wait_s, visit_wait_max times; then the order is sent
 *                              without the visit, so that its revenue reaches Roistat as
 *                              a direct visit — said in the verdict the order's history
 *                              keeps, and logged (roistat.visit_given_up, .visit_dropped);
 *                              later snapshots go without it until one is taken, and
 *                              after that try the visit again (Roistat may know it now)
 *
 * The dictionary sent with set-statuses is remembered by its hash in meta
 * "roistat.statuses_sha256", written through the dispatcher's `writes`, and only after
 * Roistat answered it with "status":"success"; a refusal of the dictionary itself
 * dead-letters the orders waiting on it in Roistat's words.
 */
#include "sinks/sink_roistat.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "base/clock.h"
#include "http/client.h"
#include "base/log.h"
#include "model/money.h"
#include "model/order_template.h"
#include "base/ratelimit.h"
#include "base/utf8.h"
#include "base/xalloc.h"

#define MAX_ANSWER (1024 * 1024)
#define STATUSES_KEY "roistat.statuses_sha256"

struct roistat {
        struct sink_ops ops;
        const struct config *cfg;
        const struct roistat_conf *conf; /* [roistat] */
        struct http_client *http;
        struct ratelimit rl;
        char *statuses_body;  /* canonical set-statuses body */
        char statuses_hash[65];
        bool statuses_sent;
        char url_orders[1200], url_statuses[1200];
        char header_key[4200];
        atomic_bool stopping; /* set by roistat_stop from another thread */
};

json_t *roistat_statuses_json(const struct roistat_conf *conf)
{
        json_t *arr = json_array();

        for (size_t i = 0; i < conf->n_statuses; i++)
                /* set-statuses replaces the whole dictionary: a status left out would fall
                 * into "не учитывается", so one that cannot be encoded fails them all */
                if (json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "id",
                                                         conf->statuses[i].id, "name",
                                                         conf->statuses[i].name, "type",
                                                         conf->statuses[i].type)) < 0) {
                        json_decref(arr);
                        return NULL;
                }
        return arr;
}

/* The custom fields an order may carry in "fields", with the names the pull export's
 * import_scheme gives them: the one list of them (a unit test holds roistat_order_json
 * to it). */
static const struct roistat_field fields_table[] = {
        {"currency", "Currency"},
        {"account_number", "Order number on the site"},
        {"buyer_name", "Buyer"},
        {"buyer_phone", "Buyer's phone"},
        {"buyer_email", "Buyer's e-mail"},
        {"company", "Company"},
        {"inn", "INN"},
        {"source", "Source (bitrix24: a deal made in the CRM)"},
        {"deal_id", "Bitrix24 deal id"},
        /* issue #13: named as Roistat's own Bitrix module names them where it has a name
         * (roistat.integration's export: PAY_SYSTEM_NAME, DELIVERY_NAME; reference
         * roistat.md 2.3), in orderbridge's lower case otherwise */
        {"site", "Storefront (Bitrix site id, LID)"},
        {"DELIVERY_NAME", "Delivery"},
        {"PAY_SYSTEM_NAME", "Payment systems"},
        {"coupons", "Coupons"},
        {"sum_paid", "Sum paid"},
        {"comment", "Buyer's comment"},
        {"utm_source", "UTM source"},
        {"utm_medium", "UTM medium"},
        {"utm_campaign", "UTM campaign"},
        {"utm_content", "UTM content"},
        {"utm_term", "UTM term"},
};

const struct roistat_field *roistat_fields(size_t *ret_n)
{
        *ret_n = sizeof(fields_table) / sizeof(fields_table[0]);
        return fields_table;
}

/* Sets obj[key] to the text `value` when it is not NULL; false when jansson refuses it
 * (not UTF-8). */
static bool set_text(json_t *obj, const char *key, const char *value)
{
        return !value || json_object_set_new(obj, key, json_string(value)) == 0;
}

/* Roistat keeps up to 1000 characters of a custom field's value (roistat.md 1.1): a
 * longer value is cut there, between characters, rather than refused or cut by Roistat. */
#define FIELD_VALUE_MAX_CHARS 1000

static bool set_field(json_t *obj, const char *key, const char *value)
{
        size_t n;

        if (!value)
                return true;
        n = utf8_prefix(value, FIELD_VALUE_MAX_CHARS);
        if (!value[n])
                return set_text(obj, key, value);
        char *cut = xstrndup(value, n);
        bool ok = set_text(obj, key, cut);
        free(cut);
        return ok;
}

/* A list of the order's texts joined with ", " (coupons, payment systems), or NULL. */
static char *joined(const struct snapshot *s, const char *placeholder)
{
        char *v = order_template_expand(placeholder, s);

        if (!v[0]) {
                free(v);
                return NULL;
        }
        return v;
}

/* The fields of issue #13 and the configured ones ([roistat.fields], then the storefront's
 * [roistat.site LID], each replacing a field of the same name). */
static bool order_fields_more(const struct roistat_conf *conf, const struct snapshot *s,
                              json_t *f)
{
        char *coupons = joined(s, "{coupons}"), *payments = joined(s, "{payments}");
        char paid[32];
        bool ok = set_field(f, "site", s->lid);

        ok = set_field(f, "DELIVERY_NAME", s->delivery.name) && ok;
        ok = set_field(f, "PAY_SYSTEM_NAME", payments) && ok;
        ok = set_field(f, "coupons", coupons) && ok;
        if (s->has_sum_paid) {
                money_format(s->sum_paid_minor, paid, sizeof(paid));
                ok = set_field(f, "sum_paid", paid) && ok;
        }
        ok = set_field(f, "comment", s->comment) && ok;
        for (size_t i = 0; i < SNAPSHOT_UTM_N; i++) {
                char key[32];
                snprintf(key, sizeof(key), "utm_%s", snapshot_utm_names[i]);
                ok = set_field(f, key, s->utm[i]) && ok;
        }
        free(coupons);
        free(payments);
        for (int pass = 0; conf && pass < 2; pass++)
                for (size_t i = 0; i < conf->n_rules; i++) {
                        const struct roistat_field_rule *r = &conf->rules[i];
                        char *v;
                        if (!r->name || (pass == 0) != (r->site == NULL) ||
                            (r->site && (!s->lid || strcmp(r->site, s->lid) != 0)))
                                continue;
                        v = order_template_expand(r->tpl, s);
                        ok = set_field(f, r->name, v) && ok;
                        free(v);
                }
        return ok;
}

/* "fields": the currency and the buyer; a site order's account number, or a deal's
 * origin (source bitrix24 and its id: a deal made in the CRM has no account number, and
 * its order id "b24-deal-<ID>" must not pass for one); then order_fields_more's. NULL when
 * a text is not UTF-8. */
static json_t *order_fields(const struct roistat_conf *conf, const struct snapshot *s)
{
        json_t *f = json_object();
        bool ok = set_text(f, "currency", s->currency);

        if (s->deal_id)
                ok = set_text(f, "source", "bitrix24") && set_text(f, "deal_id", s->deal_id) &&
                     ok;
        else
                ok = set_text(f, "account_number", s->account_number) && ok;
        ok = set_text(f, "buyer_name", s->buyer.name) && ok;
        ok = set_text(f, "buyer_phone", s->buyer.phone) && ok;
        ok = set_text(f, "buyer_email", s->buyer.email) && ok;
        ok = set_text(f, "company", s->buyer.company) && ok;
        ok = set_text(f, "inn", s->buyer.inn) && ok;
        if (!s->deal_id)
                ok = order_fields_more(conf, s, f) && ok;
        if (!ok) {
                json_decref(f);
                return NULL;
        }
        return f;
}

/* The order's name in Roistat: a site order's from [roistat] name_template (by default
 * "Order <account number>") or its storefront's, "Deal <ID>: <title>" (or "Deal <ID>") for
 * a deal made in Bitrix24. */
static void order_name(const struct roistat_conf *conf, const struct snapshot *s, char *buf,
                       size_t size)
{
        if (!s->deal_id) {
                char *name = order_template_expand(roistat_conf_name_template(conf, s), s);
                utf8_copy(name, buf, size);
                free(name);
        } else if (s->deal_title && s->deal_title[0])
                snprintf(buf, size, "Deal %s: %s", s->deal_id, s->deal_title);
        else
                snprintf(buf, size, "Deal %s", s->deal_id);
}

/* Why no status maps: the site's status code, or the deal's stage. */
static void no_status(const struct snapshot *s, char *why, size_t why_size)
{
        if (!s->deal_id)
                snprintf(why, why_size, "site status \"%s\" has no entry in [roistat.map]",
                         s->status);
        else
                snprintf(why, why_size,
                         "deal stage \"%s\" has no entry in [roistat.stage_map], and "
                         "[roistat.statuses] has no status of type %s for it",
                         s->status, roistat_conf_deal_type(s));
}

json_t *roistat_order_json(const struct roistat_conf *conf, const struct snapshot *s, char *why,
                           size_t why_size)
{
        const char *status = roistat_conf_status_for(conf, s);
        char price[32], name[1024]; /* a template's name, cut; or "Deal " + 18 digits + ": " +
                                      * a 255-byte title */
        json_t *o, *fields;
        bool ok;

        if (!status) {
                no_status(s, why, why_size);
                return NULL;
        }
        /* "cancelled" is whatever maps to a status of type canceled: the flag (a deal's
         * failure stage), or a status code such as C */
        const struct roistat_status *rs = roistat_conf_status(conf, status);
        if (conf->canceled_price_zero && (s->canceled ||
                                           (rs && strcmp(rs->type, "canceled") == 0)))
                snprintf(price, sizeof(price), "0");
        else
                money_format(s->price_minor, price, sizeof(price));
        order_name(conf, s, name, sizeof(name));
        /* jansson refuses only a text that is not UTF-8 (its allocations abort on OOM):
         * none is expected (snapshot texts were parsed as JSON, map values are ids), but
         * an order is never sent with a member missing */
        o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", s->order_id, "name", name,
                      "date_create", (json_int_t)s->created_at, "status", status, "price", price);
        ok = o != NULL;
        if (s->roistat_visit)
                ok = json_object_set_new(o, "roistat", json_string(s->roistat_visit)) == 0 && ok;
        if (s->has_cost) {
                money_format(s->cost_minor, price, sizeof(price));
                ok = json_object_set_new(o, "cost", json_string(price)) == 0 && ok;
        }
        fields = order_fields(conf, s);
        ok = fields && json_object_set_new(o, "fields", fields) == 0 && ok;
        if (!ok) {
                json_decref(o);
                snprintf(why, why_size, "the order could not be encoded: a text is not "
                         "valid UTF-8");
                return NULL;
        }
        return o;
}

/* One pass of deliver(): what each request in it needs, and what it has learnt. */
struct pass {
        struct store *store;
        struct store_writes *writes;
        const struct store_work *works;
        struct sink_outcome *out;
        bool statuses_resent; /* set-statuses was sent again in this pass, after a skip */
};

/* POST with the client-side rate limit. */
static int post(struct roistat *r, const char *url, const char *body, struct http_response *ret)
{
        const char *headers[] = {"Content-Type: application/json", "Accept: application/json",
                                 "Use-Http-Code: 1", r->header_key, NULL};

        ratelimit_acquire(&r->rl);
        return http_client_post(r->http, url, headers, body, strlen(body), ret);
}

static int64_t counter(json_t *doc, const char *key)
{
        json_t *v = json_object_get(doc, key);
        if (json_is_integer(v))
                return json_integer_value(v);
        if (json_is_string(v))
                return strtoll(json_string_value(v), NULL, 10);
        return 0;
}

int roistat_answer_parse(const char *body, size_t len, struct roistat_answer *ret)
{
        json_t *doc = json_loadb(body, len, 0, NULL);
        const char *status, *code, *desc, *comment;

        memset(ret, 0, sizeof(*ret));
        if (!json_is_object(doc)) {
                json_decref(doc);
                return -EINVAL;
        }
        status = json_string_value(json_object_get(doc, "status"));
        ret->success = status && strcmp(status, "success") == 0;
        ret->has_processed = json_object_get(doc, "processed") != NULL;
        ret->processed = counter(doc, "processed");
        ret->saved = counter(doc, "saved");
        ret->uploaded = counter(doc, "uploaded");
        ret->not_changed = counter(doc, "skipped_because_not_changed");
        ret->by_status = counter(doc, "skipped_by_status");
        ret->waiting_visit = counter(doc, "skipped_by_waiting_visit_info");
        ret->invalid_format = counter(doc, "skipped_by_invalid_format");
        ret->internal_error = counter(doc, "skipped_by_internal_error");
        code = json_string_value(json_object_get(doc, "error"));
        /* the docs name the field "message"; live projects fill "description" */
        desc = json_string_value(json_object_get(doc, "description"));
        if (!desc)
                desc = json_string_value(json_object_get(doc, "message"));
        comment = json_string_value(json_object_get(doc, "comment"));
        snprintf(ret->status, sizeof(ret->status), "%s", status ? status : "");
        snprintf(ret->error, sizeof(ret->error), "%s", code ? code : "");
        snprintf(ret->description, sizeof(ret->description), "%s", desc ? desc : "");
        snprintf(ret->comment, sizeof(ret->comment), "%s", comment ? comment : "");
        json_decref(doc);
        return 0;
}

/* "HTTP 401 authentication_failed: …", "HTTP 200 without "status":"success"" or
 * "transport: …", for logs and dead letters. A body that is not JSON is not quoted: it
 * is not Roistat's words (a proxy's page, say) and could be anything. */
static void describe(const struct http_response *resp, int rc, char *buf, size_t size)
{
        struct roistat_answer a;

        if (rc < 0) {
                snprintf(buf, size, "transport: %s", resp->error);
                return;
        }
        if (roistat_answer_parse(resp->body, resp->len, &a) < 0)
                snprintf(buf, size, "HTTP %ld, the answer is not a JSON object (%zu bytes)",
                         resp->status, resp->len);
        else if (a.error[0] || a.description[0] || a.success)
                snprintf(buf, size, "HTTP %ld%s%s%s%s", resp->status, a.error[0] ? " " : "",
                         a.error, a.description[0] ? ": " : "", a.description);
        else if (a.status[0])
                snprintf(buf, size, "HTTP %ld \"status\":\"%s\", not \"success\"", resp->status,
                         a.status);
        else
                snprintf(buf, size, "HTTP %ld without \"status\":\"success\"", resp->status);
}

/* What an error code in Roistat's envelope means (codes: n8n-nodes-roistat
 * helpers/errors.ts, shared/reference/roistat.md section 0): the key or the account
 * (-EACCES), this request's data (0), or anything else, unknown codes included: the
 * remote is unwell (-EAGAIN), retried until the delivery lifetime. */
static int code_class(const char *code)
{
        static const char *const account[] = {"authentication_failed", "authorization_failed",
                                              "access_denied",         "insufficient_funds",
                                              "option_not_available",  "option_not_enabled",
                                              "option_not_paid",       "project_frozen"};
        static const char *const data[] = {"request_data_validation_error", "incorrect_request",
                                           "resource_not_found", "resource_already_exists"};

        for (size_t i = 0; i < sizeof(account) / sizeof(account[0]); i++)
                if (strcmp(code, account[i]) == 0)
                        return -EACCES;
        for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++)
                if (strcmp(code, data[i]) == 0)
                        return 0;
        return -EAGAIN;
}

/* Classifies an answer that is not a success: -EAGAIN (the remote is unwell, or said
 * nothing we can read as a verdict), -EACCES (credentials or account refused), or 0
 * (this data is refused). A 2xx/3xx is read by its envelope's error code: Roistat
 * answers errors with HTTP 200 unless Use-Http-Code takes (n8n transport/index.ts). */
static int classify_failure(const struct http_response *resp, int rc, char *detail, size_t size,
                            int64_t *retry_after_ms)
{
        struct roistat_answer a;

        describe(resp, rc, detail, size);
        *retry_after_ms = resp->retry_after_s > 0 ? resp->retry_after_s * 1000 : 0;
        if (rc < 0 || resp->status == 429 || resp->status >= 500 || resp->status == 408)
                return -EAGAIN;
        if (resp->status == 401 || resp->status == 403 || resp->status == 402)
                return -EACCES;
        if (resp->status >= 400)
                return 0; /* a 4xx about the data: the caller decides per order */
        if (roistat_answer_parse(resp->body, resp->len, &a) < 0 || !a.error[0])
                return -EAGAIN;
        return code_class(a.error);
}

/* Sends the dictionary unless Roistat has it; `force` sends it even so (an add-orders
 * answer said Roistat lacks one of its statuses). It is set only when the answer is
 * {"status":"success"}, what set-statuses answers (roistat.md 1.2): any other answer,
 * HTTP 200 or not, may have left the old dictionary in place, and only then is its hash
 * remembered. Returns 0; -EAGAIN or -EACCES with out->detail (TEMPFAIL); -EPERM when
 * Roistat refused the dictionary itself (its words in out->detail: no retry changes that
 * answer, a corrected [roistat.statuses] does); -EIO when the store could not say
 * whether it was sent (nothing is sent then). */
static int ensure_statuses(struct roistat *r, struct pass *p, struct sink_outcome *out, bool force)
{
        struct http_response resp;
        struct roistat_answer a;
        char why[sizeof(out->detail) - 64];
        const char *pending, *cls;
        char *stored = NULL;
        int rc, st;

        if (!force && r->statuses_sent)
                return 0;
        pending = store_writes_find_meta(p->writes, STATUSES_KEY);
        rc = force || pending ? 0 : store_meta_get(p->store, STATUSES_KEY, &stored);
        if (rc < 0 && rc != -ENOENT) {
                snprintf(out->detail, sizeof(out->detail),
                         "not sent: the store failed reading %s (%s)", STATUSES_KEY,
                         store_errmsg(p->store));
                return -EIO;
        }
        if (!force && rc == 0 && strcmp(pending ? pending : stored, r->statuses_hash) == 0) {
                free(stored);
                r->statuses_sent = true;
                return 0;
        }
        free(stored);
        rc = post(r, r->url_statuses, r->statuses_body, &resp);
        if (rc == 0 && resp.status == 200 && roistat_answer_parse(resp.body, resp.len, &a) == 0 &&
            a.success) {
                store_writes_meta(p->writes, STATUSES_KEY, r->statuses_hash, false);
                r->statuses_sent = true;
                log_info("roistat.statuses_set", "count=%zu forced=%s", r->conf->n_statuses,
                         force ? "yes" : "no");
                http_response_clear(&resp);
                return 0;
        }
        st = classify_failure(&resp, rc, why, sizeof(why), &out->retry_after_ms);
        if (st == 0)
                snprintf(out->detail, sizeof(out->detail),
                         "not sent: Roistat refused the status dictionary (set-statuses): %s", why);
        else
                snprintf(out->detail, sizeof(out->detail), "not sent: set-statuses failed: %s",
                         why);
        cls = st == 0 ? "permanent" : st == -EACCES ? "credentials" : "temporary";
        log_err("roistat.statuses_failed", "class=%s detail=\"%s\"", cls, why);
        http_response_clear(&resp);
        return st == 0 ? -EPERM : st;
}

/* The dictionary Roistat has is not ours (an order was skipped_by_status): forget that it
 * was sent, so that a pass that cannot send it again tries once more next time. */
static void forget_statuses(struct roistat *r, struct pass *p)
{
        r->statuses_sent = false;
        store_writes_meta(p->writes, STATUSES_KEY, "", false);
}

static int send_orders(struct roistat *r, struct pass *p, json_t *orders, const size_t *idx,
                       size_t n);

/* A refused batch, re-sent one order at a time to find the order at fault (upserts, so
 * the re-sends are harmless). Each order keeps its own call's verdict. The first call
 * whose answer is not about that order's data — transport failure, timeout, 5xx, 429,
 * refused key — ends the isolation: the remote is unwell, and the remaining orders (not
 * sent again) are TEMPFAIL with that reason; the call's status is returned, so the sink
 * pauses. A stop of the daemon ends it too (-ECANCELED), the remaining orders TEMPFAIL. */
static int isolate(struct roistat *r, struct pass *p, json_t *orders, const size_t *idx, size_t n)
{
        struct sink_outcome *out = p->out;

        for (size_t i = 0; i < n; i++) {
                json_t *one;
                int st;

                if (atomic_load(&r->stopping)) {
                        for (; i < n; i++) {
                                out[idx[i]].kind = STORE_TEMPFAIL;
                                snprintf(out[idx[i]].detail, sizeof(out[idx[i]].detail),
                                         "not sent: the daemon is stopping");
                        }
                        return -ECANCELED;
                }
                one = json_array();
                /* an element of `orders`: fails only on OOM, which aborts */
                json_array_append(one, json_array_get(orders, i));
                st = send_orders(r, p, one, &idx[i], 1);
                json_decref(one);
                if (st < 0) {
                        char why[sizeof(out->detail)];
                        snprintf(why, sizeof(why), "%s", out[idx[i]].detail);
                        for (size_t j = i + 1; j < n; j++) {
                                struct sink_outcome *o = &out[idx[j]];
                                o->kind = STORE_TEMPFAIL;
                                o->retry_after_ms = out[idx[i]].retry_after_ms;
                                o->uncertain = false; /* not sent again */
                                snprintf(o->detail, sizeof(o->detail),
                                         "not sent: finding the order at fault in a refused "
                                         "batch stopped at %s",
                                         why);
                        }
                        return st;
                }
        }
        return 0;
}

/* Every order of `n` taken: no skip counter, and saved (or uploaded) plus "not changed"
 * (Roistat has it already, as sent) account for all of them. The sources show saved and
 * uploaded equal (Dangetsu/roistat-sdk test/Response/OrderAdd.json) and say nothing of
 * how they differ, so either one counts; the skip counters are what refuse. */
static bool all_taken(const struct roistat_answer *a, size_t n)
{
        int64_t stored = a->saved > a->uploaded ? a->saved : a->uploaded;

        if (a->by_status > 0 || a->waiting_visit > 0 || a->invalid_format > 0 ||
            a->internal_error > 0)
                return false;
        if (a->has_processed && a->processed < (int64_t)n)
                return false;
        return stored + a->not_changed >= (int64_t)n;
}

/* " (Roistat: <comment>)" when the answer had a comment, else "". */
static const char *remark(const struct roistat_answer *a, char *buf, size_t size)
{
        if (!a->comment[0])
                return "";
        snprintf(buf, size, " (Roistat: %s)", a->comment);
        return buf;
}

/* skipped_by_status: Roistat does not know the order's status. The dictionary it has may
 * have been replaced since ours was sent (set-statuses replaces it whole, for every
 * integration of the project), so ours is sent again, once per pass, and the order
 * re-sent; an order still skipped after that is a dead letter in Roistat's words. */
static int judge_status_skip(struct roistat *r, struct pass *p, json_t *orders, size_t i,
                             const struct roistat_answer *a)
{
        struct sink_outcome *o = &p->out[i];
        const char *status =
            json_string_value(json_object_get(json_array_get(orders, 0), "status"));
        const char *order_id = p->works[i].order_id;
        char buf[160];
        int st;

        if (p->statuses_resent) {
                o->kind = STORE_PERMFAIL;
                snprintf(o->detail, sizeof(o->detail),
                         "Roistat skipped it: skipped_by_status, status \"%s\" is not in the "
                         "project's status list even after set-statuses was sent again%s",
                         status ? status : "", remark(a, buf, sizeof(buf)));
                return 0;
        }
        log_warn("roistat.statuses_resent",
                 "order_id=%s status=%s reason=\"skipped_by_status: Roistat's status list "
                 "lacks it; sending set-statuses again, then the order\"",
                 order_id, status ? status : "");
        forget_statuses(r, p);
        p->statuses_resent = true;
        st = ensure_statuses(r, p, o, true);
        if (st == -EPERM) {
                o->kind = STORE_PERMFAIL;
                return -EAGAIN;
        }
        if (st < 0) {
                o->kind = STORE_TEMPFAIL;
                return st;
        }
        return send_orders(r, p, orders, &i, 1);
}

/* skipped_by_waiting_visit_info: Roistat has not seen the visit yet. It is waited for
 * visit_wait_max times; then, so that the revenue still reaches Roistat, the order is
 * sent once more without it (deliver() drops it once waits pass visit_wait_max), and
 * Roistat counts it as a direct visit. That is said in this verdict, which the order's
 * history keeps, and logged; the re-send is due at once. */
static void judge_visit_skip(struct roistat *r, struct pass *p, json_t *orders, size_t i,
                             const struct roistat_answer *a)
{
        struct sink_outcome *o = &p->out[i];
        const struct store_work *w = &p->works[i];
        const char *visit =
            json_string_value(json_object_get(json_array_get(orders, 0), "roistat"));
        int64_t max = r->cfg->visit_wait_max;
        char buf[160];

        if (!visit) {
                o->kind = STORE_TEMPFAIL;
                snprintf(o->detail, sizeof(o->detail),
                         "Roistat skipped it: skipped_by_waiting_visit_info, though it was sent "
                         "without a visit%s",
                         remark(a, buf, sizeof(buf)));
                return;
        }
        o->kind = STORE_WAITING;
        if (w->waits < max) {
                snprintf(o->detail, sizeof(o->detail),
                         "Roistat has not seen visit yet (skipped_by_waiting_visit_info), wait "
                         "%lld of %lld",
                         (long long)w->waits + 1, (long long)max);
                return;
        }
        o->retry_after_ms = 1;
        snprintf(o->detail, sizeof(o->detail),
                 "Roistat has still not seen visit %s after %lld waits "
                 "(skipped_by_waiting_visit_info): sending it again without the visit, to be "
                 "counted as a direct visit",
                 visit, (long long)max);
        log_warn("roistat.visit_given_up",
                 "order_id=%s visit=%s waits=%lld reason=\"skipped_by_waiting_visit_info: "
                 "sending it again without the visit\"",
                 w->order_id, visit, (long long)w->waits);
}

/* The verdict on one order sent alone, from the answer's counters: done only when they
 * say Roistat took it; each skip counter names why not, and decides what follows. */
static int judge_one(struct roistat *r, struct pass *p, json_t *orders, size_t i,
                     const struct roistat_answer *a)
{
        struct sink_outcome *o = &p->out[i];
        char buf[160];

        if (all_taken(a, 1)) {
                o->kind = STORE_OK;
                o->detail[0] = '\0';
        } else if (a->invalid_format > 0) {
                o->kind = STORE_PERMFAIL;
                snprintf(o->detail, sizeof(o->detail),
                         "Roistat skipped it: skipped_by_invalid_format%s",
                         remark(a, buf, sizeof(buf)));
        } else if (a->by_status > 0) {
                return judge_status_skip(r, p, orders, i, a);
        } else if (a->waiting_visit > 0) {
                judge_visit_skip(r, p, orders, i, a);
        } else if (a->internal_error > 0) {
                o->kind = STORE_TEMPFAIL;
                snprintf(o->detail, sizeof(o->detail),
                         "Roistat skipped it: skipped_by_internal_error%s",
                         remark(a, buf, sizeof(buf)));
        } else {
                /* no counter says why: the harsher reading, not taken, and retried */
                o->kind = STORE_TEMPFAIL;
                snprintf(o->detail, sizeof(o->detail),
                         "Roistat did not say it took it: processed=%lld saved=%lld "
                         "uploaded=%lld not_changed=%lld and no skip counter%s",
                         (long long)a->processed, (long long)a->saved, (long long)a->uploaded,
                         (long long)a->not_changed, remark(a, buf, sizeof(buf)));
        }
        return 0;
}

/* Sends `n` prepared orders (array `orders`, indexes `idx` into works/out). Returns 0
 * with every order's verdict, -EAGAIN/-EACCES (the remote failed as a whole; the orders
 * are TEMPFAIL with the reason) or -ECANCELED (stopped while finding a refused order). */
static int send_orders(struct roistat *r, struct pass *p, json_t *orders, const size_t *idx,
                       size_t n)
{
        struct sink_outcome *out = p->out;
        struct http_response resp;
        struct roistat_answer a;
        char detail[256];
        int64_t retry_after = 0;
        char *body;
        int rc, st = 0;

        /* an array of objects built by roistat_order_json: json_dumps fails only on OOM,
         * which aborts; still, nothing is sent without a body */
        body = json_dumps(orders, JSON_COMPACT);
        if (!body) {
                for (size_t i = 0; i < n; i++) {
                        out[idx[i]].kind = STORE_TEMPFAIL;
                        snprintf(out[idx[i]].detail, sizeof(out[idx[i]].detail),
                                 "not sent: the request could not be encoded");
                }
                return 0;
        }
        rc = post(r, r->url_orders, body, &resp);
        free(body);

        if (rc == 0 && resp.status == 200 && roistat_answer_parse(resp.body, resp.len, &a) == 0 &&
            a.success) {
                http_response_clear(&resp);
                if (all_taken(&a, n)) {
                        for (size_t i = 0; i < n; i++) {
                                out[idx[i]].kind = STORE_OK;
                                out[idx[i]].detail[0] = '\0';
                        }
                        return 0;
                }
                /* the counters are per batch: learn which order each one is about */
                if (n > 1)
                        return isolate(r, p, orders, idx, n);
                return judge_one(r, p, orders, idx[0], &a);
        }

        st = classify_failure(&resp, rc, detail, sizeof(detail), &retry_after);
        if (st == 0 && n > 1) {
                /* a refusal of the data: find the order at fault */
                st = isolate(r, p, orders, idx, n);
                goto out;
        }
        if (st == -EAGAIN && resp.status == 429)
                ratelimit_fill(&r->rl, clock_mono_ms());
        for (size_t i = 0; i < n; i++) {
                out[idx[i]].kind = st == 0 ? STORE_PERMFAIL : STORE_TEMPFAIL;
                out[idx[i]].retry_after_ms = retry_after;
                /* sent, and no answer: Roistat may apply it yet (a refused connection was
                 * never sent) */
                out[idx[i]].uncertain = rc < 0 && rc != -ECONNREFUSED;
                snprintf(out[idx[i]].detail, sizeof(out[idx[i]].detail), "%s", detail);
        }
out:
        http_response_clear(&resp);
        return st;
}

/* The order once its visit has been waited for in vain (see judge_visit_skip): without
 * it, as Roistat takes an order with no visit, logged with the visit it had. */
static void drop_visit(const struct roistat *r, const struct store_work *w, json_t *o)
{
        const char *visit = json_string_value(json_object_get(o, "roistat"));

        if (!visit || w->waits <= r->cfg->visit_wait_max)
                return;
        log_warn("roistat.visit_dropped",
                 "order_id=%s visit=%s waits=%lld reason=\"Roistat has not seen the visit: "
                 "sent without it, as a direct visit\"",
                 w->order_id, visit, (long long)w->waits);
        json_object_del(o, "roistat");
}

static int deliver(void *ctx, struct store *store, struct store_writes *writes,
                   const struct store_work *works, size_t n, struct sink_outcome *out)
{
        struct roistat *r = ctx;
        struct pass p = {.store = store, .writes = writes, .works = works, .out = out};
        json_t *orders = json_array();
        size_t *idx = xcalloc(n, sizeof(*idx)), m = 0;
        int st;

        if (atomic_load(&r->stopping)) {
                for (size_t i = 0; i < n; i++) {
                        out[i].kind = STORE_TEMPFAIL;
                        snprintf(out[i].detail, sizeof(out[i].detail),
                                 "not sent: the daemon is stopping");
                }
                st = -ECANCELED;
                goto out;
        }
        st = ensure_statuses(r, &p, &out[0], false);
        if (st != 0) {
                /* a refused dictionary dead-letters the orders in Roistat's words, and the
                 * sink pauses as for any failure of the remote */
                out[0].kind = st == -EPERM ? STORE_PERMFAIL : STORE_TEMPFAIL;
                if (st == -EPERM)
                        st = -EAGAIN;
                for (size_t i = 1; i < n; i++)
                        out[i] = out[0];
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                struct snapshot_error err;
                struct snapshot *s = NULL;
                json_t *o;

                if (snapshot_parse(works[i].json, strlen(works[i].json), &s, &err) < 0) {
                        out[i].kind = STORE_PERMFAIL;
                        snprintf(out[i].detail, sizeof(out[i].detail),
                                 "stored snapshot unreadable: %s %s", err.field, err.message);
                        continue;
                }
                o = roistat_order_json(r->conf, s, out[i].detail, sizeof(out[i].detail));
                snapshot_free(s);
                if (!o) {
                        out[i].kind = STORE_PERMFAIL;
                        continue;
                }
                drop_visit(r, &works[i], o);
                /* an object into an array: fails only on OOM, which aborts */
                json_array_append_new(orders, o);
                idx[m++] = i;
        }
        if (m > 0)
                st = send_orders(r, &p, orders, idx, m);
out:
        json_decref(orders);
        free(idx);
        return st;
}

static void roistat_stop(void *ctx)
{
        struct roistat *r = ctx;

        atomic_store(&r->stopping, true);
}

static void roistat_taken(void *ctx)
{
        struct roistat *r = ctx;

        ratelimit_fill(&r->rl, clock_mono_ms());
}

static void roistat_free(void *ctx)
{
        struct roistat *r = ctx;

        if (!r)
                return;
        http_client_free(r->http);
        free(r->statuses_body);
        explicit_bzero(r->header_key, sizeof(r->header_key));
        free(r);
}

static const struct sink_ops roistat_ops = {
        .name = "roistat",
        .deliver = deliver,
        .stop = roistat_stop,
        .taken = roistat_taken,
        .free = roistat_free,
};

int sink_roistat_new(const struct config *cfg, const struct sink_ops **ret_ops, void **ret_ctx)
{
        const struct roistat_conf *conf = roistat_conf_get(cfg);
        struct roistat *r;
        unsigned char digest[32];
        unsigned int dlen = 0;
        json_t *st;

        if (!conf || !conf->push)
                return -EINVAL; /* not enabled, or export only */
        r = xcalloc(1, sizeof(*r));
        r->cfg = cfg;
        r->conf = conf;
        /* add-orders is an upsert: a silent re-send on a reused connection is harmless */
        r->http = http_client_new(conf->timeout_ms, MAX_ANSWER, true);
        if (!r->http) {
                free(r);
                return -ENOMEM;
        }
        /* Roistat counts requests per rolling second: no burst, evenly spaced, 10% under */
        ratelimit_init(&r->rl, conf->rate, 1, 10);
        http_client_measure(r->http, "roistat");
        ratelimit_publish(&r->rl, "roistat");
        snprintf(r->url_orders, sizeof(r->url_orders), "%s/project/add-orders?project=%s",
                 conf->url, conf->project);
        snprintf(r->url_statuses, sizeof(r->url_statuses), "%s/project/set-statuses?project=%s",
                 conf->url, conf->project);
        snprintf(r->header_key, sizeof(r->header_key), "Api-key: %s", conf->api_key);
        st = roistat_statuses_json(conf);
        r->statuses_body = st ? json_dumps(st, JSON_COMPACT) : NULL;
        json_decref(st);
        if (!r->statuses_body) {
                /* a status that cannot be encoded would be left out of set-statuses */
                http_client_free(r->http);
                free(r);
                return -EINVAL;
        }
        atomic_init(&r->stopping, false);
        EVP_Digest(r->statuses_body, strlen(r->statuses_body), digest, &dlen, EVP_sha256(), NULL);
        for (unsigned i = 0; i < 32; i++)
                snprintf(r->statuses_hash + 2 * i, 3, "%02x", digest[i]);
        r->ops = roistat_ops;
        r->ops.batch_max = (size_t)conf->batch_size;
        *ret_ops = &r->ops;
        *ret_ctx = r;
        return 0;
}

int roistat_classify_answer(const struct http_response *resp, int rc, char *detail, size_t size,
                            int64_t *retry_after_ms)
{
        return classify_failure(resp, rc, detail, size, retry_after_ms);
}
