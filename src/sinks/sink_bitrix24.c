/*
 * Bitrix24: one pass over a group of orders takes at most two kinds of batch calls.
 *
 *  1. Look-ups, only for orders that have no deal yet: crm.duplicate.findbycomm with up
 *     to 20 phones or e-mails per command (then crm.contact.list for the ids it found, to
 *     learn which value matched which contact), crm.company.list by title for legal
 *     buyers, and crm.deal.list by ORIGINATOR_ID + ORIGIN_ID for an order whose earlier
 *     create may or may not have happened (the answer was lost).
 *  2. Writes: per order contact.add / company.add (when unknown), deal.add or deal.update
 *     and productrows.set (when the basket changed), linked inside the batch with
 *     $result[…] references. Two orders of one new buyer share one contact.add.
 *
 * Exactly one deal per order: before a batch that creates a deal is sent, the order's
 * deal link is set to "pending" in the store, synchronously; if that write fails, the
 * create is not sent. Only the portal's answer replaces the mark with the id. A pending
 * link means "maybe created", and the next pass looks the deal up before it creates one;
 * a look-up that is not answered, or a store read that fails, stops the order, never
 * turns into "no deal, so create".
 *
 * Everything else the pass learns — links (b24.deal, b24.contact, b24.company, b24.rows)
 * and the contact/company cache (meta "b24.contact.phone:+7…", oldest wins) — goes into
 * the dispatcher's `writes`, recorded in one transaction with the verdicts; the pass
 * reads its own pending writes before the store.
 *
 * jansson aborts on OOM (json_alloc_init), so its calls fail only on a NULL or a text that
 * is not UTF-8: every value built from the configuration or a snapshot is checked, and an
 * order whose request cannot be encoded is refused, never sent with a field missing.
 */
#include "sinks/sink_bitrix24.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "sinks/b24_client.h"
#include "sinks/b24_stages.h"
#include "base/clock.h"
#include "base/log.h"
#include "model/money.h"
#include "model/phone.h"
#include "model/snapshot.h"
#include "base/xalloc.h"

#define BATCH_MAX 50
#define FINDBYCOMM_MAX 20
#define PENDING "pending"

struct b24 {
        struct sink_ops ops;
        const struct config *cfg;
        const struct b24_conf *conf; /* [bitrix24] */
        struct b24_client *client;
        atomic_bool stopping; /* set by b24_stop from another thread */
        struct pipeline_cache { /* for a configured @paid: see order_stage */
                struct b24_pipeline p;
                bool read, failed;
                int64_t at_ms; /* clock_mono_ms of the last read or failure */
                char error[320];
        } pipeline;
};

struct order {
        size_t w;                 /* index into works[] and out[] */
        struct snapshot *s;
        char stage[96];
        char phone[24], email[256];
        char *deal, *contact, *company, *rows_done; /* links, NULL when none */
        bool pending_stored;      /* the store already holds the "pending" deal mark */
        char rows_hash[65];
        bool finished;
        /* the write pass */
        char contact_ref[48], company_ref[48];
        bool new_contact, new_company, new_deal, set_rows;
};

__attribute__((format(printf, 4, 5))) static void
finish(struct order *o, struct sink_outcome *out, enum store_result_kind kind, const char *fmt,
       ...)
{
        struct sink_outcome *so = &out[o->w];
        va_list ap;

        o->finished = true;
        so->kind = kind;
        va_start(ap, fmt);
        vsnprintf(so->detail, sizeof(so->detail), fmt, ap);
        va_end(ap);
}

static void refuse_unencodable(struct order *o, struct sink_outcome *out)
{
        finish(o, out, STORE_PERMFAIL, "the Bitrix24 request could not be built: a text from "
               "the order or the configuration is not valid UTF-8");
}

static void rows_hash(const struct snapshot *s, char out[65])
{
        unsigned char d[32];
        unsigned int n = 0;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        EVP_DigestUpdate(ctx, s->currency, 3);
        for (size_t i = 0; i < s->n_items; i++) {
                char line[600];
                int len = snprintf(line, sizeof(line), "|%s|%s|%lld|%lld",
                                   s->items[i].product_id ? s->items[i].product_id : "",
                                   s->items[i].name, (long long)s->items[i].price_minor,
                                   (long long)s->items[i].quantity_milli);
                EVP_DigestUpdate(ctx, line, (size_t)len);
        }
        EVP_DigestFinal_ex(ctx, d, &n);
        EVP_MD_CTX_free(ctx);
        for (int i = 0; i < 32; i++)
                snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* --- the store: this pass's writes first, then the store; reads are checked --------- */

/* One of the order's links: 0 with *ret (NULL when there is none), or the store's -errno
 * with *ret untouched. */
static int link_read(struct store *st, const struct store_writes *w, const char *order_id,
                     const char *kind, char **ret)
{
        const char *pending = store_writes_find_link(w, order_id, kind);
        char *v = NULL;
        int r;

        if (pending) {
                *ret = xstrdup(pending);
                return 0;
        }
        r = store_link_get(st, order_id, kind, &v);
        if (r < 0 && r != -ENOENT)
                return r;
        *ret = r == 0 ? v : NULL;
        return 0;
}

/* A cached look-up, "b24.<kind>:<value>": 0 with *ret (NULL when unknown), or -errno. */
static int meta_read(struct store *st, const struct store_writes *w, const char *kind,
                     const char *value, char **ret)
{
        char key[320], *v = NULL;
        const char *pending;
        int r;

        snprintf(key, sizeof(key), "b24.%s:%s", kind, value);
        pending = store_writes_find_meta(w, key);
        if (pending) {
                *ret = xstrdup(pending);
                return 0;
        }
        r = store_meta_get(st, key, &v);
        if (r < 0 && r != -ENOENT)
                return r;
        *ret = r == 0 ? v : NULL;
        return 0;
}

/* Caches a look-up, oldest wins: an id already cached for the value is kept. */
static void meta_write(struct store_writes *w, const char *kind, const char *value,
                       const char *id)
{
        char key[320];

        snprintf(key, sizeof(key), "b24.%s:%s", kind, value);
        store_writes_meta(w, key, id, true);
}

static void lower(const char *in, char *out, size_t size)
{
        size_t i;
        for (i = 0; in[i] && i + 1 < size; i++)
                out[i] = (char)((in[i] >= 'A' && in[i] <= 'Z') ? in[i] + 32 : in[i]);
        out[i] = '\0';
}

/* --- batch plumbing ---------------------------------------------------------------- */

struct batch {
        json_t *cmd;     /* key → "method?query" */
        json_t *result;  /* key → result, after the call */
        json_t *errors;  /* key → {"error","error_description"} */
};

static void batch_init(struct batch *b)
{
        b->cmd = json_object();
        b->result = json_object();
        b->errors = json_object();
}

static void batch_clear(struct batch *b)
{
        json_decref(b->cmd);
        json_decref(b->result);
        json_decref(b->errors);
}

/* Adds a command; false when `params` is NULL (a json_pack that refused a text that is
 * not UTF-8): then nothing is added, rather than a command without its parameters. */
static bool batch_add(struct batch *b, const char *key, const char *method, json_t *params)
{
        char *q;
        int r;

        if (!params)
                return false;
        q = b24_query_string(method, params); /* ASCII: always a valid JSON string */
        r = json_object_set_new(b->cmd, key, json_string(q));
        free(q);
        json_decref(params);
        return r == 0;
}

/* Sets obj[key] = v (consumed); false when v is NULL, i.e. a text was not UTF-8. */
static bool put(json_t *obj, const char *key, json_t *v)
{
        return json_object_set_new(obj, key, v) == 0;
}

/* Sends the commands in calls of at most BATCH_MAX (the caller keeps dependent commands
 * in one call by sending them before adding more). Returns 0, a b24_call code, or
 * -ECANCELED when the daemon is stopping and a call was left unsent. */
static int batch_run(struct b24 *b, struct batch *bt, struct b24_error *err)
{
        const char *key;
        json_t *v, *chunk = json_object();
        void *tmp;
        int st = 0;

        json_object_foreach_safe(bt->cmd, tmp, key, v)
        {
                /* both keys and values are ASCII: fails only on OOM, which aborts */
                json_object_set(chunk, key, v);
                json_object_del(bt->cmd, key);
                if (json_object_size(chunk) == BATCH_MAX || json_object_size(bt->cmd) == 0) {
                        json_t *doc = NULL, *r, *e;
                        if (atomic_load(&b->stopping)) {
                                snprintf(err->code, sizeof(err->code), "stopping");
                                snprintf(err->description, sizeof(err->description),
                                         "not sent: the daemon is stopping");
                                st = -ECANCELED;
                                break;
                        }
                        st = b24_call(b->client, "batch",
                                      json_pack("{s:i, s:O}", "halt", 0, "cmd", chunk), &doc,
                                      err);
                        json_object_clear(chunk);
                        if (st != 0)
                                break;
                        b24_batch_sections(doc, &r, &e);
                        /* objects both (b24_batch_sections): fails only on OOM */
                        if (r)
                                json_object_update(bt->result, r);
                        if (e)
                                json_object_update(bt->errors, e);
                        json_decref(doc);
                }
        }
        json_decref(chunk);
        return st;
}

static const char *cmd_error(struct batch *bt, const char *key)
{
        json_t *e = json_object_get(bt->errors, key);
        const char *d;

        if (!e)
                return NULL;
        d = json_string_value(json_object_get(e, "error_description"));
        if (d && *d)
                return d;
        d = json_string_value(json_object_get(e, "error"));
        return d && *d ? d : "error without a description";
}

static int cmd_error_class(struct batch *bt, const char *key)
{
        json_t *e = json_object_get(bt->errors, key);
        return b24_classify_error(json_string_value(json_object_get(e, "error")), 400);
}

/* An id from a result that is an integer, a numeric string, or {"ID":…}. */
static bool result_id(json_t *v, char *out, size_t size)
{
        if (json_is_object(v))
                v = json_object_get(v, "ID");
        if (json_is_integer(v) && json_integer_value(v) > 0) {
                snprintf(out, size, "%lld", (long long)json_integer_value(v));
                return true;
        }
        if (json_is_string(v) && json_string_value(v)[0] &&
            strspn(json_string_value(v), "0123456789") == strlen(json_string_value(v))) {
                snprintf(out, size, "%s", json_string_value(v));
                return true;
        }
        return false;
}

static json_t *multifield(const char *value)
{
        return json_pack("[{s:s, s:s}]", "VALUE", value, "VALUE_TYPE", "WORK");
}

/* --- pass 1: look-ups -------------------------------------------------------------- */

static bool needs_contact(const struct order *o)
{
        return !o->finished && !o->contact && (o->phone[0] || o->email[0]);
}

/* Fills the order's contact and company from the cache. 0 or the store's -errno. */
static int from_cache(struct store *st, const struct store_writes *w, struct order *o)
{
        int r = 0;

        if (!o->contact && o->phone[0])
                r = meta_read(st, w, "contact.phone", o->phone, &o->contact);
        if (r == 0 && !o->contact && o->email[0])
                r = meta_read(st, w, "contact.email", o->email, &o->contact);
        if (r == 0 && !o->company && o->s->buyer.legal && o->s->buyer.company) {
                char name[300];
                lower(o->s->buyer.company, name, sizeof(name));
                r = meta_read(st, w, "company.title", name, &o->company);
        }
        return r;
}

/* Caches `id` for one PHONE or EMAIL multi-field value of a contact, unless the value
 * already has a contact (oldest wins). 0 or the store's -errno. */
static int learn_value(struct b24 *b, struct store *st, struct store_writes *w,
                       const char *kind, const char *val, const char *id)
{
        char norm[256], *have = NULL;
        int r;

        if (strcmp(kind, "contact.phone") == 0
                    ? phone_normalize(val, b->conf->country_code, norm, sizeof(norm)) < 0
                    : email_normalize(val, norm, sizeof(norm)) < 0)
                return 0;
        r = meta_read(st, w, kind, norm, &have);
        if (r == 0 && !have)
                meta_write(w, kind, norm, id);
        free(have);
        return r;
}

/* findbycomm tells which contacts match, not which value matched which: read the
 * contacts' phones and e-mails and map them here. Returns 0, a b24_call code, or -EIO. */
static int learn_contacts(struct b24 *b, struct store *st, struct store_writes *w, json_t *ids,
                          struct b24_error *err)
{
        struct batch bt;
        size_t i, k = 0;
        json_t *v, *chunk = json_array();
        const char *key;
        int r;

        batch_init(&bt);
        json_array_foreach(ids, i, v)
        {
                json_array_append(chunk, v); /* a value from the answer: fails only on OOM */
                if (json_array_size(chunk) == 50 || i + 1 == json_array_size(ids)) {
                        char name[16];
                        snprintf(name, sizeof(name), "l%zu", k++);
                        /* ids are the portal's JSON values and the rest constants: this
                         * json_pack cannot meet a text that is not UTF-8 */
                        batch_add(&bt, name, "crm.contact.list",
                                  json_pack("{s:{s:O}, s:[s,s,s], s:{s:s}}", "filter", "ID",
                                            chunk, "select", "ID", "PHONE", "EMAIL", "order",
                                            "ID", "ASC"));
                        json_array_clear(chunk);
                }
        }
        json_decref(chunk);
        r = batch_run(b, &bt, err);
        json_object_foreach(bt.result, key, v)
        {
                json_t *c;
                json_array_foreach(v, i, c)
                {
                        char id[32];
                        json_t *m;
                        size_t j;
                        if (!result_id(c, id, sizeof(id)))
                                continue;
                        json_array_foreach(json_object_get(c, "PHONE"), j, m)
                        {
                                const char *val = json_string_value(json_object_get(m, "VALUE"));
                                if (learn_value(b, st, w, "contact.phone", val, id) < 0)
                                        r = -EIO;
                        }
                        json_array_foreach(json_object_get(c, "EMAIL"), j, m)
                        {
                                const char *val = json_string_value(json_object_get(m, "VALUE"));
                                if (learn_value(b, st, w, "contact.email", val, id) < 0)
                                        r = -EIO;
                        }
                }
        }
        batch_clear(&bt);
        return r;
}

/* Adds findbycomm commands for `values` (normalised phones or e-mails: valid UTF-8). */
static void add_findbycomm(struct batch *bt, const char *type, json_t *values)
{
        size_t n = json_array_size(values);

        for (size_t start = 0, k = 0; start < n; start += FINDBYCOMM_MAX, k++) {
                json_t *chunk = json_array();
                char key[24];
                for (size_t i = start; i < n && i < start + FINDBYCOMM_MAX; i++)
                        json_array_append(chunk, json_array_get(values, i));
                snprintf(key, sizeof(key), "f%s%zu", type, k);
                batch_add(bt, key, "crm.duplicate.findbycomm",
                          json_pack("{s:s, s:s, s:o}", "entity_type", "CONTACT", "type", type,
                                    "values", chunk));
        }
}

/* Queues this order's phone and e-mail for findbycomm, once per value. */
static bool want_contact(struct order *o, json_t *seen, json_t *phones, json_t *emails)
{
        bool ok = true;

        if (o->phone[0] && !json_object_get(seen, o->phone)) {
                ok = put(seen, o->phone, json_true()) && ok;
                ok = json_array_append_new(phones, json_string(o->phone)) == 0 && ok;
        }
        if (o->email[0] && !json_object_get(seen, o->email)) {
                ok = put(seen, o->email, json_true()) && ok;
                ok = json_array_append_new(emails, json_string(o->email)) == 0 && ok;
        }
        return ok;
}

/* Returns 0, a b24_call code (the look-up call failed as a whole), or -EIO (a store read
 * failed; nothing has been written to the portal). */
static int lookup(struct b24 *b, struct store *st, struct store_writes *w, struct order *os,
                  size_t n, struct sink_outcome *out, struct b24_error *err)
{
        json_t *phones = json_array(), *emails = json_array(), *seen = json_object();
        json_t *found = json_array(), *v;
        struct batch bt;
        const char *key;
        char k[32];
        int r = 0;

        batch_init(&bt);
        for (size_t i = 0; i < n; i++) {
                struct order *o = &os[i];
                bool ok = true;
                if (o->finished)
                        continue;
                if (from_cache(st, w, o) < 0) {
                        r = -EIO;
                        goto out;
                }
                if (o->deal && strcmp(o->deal, PENDING) == 0) {
                        snprintf(k, sizeof(k), "u%zu", i);
                        ok = batch_add(&bt, k, "crm.deal.list",
                                       json_pack("{s:{s:s, s:s}, s:[s], s:{s:s}}", "filter",
                                                 "ORIGINATOR_ID", b->cfg->site_id, "ORIGIN_ID",
                                                 o->s->order_id, "select", "ID", "order", "ID",
                                                 "ASC"));
                }
                if (needs_contact(o))
                        ok = want_contact(o, seen, phones, emails) && ok;
                if (!o->company && o->s->buyer.legal && o->s->buyer.company &&
                    (!o->deal || strcmp(o->deal, PENDING) == 0)) {
                        snprintf(k, sizeof(k), "q%zu", i);
                        ok = batch_add(&bt, k, "crm.company.list",
                                       json_pack("{s:{s:s}, s:[s], s:{s:s}}", "filter", "=TITLE",
                                                 o->s->buyer.company, "select", "ID", "order",
                                                 "ID", "ASC")) &&
                             ok;
                }
                if (!ok)
                        refuse_unencodable(o, out);
        }
        add_findbycomm(&bt, "PHONE", phones);
        add_findbycomm(&bt, "EMAIL", emails);
        if (json_object_size(bt.cmd) > 0)
                r = batch_run(b, &bt, err);
        if (r != 0)
                goto out;

        json_object_foreach(bt.result, key, v)
        {
                size_t i = strtoul(key + 1, NULL, 10);
                char id[32];
                if (key[0] == 'u' && i < n) {
                        struct order *o = &os[i];
                        free(o->deal);
                        o->deal = NULL;
                        if (json_array_size(v) > 0 && result_id(json_array_get(v, 0), id,
                                                                 sizeof(id))) {
                                o->deal = xstrdup(id);
                                store_writes_link(w, o->s->order_id, "b24.deal", id);
                                log_info("b24.deal_found", "order_id=%s deal_id=%s reason=\"an "
                                         "earlier create's answer was lost\"",
                                         o->s->order_id, id);
                        }
                } else if (key[0] == 'q' && i < n) {
                        struct order *o = &os[i];
                        if (json_array_size(v) > 0 &&
                            result_id(json_array_get(v, 0), id, sizeof(id))) {
                                char name[300];
                                lower(o->s->buyer.company, name, sizeof(name));
                                meta_write(w, "company.title", name, id);
                                o->company = xstrdup(id);
                        }
                } else if (key[0] == 'f') {
                        size_t j;
                        json_t *ids = json_object_get(v, "CONTACT"), *x;
                        json_array_foreach(ids, j, x) json_array_append(found, x);
                }
        }
        /* a look-up of a pending deal that was not answered (an error, or no result at
         * all) must not turn into a second create */
        for (size_t i = 0; i < n; i++) {
                struct order *o = &os[i];
                if (o->finished || !o->deal || strcmp(o->deal, PENDING) != 0)
                        continue;
                snprintf(k, sizeof(k), "u%zu", i);
                finish(o, out, STORE_TEMPFAIL, "deal look-up failed: %s",
                       cmd_error(&bt, k) ? cmd_error(&bt, k) : "no answer for it in the batch");
        }
        if (json_array_size(found) > 0)
                r = learn_contacts(b, st, w, found, err);
        for (size_t i = 0; r == 0 && i < n; i++)
                if (!os[i].finished)
                        r = from_cache(st, w, &os[i]) < 0 ? -EIO : 0;
out:
        json_decref(phones);
        json_decref(emails);
        json_decref(seen);
        json_decref(found);
        batch_clear(&bt);
        return r;
}

/* --- pass 2: writes ---------------------------------------------------------------- */

/* Adds this order's commands to `bt`. `planned` maps a new buyer's phone/e-mail (and
 * "company:<title>") to the $result reference of an add already in this call; the
 * order's own new entries go to `mine`, which the caller merges once the order is in.
 * Returns 0 with *ret_added, -EIO (a store read failed) or -EINVAL (a text from the
 * order or the configuration is not UTF-8: the order cannot be sent as it is). */
static int compose(struct b24 *b, struct store *st, const struct store_writes *w,
                   struct order *o, size_t i, struct batch *bt, json_t *planned, json_t *mine,
                   size_t *ret_added)
{
        const struct snapshot *s = o->s;
        const struct config *cfg = b->cfg;
        const struct b24_conf *conf = b->conf;
        json_t *fields;
        char key[32], deal_ref[48], amount[32], title_key[300] = "company:";
        size_t added = 0;
        bool ok = true;

        if (from_cache(st, w, o) < 0)
                return -EIO;
        o->contact_ref[0] = o->company_ref[0] = '\0';
        o->new_contact = o->new_company = o->new_deal = o->set_rows = false;

        if (s->buyer.legal && s->buyer.company)
                lower(s->buyer.company, title_key + 8, sizeof(title_key) - 8);
        if (o->company)
                snprintf(o->company_ref, sizeof(o->company_ref), "%s", o->company);
        else if (s->buyer.legal && s->buyer.company && json_object_get(planned, title_key))
                /* another order of this call creates the same new company */
                snprintf(o->company_ref, sizeof(o->company_ref), "%s",
                         json_string_value(json_object_get(planned, title_key)));
        else if (s->buyer.legal && s->buyer.company) {
                snprintf(key, sizeof(key), "m%zu", i);
                fields = json_pack("{s:s}", "TITLE", s->buyer.company);
                if (s->buyer.phone && o->phone[0])
                        ok = put(fields, "PHONE", multifield(o->phone)) && ok;
                if (o->email[0])
                        ok = put(fields, "EMAIL", multifield(o->email)) && ok;
                if (s->buyer.inn) {
                        char c[64];
                        snprintf(c, sizeof(c), "INN %s", s->buyer.inn);
                        ok = put(fields, "COMMENTS", json_string(c)) && ok;
                }
                ok = batch_add(bt, key, "crm.company.add", json_pack("{s:o}", "fields", fields)) &&
                     ok;
                snprintf(o->company_ref, sizeof(o->company_ref), "$result[%s]", key);
                ok = put(mine, title_key, json_string(o->company_ref)) && ok;
                o->new_company = true;
                added++;
        }

        if (o->contact) {
                snprintf(o->contact_ref, sizeof(o->contact_ref), "%s", o->contact);
        } else if (o->phone[0] || o->email[0]) {
                json_t *ref = json_object_get(planned, o->phone[0] ? o->phone : o->email);
                if (!ref && o->email[0])
                        ref = json_object_get(planned, o->email);
                if (ref) {
                        snprintf(o->contact_ref, sizeof(o->contact_ref), "%s",
                                 json_string_value(ref));
                } else {
                        snprintf(key, sizeof(key), "c%zu", i);
                        fields = json_pack("{s:s, s:s, s:s}", "NAME",
                                           s->buyer.name ? s->buyer.name : o->phone[0] ? o->phone
                                                                                      : o->email,
                                           "SOURCE_ID", "STORE", "OPENED", "Y");
                        if (o->phone[0])
                                ok = put(fields, "PHONE", multifield(o->phone)) && ok;
                        if (o->email[0])
                                ok = put(fields, "EMAIL", multifield(o->email)) && ok;
                        if (o->company_ref[0])
                                ok = put(fields, "COMPANY_ID", json_string(o->company_ref)) && ok;
                        ok = batch_add(bt, key, "crm.contact.add",
                                       json_pack("{s:o}", "fields", fields)) &&
                             ok;
                        snprintf(o->contact_ref, sizeof(o->contact_ref), "$result[%s]", key);
                        if (o->phone[0])
                                ok = put(mine, o->phone, json_string(o->contact_ref)) && ok;
                        if (o->email[0])
                                ok = put(mine, o->email, json_string(o->contact_ref)) && ok;
                        o->new_contact = true;
                        added++;
                }
        }

        money_format(s->price_minor, amount, sizeof(amount));
        fields = json_pack("{s:s, s:s, s:s, s:s}", "STAGE_ID", o->stage, "OPPORTUNITY", amount,
                           "CURRENCY_ID", s->currency, "IS_MANUAL_OPPORTUNITY", "Y");
        if (o->contact_ref[0])
                ok = put(fields, "CONTACT_ID", json_string(o->contact_ref)) && ok;
        if (o->company_ref[0])
                ok = put(fields, "COMPANY_ID", json_string(o->company_ref)) && ok;
        if (conf->roistat_field[0] && s->roistat_visit)
                ok = put(fields, conf->roistat_field, json_string(s->roistat_visit)) && ok;
        snprintf(key, sizeof(key), "d%zu", i);
        if (o->deal) {
                ok = batch_add(bt, key, "crm.deal.update",
                               json_pack("{s:s, s:o, s:{s:s}}", "id", o->deal, "fields", fields,
                                         "params", "REGISTER_SONET_EVENT", "N")) &&
                     ok;
                snprintf(deal_ref, sizeof(deal_ref), "%s", o->deal);
        } else {
                char title[400];
                snprintf(title, sizeof(title), "%s%s", conf->deal_title_prefix,
                         s->account_number);
                ok = put(fields, "TITLE", json_string(title)) && ok;
                ok = put(fields, "CATEGORY_ID", json_integer(conf->category_id)) && ok;
                ok = put(fields, "ORIGINATOR_ID", json_string(cfg->site_id)) && ok;
                ok = put(fields, "ORIGIN_ID", json_string(s->order_id)) && ok;
                ok = batch_add(bt, key, "crm.deal.add", json_pack("{s:o}", "fields", fields)) &&
                     ok;
                snprintf(deal_ref, sizeof(deal_ref), "$result[%s]", key);
                o->new_deal = true;
        }
        added++;

        if (!o->rows_done || strcmp(o->rows_done, o->rows_hash) != 0) {
                json_t *rows = json_array();
                for (size_t r = 0; r < s->n_items; r++) {
                        char price[32], qty[32];
                        money_format(s->items[r].price_minor, price, sizeof(price));
                        quantity_format(s->items[r].quantity_milli, qty, sizeof(qty));
                        ok = json_array_append_new(rows, json_pack("{s:s, s:s, s:s}",
                                                                   "PRODUCT_NAME",
                                                                   s->items[r].name, "PRICE",
                                                                   price, "QUANTITY", qty)) ==
                                     0 &&
                             ok;
                }
                snprintf(key, sizeof(key), "r%zu", i);
                ok = batch_add(bt, key, "crm.deal.productrows.set",
                               json_pack("{s:s, s:o}", "id", deal_ref, "rows", rows)) &&
                     ok;
                o->set_rows = true;
                added++;
        }
        if (!ok)
                return -EINVAL;
        *ret_added = added;
        return 0;
}

/* The durable "maybe created" mark, written before the create is sent: 0, or -EIO with
 * the order TEMPFAIL, its create not sent (the next pass would not know to look first). */
static int mark_pending(struct store *st, struct order *o, struct sink_outcome *out)
{
        if (o->pending_stored)
                return 0;
        if (store_link_set(st, o->s->order_id, "b24.deal", PENDING) < 0) {
                finish(o, out, STORE_TEMPFAIL, "not sent: the store could not mark the deal "
                       "pending before its create (%s)", store_errmsg(st));
                return -EIO;
        }
        o->pending_stored = true;
        return 0;
}

/* The id a "$result[key]" reference resolved to in this call's answers. */
static bool ref_id(struct batch *bt, const char *ref, char *out, size_t size)
{
        char key[32];
        size_t n = strlen(ref);

        if (strncmp(ref, "$result[", 8) != 0 || n < 10 || n - 9 >= sizeof(key))
                return false;
        snprintf(key, sizeof(key), "%.*s", (int)(n - 9), ref + 8);
        return result_id(json_object_get(bt->result, key), out, size);
}

/* Reads the answers for one order of a write call; what they teach goes to `w`. Returns
 * 0 or the worst class of its commands' errors. */
static int settle(struct store_writes *w, struct order *o, size_t i, struct batch *bt,
                  struct sink_outcome *out)
{
        const char *errs[4] = {0}, *what[4] = {"company", "contact", "deal", "product rows"};
        const char *oid = o->s->order_id;
        char keys[4][32], id[32];
        int worst = 0;

        snprintf(keys[0], 32, "m%zu", i);
        snprintf(keys[1], 32, "c%zu", i);
        snprintf(keys[2], 32, "d%zu", i);
        snprintf(keys[3], 32, "r%zu", i);
        for (int k = 0; k < 4; k++) {
                errs[k] = cmd_error(bt, keys[k]);
                if (errs[k]) {
                        int c = cmd_error_class(bt, keys[k]);
                        if (c == -EACCES || (c == -EAGAIN && worst != -EACCES) || worst == 0)
                                worst = c;
                }
        }
        if (o->new_company && result_id(json_object_get(bt->result, keys[0]), id, sizeof(id))) {
                char name[300];
                lower(o->s->buyer.company, name, sizeof(name));
                meta_write(w, "company.title", name, id);
                store_writes_link(w, oid, "b24.company", id);
        } else if (o->company) {
                store_writes_link(w, oid, "b24.company", o->company);
        } else if (ref_id(bt, o->company_ref, id, sizeof(id))) {
                /* shared with another order's company.add in this call */
                store_writes_link(w, oid, "b24.company", id);
        }
        if (o->new_contact && result_id(json_object_get(bt->result, keys[1]), id, sizeof(id))) {
                if (o->phone[0])
                        meta_write(w, "contact.phone", o->phone, id);
                if (o->email[0])
                        meta_write(w, "contact.email", o->email, id);
                store_writes_link(w, oid, "b24.contact", id);
        } else if (o->contact_ref[0] && o->contact_ref[0] != '$') {
                store_writes_link(w, oid, "b24.contact", o->contact_ref);
        } else if (ref_id(bt, o->contact_ref, id, sizeof(id))) {
                /* shared with another order's contact.add in this call */
                store_writes_link(w, oid, "b24.contact", id);
        }
        if (o->new_deal && result_id(json_object_get(bt->result, keys[2]), id, sizeof(id))) {
                store_writes_link(w, oid, "b24.deal", id);
                log_info("b24.deal_created", "order_id=%s deal_id=%s stage=%s", oid, id,
                         o->stage);
        }
        if (o->set_rows && !errs[3] && !errs[2])
                store_writes_link(w, oid, "b24.rows", o->rows_hash);

        for (int k = 0; k < 4; k++)
                if (errs[k]) {
                        finish(o, out, worst == -EINVAL ? STORE_PERMFAIL : STORE_TEMPFAIL,
                               "Bitrix24 refused the %s: %s", what[k], errs[k]);
                        return worst;
                }
        finish(o, out, STORE_OK, "%s", "");
        return 0;
}

/* Returns 0, a b24_call code, -EACCES from a command, -ECANCELED (stopping) or -EIO (a
 * store read or a pending mark failed: the call being composed was not sent). */
static int write_pass(struct b24 *b, struct store *st, struct store_writes *w, struct order *os,
                      size_t n, struct sink_outcome *out, struct b24_error *err)
{
        size_t next = 0;
        int r = 0;

        while (r == 0 && next < n) {
                struct batch bt;
                json_t *planned = json_object();
                size_t first = next, count = 0;

                batch_init(&bt);
                for (; next < n; next++) {
                        struct batch one;
                        json_t *mine;
                        size_t k = 0;
                        int c;
                        if (os[next].finished)
                                continue;
                        /* an order's commands go in one call, so that references resolve */
                        batch_init(&one);
                        mine = json_object();
                        c = compose(b, st, w, &os[next], next, &one, planned, mine, &k);
                        if (c == 0 && count > 0 && count + k > BATCH_MAX) {
                                batch_clear(&one);
                                json_decref(mine);
                                break;
                        }
                        if (c == 0 && os[next].new_deal)
                                c = mark_pending(st, &os[next], out);
                        if (c == 0) {
                                /* objects both: fails only on OOM, which aborts */
                                json_object_update(bt.cmd, one.cmd);
                                json_object_update(planned, mine);
                                count += k;
                        } else if (c == -EINVAL) {
                                refuse_unencodable(&os[next], out);
                        }
                        batch_clear(&one);
                        json_decref(mine);
                        if (c == -EIO) {
                                r = -EIO; /* nothing of this call is sent */
                                break;
                        }
                }
                json_decref(planned);
                if (r == 0 && count > 0)
                        r = batch_run(b, &bt, err);
                if (r == 0)
                        for (size_t i = first; i < next; i++)
                                if (!os[i].finished && settle(w, &os[i], i, &bt, out) == -EACCES)
                                        r = -EACCES;
                batch_clear(&bt);
        }
        return r;
}

static void order_free(struct order *o)
{
        snapshot_free(o->s);
        free(o->deal);
        free(o->contact);
        free(o->company);
        free(o->rows_done);
}

/* The order's links, this pass's writes first. 0 or the store's -errno. */
static int read_links(struct store *st, const struct store_writes *w, struct order *o)
{
        const char *id = o->s->order_id;
        int r;

        if ((r = link_read(st, w, id, "b24.deal", &o->deal)) < 0 ||
            (r = link_read(st, w, id, "b24.contact", &o->contact)) < 0 ||
            (r = link_read(st, w, id, "b24.company", &o->company)) < 0 ||
            (r = link_read(st, w, id, "b24.rows", &o->rows_done)) < 0)
                return r;
        o->pending_stored = o->deal && strcmp(o->deal, PENDING) == 0;
        return 0;
}

/* The order's deal stage into o->stage: 0, or -1 with the order finished. A configured
 * @paid moves a deal only to a later stage, so a paid order's stage depends on the
 * pipeline's SORT: it is read once and again after PIPELINE_TTL_MS. When it cannot be read,
 * the paid order waits (TEMPFAIL) rather than land at a guessed stage; a failure is
 * remembered for PIPELINE_RETRY_MS, so a pass of many paid orders asks once. */
#define PIPELINE_TTL_MS (10 * 60 * 1000)
#define PIPELINE_RETRY_MS 10000

static int order_stage(struct b24 *b, struct order *o, struct sink_outcome *out)
{
        struct pipeline_cache *pc = &b->pipeline;
        bool needed = b24_conf_needs_pipeline(b->conf) && o->s->paid;
        struct b24_error err;

        if (needed && pc->read && clock_mono_ms() - pc->at_ms >= PIPELINE_TTL_MS) {
                b24_pipeline_clear(&pc->p);
                pc->read = false;
        }
        if (needed && !pc->read &&
            (!pc->failed || clock_mono_ms() - pc->at_ms >= PIPELINE_RETRY_MS)) {
                pc->read = b24_pipeline_fetch(b->client, b->conf->category_id, &pc->p, &err) == 0;
                pc->failed = !pc->read;
                pc->at_ms = clock_mono_ms();
                if (pc->failed) {
                        snprintf(pc->error, sizeof(pc->error), "%s %s", err.code,
                                 err.description);
                        log_warn("b24.pipeline_unread", "category=%lld error=\"%s\"",
                                 (long long)b->conf->category_id, pc->error);
                }
        }
        if (needed && !pc->read) {
                finish(o, out, STORE_TEMPFAIL, "the pipeline's stages could not be read: %s",
                       pc->error);
                return -1;
        }
        if (b24_conf_stage(b->conf, needed ? &pc->p : NULL, o->s->status, o->s->canceled,
                           o->s->paid, o->stage, sizeof(o->stage)) < 0) {
                finish(o, out, STORE_PERMFAIL, "site status \"%s\" has no entry in [bitrix24.map]",
                       o->s->status);
                return -1;
        }
        return 0;
}

static int deliver(void *ctx, struct store *st, struct store_writes *writes,
                   const struct store_work *works, size_t n, struct sink_outcome *out)
{
        struct b24 *b = ctx;
        struct order *os = xcalloc(n, sizeof(*os));
        struct b24_error err;
        int r = 0;

        memset(&err, 0, sizeof(err));
        for (size_t i = 0; i < n; i++)
                os[i].w = i;
        if (atomic_load(&b->stopping)) {
                snprintf(err.description, sizeof(err.description),
                         "not sent: the daemon is stopping");
                r = -ECANCELED;
        }
        for (size_t i = 0; r == 0 && i < n; i++) {
                struct order *o = &os[i];
                struct snapshot_error serr;
                if (snapshot_parse(works[i].json, strlen(works[i].json), &o->s, &serr) < 0) {
                        finish(o, out, STORE_PERMFAIL, "stored snapshot unreadable: %s %s",
                               serr.field, serr.message);
                        continue;
                }
                if (order_stage(b, o, out) < 0)
                        continue;
                if (phone_normalize(o->s->buyer.phone, b->conf->country_code, o->phone,
                                    sizeof(o->phone)) < 0)
                        o->phone[0] = '\0';
                if (email_normalize(o->s->buyer.email, o->email, sizeof(o->email)) < 0)
                        o->email[0] = '\0';
                /* a link that cannot be read is not "no link": stop before any request */
                if (read_links(st, writes, o) < 0)
                        r = -EIO;
                rows_hash(o->s, o->rows_hash);
        }

        if (r == 0)
                r = lookup(b, st, writes, os, n, out, &err);
        if (r == 0)
                r = write_pass(b, st, writes, os, n, out, &err);
        for (size_t i = 0; r < 0 && i < n; i++) {
                if (os[i].finished)
                        continue;
                if (r == -EIO) {
                        finish(&os[i], out, STORE_TEMPFAIL, "not sent: the store failed (%s)",
                               store_errmsg(st));
                } else if (r == -ECANCELED) {
                        finish(&os[i], out, STORE_TEMPFAIL, "%s", err.description);
                } else {
                        out[i].retry_after_ms = err.retry_after_ms;
                        out[i].uncertain = strcmp(err.code, "transport") == 0;
                        finish(&os[i], out, r == -EINVAL ? STORE_PERMFAIL : STORE_TEMPFAIL,
                               "Bitrix24: %s %s", err.code, err.description);
                }
        }
        if (r == -EACCES)
                log_err("b24.auth_refused", "code=%s hint=\"the incoming webhook was refused: "
                        "check [bitrix24] webhook_url_file and the webhook's CRM rights\"",
                        err.code);
        log_info("b24.pass", "orders=%zu status=%d max_operating_s=%.3f", n, r,
                  b24_client_max_operating(b->client));
        for (size_t i = 0; i < n; i++)
                order_free(&os[i]);
        free(os);
        /* a refused call's data is a verdict per order, not a sick remote */
        if (r == -EINVAL)
                return 0;
        return r == 0 || r == -EACCES || r == -EIO || r == -ECANCELED ? r : -EAGAIN;
}

static void b24_stop(void *ctx)
{
        struct b24 *b = ctx;

        atomic_store(&b->stopping, true);
}

static void b24_free(void *ctx)
{
        struct b24 *b = ctx;

        if (!b)
                return;
        b24_client_free(b->client);
        b24_pipeline_clear(&b->pipeline.p);
        free(b);
}

int sink_bitrix24_new(const struct config *cfg, const struct sink_ops **ret_ops, void **ret_ctx)
{
        const struct b24_conf *conf = b24_conf_get(cfg);
        struct b24 *b;

        if (!conf)
                return -EINVAL; /* not enabled */
        b = xcalloc(1, sizeof(*b));
        b->cfg = cfg;
        b->conf = conf;
        b->client = b24_client_new(conf);
        if (!b->client) {
                free(b);
                return -ENOMEM;
        }
        atomic_init(&b->stopping, false);
        b->ops = (struct sink_ops){.name = "bitrix24",
                                   .batch_max = (size_t)conf->orders_per_batch,
                                   .deliver = deliver,
                                   .stop = b24_stop,
                                   .free = b24_free};
        *ret_ops = &b->ops;
        *ret_ctx = b;
        return 0;
}
