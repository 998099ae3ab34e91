/*
 * Bitrix24: a command scheduler over `batch`. Each order of a pass moves through steps,
 *
 *     look-ups  →  contact / company  →  deal  →  product rows
 *
 * and every step's commands go into a pool shared by all the orders of the pass; each
 * `batch` call takes up to 50 commands from the pool, whichever orders they belong to.
 * When an answer has been read, the orders it concerns take their next step, and their
 * new commands join the pool behind the others.
 *
 * No command refers to another: every id in a command is a literal id the portal has
 * already answered with. A real portal resolves `$result[key]` in EVERY parameter of a
 * batch command, after URL-decoding (CRestUtil::processBatchElement), and a reference to
 * a command that failed yields the whole result map, which PHP's (int) turns into 1: a
 * product-rows write for "the deal just created" would go to deal 1. Pipelining with
 * literal ids costs a round trip per step, not a command, and the pool keeps the batches
 * full. For the same reason a command whose own data (a buyer's name, a product title)
 * holds text the portal would take for a reference is not batched at all: it is sent
 * alone, as JSON, which the portal does not scan. So is a command with more variables
 * than the portal's max_input_vars keeps (a basket of hundreds of rows).
 *
 * A command counts as done only when its own result is present and valid. An error,
 * keyed or not, a missing result, a halted batch: the order's step failed, classified
 * (temporary, permanent with the portal's words, auth, limit). Look-ups are commands like
 * any other: an unanswered look-up stops the order, it never turns into a create.
 *
 * Exactly one deal per order: just before a batch carrying an order's crm.deal.add is
 * sent, the order's deal link is set to "pending" in the store, synchronously; if that
 * fails, the create is not sent. Only the portal's answer replaces the mark with the id.
 * A pending link means "maybe created": the next pass looks the deal up (=ORIGINATOR_ID,
 * =ORIGIN_ID) before it creates one.
 *
 * crm.deal.update sends only the fields orderbridge owns (stage, amount, currency, the
 * Roistat field) that changed since the last delivery (link b24.sent); it never re-sends
 * CONTACT_ID or COMPANY_ID, which a manager may have changed.
 *
 * An e-mail the portal would refuse (main's check_email, or a multi-field value over 250
 * characters: crm_field_multi.php CheckComplexFields) is dropped before the contact is
 * written, and noted (log and link b24.note); if the portal refuses a contact or company
 * anyway, the add is retried once without the e-mail. The order is delivered.
 *
 * Filling batches: a partial batch is sent only when nothing else is waiting. When the
 * pool holds fewer than 50 commands and other orders are due in the store, the pass ends
 * and its unfinished orders are carried (WAITING, due at once) into the next pass, whose
 * new orders' commands fill the batch. A pass that has sent nothing yet and has room for
 * more orders waits up to LINGER_MS for them; a quiet shop's lone order goes out after
 * that, its steps back to back.
 *
 * OPERATION_TIME_LIMIT is per method (limits.md; `result_time[key].operating`): a method
 * refused, or near its budget, is held until the portal's reset time while the other
 * methods go on; its orders wait.
 *
 * Everything the pass learns — links (b24.deal, b24.contact, b24.company, b24.rows,
 * b24.sent) and the contact/company cache (meta "b24.contact.phone:+7…", oldest wins) —
 * goes into the dispatcher's `writes`, recorded in one transaction with the verdicts.
 */
#include "sinks/sink_bitrix24.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "sinks/b24_stages.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "model/money.h"
#include "model/phone.h"
#include "model/snapshot.h"
#include "sinks/b24_client.h"
#include "sinks/b24_values.h"
#include "sinks/sink_site.h"

#define BATCH_MAX 50
#define FINDBYCOMM_MAX 20     /* values per crm.duplicate.findbycomm (its docs) */
#define TITLES_MAX 20         /* company titles per crm.company.list */
#define LIST_PAGE 50          /* the portal's page size for *.list */
#define LINGER_MS 50
#define CARRY_MAX 8
#define ABSENT_TTL_MS 60000
#define LINGER_POLL_MS 5
#define OPERATING_LIMIT_S 480.0 /* limits.md: per method, per 10 minutes */
#define OPERATING_HOLD_AT 0.9
#define HOLD_DEFAULT_MS 60000
#define HOLDS_MAX 16
#define PENDING "pending"
#define KEY_SIZE 320

struct hold {
        char method[48];
        int64_t until; /* wall ms */
};

struct b24 {
        struct sink_ops ops;
        const struct config *cfg;
        const struct b24_conf *conf; /* [bitrix24] */
        struct b24_client *client;
        atomic_bool stopping; /* set by b24_stop from another thread */
        struct hold holds[HOLDS_MAX];  /* the dispatcher's thread only */
        struct hold resets[HOLDS_MAX]; /* per method, the last operating_reset_at seen */
        /* Look-ups answered "none" lately ("phone:+7…", "email:…", "title:…", "deal:<order
         * id>") → wall ms: an order carried into the next pass does not ask again. Kept
         * ABSENT_TTL_MS; a deal's note is dropped the moment its create is sent. */
        json_t *absent;
        json_t *carries; /* order id → passes it was carried through in a row */
        struct pipeline_cache { /* for a configured @paid: see order_stage */
                struct b24_pipeline p;
                bool read, failed;
                int64_t at_ms; /* clock_mono_ms of the last read or failure */
                char error[320];
        } pipeline;
};

/* A shared look-up (findbycomm and the contact.list that follows it, company.list): the
 * values it answers for, and how many of its commands are still out. */
struct group {
        json_t *values;  /* normalised phones or e-mails, or lower-cased titles */
        const char *kind; /* meta kind: "contact.phone", "contact.email", "company.title" */
        int outstanding;
        bool issued;     /* its first command is in the pool */
        char error[200]; /* why it failed, "" when it did not */
        int error_class;
        struct group *next;
};

enum cmd_kind {
        K_DEAL_FIND,
        K_FIND,         /* crm.duplicate.findbycomm */
        K_CONTACT_LIST, /* the contacts findbycomm named: which value is whose */
        K_COMPANY_FIND,
        K_COMPANY_ADD,
        K_CONTACT_ADD,
        K_DEAL_ADD,
        K_DEAL_UPDATE,
        K_ROWS,
        K_CONTACT_KEY, /* crm.contact.update: a repeat buyer's new phone or e-mail */
};

struct cmd {
        enum cmd_kind kind;
        const char *method;
        json_t *params;     /* owned */
        size_t order;       /* index of the order, or NONE for a shared look-up */
        struct group *group;
        bool direct;        /* sent alone as JSON: see the opening comment */
        bool single;        /* K_COMPANY_FIND: one title asked again on its own */
        json_t *sent;       /* K_DEAL_ADD/UPDATE: the owned fields it sends */
};

#define NONE ((size_t)-1)

struct order {
        size_t w; /* index into works[] and out[] */
        struct snapshot *s;
        char stage[96];
        char phone[24], email[256];
        char *deal, *contact, *company, *rows_done, *sent; /* links, NULL when none */
        bool pending_stored; /* the store holds the "pending" deal mark */
        bool contact_linked, company_linked; /* the store or this pass links them */
        char rows_hash[65];
        bool finished;
        int outstanding;  /* its own commands in the pool or in flight */
        bool deal_looked, contact_looked, company_looked; /* asked this pass */
        bool key_asked;   /* the contact's new phone or e-mail is being added */
        bool carried_out; /* carried CARRY_MAX passes in a row: not carried again */
        char title_key[300];
};

struct pass {
        struct b24 *b;
        struct store *st;
        struct store_writes *w;
        struct order *os;
        size_t n;
        struct sink_outcome *out;
        struct cmd **pool;
        size_t pool_len, pool_cap;
        struct group *groups;
        json_t *asked;    /* "phone:+7…", "email:…", "title:…" → the group asking */
        json_t *creating; /* a new buyer's phone/e-mail/"title:" → true: an add is out */
        bool sent_any;
        bool auth_refused; /* a command was refused as unauthorised */
        char auth_code[64];
        const struct store_work *works;
        struct b24_error err; /* the failure that ended the pass */
};

__attribute__((format(printf, 4, 5))) static void
finish(struct pass *p, struct order *o, enum store_result_kind kind, const char *fmt, ...)
{
        struct sink_outcome *so = &p->out[o->w];
        va_list ap;

        if (o->finished)
                return;
        o->finished = true;
        so->kind = kind;
        va_start(ap, fmt);
        vsnprintf(so->detail, sizeof(so->detail), fmt, ap);
        va_end(ap);
}

static void refuse_unencodable(struct pass *p, struct order *o)
{
        finish(p, o, STORE_PERMFAIL, "the Bitrix24 request could not be built: a text from "
               "the order or the configuration is not valid UTF-8");
}

/* The delivery is part of what the buyer pays: a row of its own when it costs. */
static bool has_delivery_row(const struct snapshot *s)
{
        return s->delivery.present && s->delivery.price_minor > 0;
}

static void rows_hash(const struct snapshot *s, const char *delivery_name, char out[65])
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
                /* only when set, so that a basket without discounts keeps the hash it had
                 * before base prices existed (and its rows are not sent again) */
                if (s->items[i].has_base_price) {
                        len = snprintf(line, sizeof(line), "|b%lld",
                                       (long long)s->items[i].base_price_minor);
                        EVP_DigestUpdate(ctx, line, (size_t)len);
                }
        }
        if (has_delivery_row(s)) {
                char line[600];
                int len = snprintf(line, sizeof(line), "|delivery|%s|%lld|%lld", delivery_name,
                                   (long long)s->delivery.price_minor,
                                   (long long)(s->delivery.has_base_price
                                                       ? s->delivery.base_price_minor
                                                       : -1));
                EVP_DigestUpdate(ctx, line, (size_t)len);
        }
        EVP_DigestFinal_ex(ctx, d, &n);
        EVP_MD_CTX_free(ctx);
        for (int i = 0; i < 32; i++)
                snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void lower(const char *in, char *out, size_t size)
{
        size_t i;
        for (i = 0; in[i] && i + 1 < size; i++)
                out[i] = (char)((in[i] >= 'A' && in[i] <= 'Z') ? in[i] + 32 : in[i]);
        out[i] = '\0';
}

/* The buyer's keys an order may have. KEY_PHONE and KEY_EMAIL name its contact,
 * KEY_TITLE its company. */
enum key { KEY_PHONE, KEY_EMAIL, KEY_TITLE };

/* The pass's name for one of the order's keys, "phone:+7…", "email:…" or "title:…" (as
 * `asked`, `creating` and the absent notes spell it), or NULL when the order has none. */
static const char *key_of(const struct order *o, enum key k, char buf[KEY_SIZE])
{
        static const char *const prefix[] = {"phone:", "email:", "title:"};
        const char *v = k == KEY_PHONE ? o->phone : k == KEY_EMAIL ? o->email : o->title_key;

        if (!v[0])
                return NULL;
        snprintf(buf, KEY_SIZE, "%s%s", prefix[k], v);
        return buf;
}

/* --- the store: this pass's writes first, then the store; reads are checked --------- */

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

static int meta_read(struct store *st, const struct store_writes *w, const char *kind,
                     const char *value, char **ret)
{
        char key[KEY_SIZE], *v = NULL;
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
        char key[KEY_SIZE];

        snprintf(key, sizeof(key), "b24.%s:%s", kind, value);
        store_writes_meta(w, key, id, true);
}

static void set_link(struct pass *p, struct order *o, const char *kind, char **field,
                     const char *value)
{
        store_writes_link(p->w, o->s->order_id, kind, value);
        free(*field);
        *field = xstrdup(value);
}

/* The order's deal is known: linked, and, when the site sink is on, the site is to be
 * told its id (in the same transaction as the link). */
static void link_deal(struct pass *p, struct order *o, const char *id)
{
        set_link(p, o, "b24.deal", &o->deal, id);
        if (sink_site_enabled(p->b->cfg))
                store_writes_request(p->w, o->s->order_id, "site");
}

/* Fills the order's contact and company from the cache. 0 or the store's -errno. */
static int from_cache(struct pass *p, struct order *o)
{
        int r = 0;

        if (!o->contact && o->phone[0])
                r = meta_read(p->st, p->w, "contact.phone", o->phone, &o->contact);
        if (r == 0 && !o->contact && o->email[0])
                r = meta_read(p->st, p->w, "contact.email", o->email, &o->contact);
        if (r == 0 && !o->company && o->title_key[0])
                r = meta_read(p->st, p->w, "company.title", o->title_key, &o->company);
        return r;
}

/* --- answers --------------------------------------------------------------------------- */

/* An id from a result that is a positive integer, a numeric string, or {"ID":…}. */
static bool result_id(json_t *v, char *out, size_t size)
{
        const char *s;

        if (json_is_object(v))
                v = json_object_get(v, "ID");
        if (json_is_integer(v) && json_integer_value(v) > 0) {
                snprintf(out, size, "%lld", (long long)json_integer_value(v));
                return true;
        }
        s = json_string_value(v);
        if (s && s[0] && s[0] != '0' && strlen(s) < 19 && strlen(s) < size &&
            strspn(s, "0123456789") == strlen(s)) {
                snprintf(out, size, "%s", s);
                return true;
        }
        return false;
}

static json_t *multifield(const char *value)
{
        return json_pack("[{s:s, s:s}]", "VALUE", value, "VALUE_TYPE", "WORK");
}

static bool put(json_t *obj, const char *key, json_t *v)
{
        return json_object_set_new(obj, key, v) == 0;
}

/* --- holds: OPERATION_TIME_LIMIT per method -------------------------------------------- */

static int64_t table_get(const struct hold *t, const char *method)
{
        for (size_t i = 0; i < HOLDS_MAX; i++)
                if (strcmp(t[i].method, method) == 0)
                        return t[i].until;
        return 0;
}

/* Sets the method's time, unless it already holds a later one. False when unchanged. */
static bool table_set(struct hold *t, const char *method, int64_t until)
{
        size_t slot = HOLDS_MAX;

        for (size_t i = 0; i < HOLDS_MAX; i++) {
                if (strcmp(t[i].method, method) == 0) {
                        slot = i;
                        break;
                }
                if (slot == HOLDS_MAX && t[i].until <= clock_wall_ms())
                        slot = i;
        }
        if (slot == HOLDS_MAX)
                slot = 0;
        if (strcmp(t[slot].method, method) == 0 && t[slot].until >= until)
                return false;
        snprintf(t[slot].method, sizeof(t[slot].method), "%s", method);
        t[slot].until = until;
        return true;
}

static int64_t held_until(struct b24 *b, const char *method)
{
        return table_get(b->holds, method);
}

static void hold(struct b24 *b, const char *method, int64_t until, const char *why)
{
        if (!table_set(b->holds, method, until))
                return;
        log_warn("b24.method_held", "method=%s hold_ms=%lld reason=\"%s\"", method,
                 (long long)(until - clock_wall_ms()), why);
}

/* A command's time block: the method's operating time in the portal's window. */
static void note_time(struct b24 *b, const char *method, json_t *t)
{
        json_t *op = json_object_get(t, "operating");
        int64_t reset = b24_reset_at_ms(t);

        if (!reset)
                return;
        table_set(b->resets, method, reset);
        if (json_is_number(op) && json_number_value(op) >= OPERATING_LIMIT_S * OPERATING_HOLD_AT)
                hold(b, method, reset, "near the method's operating budget");
}

/* How long to hold a method the portal refused with OPERATION_TIME_LIMIT: until its
 * last reported reset time, or a minute when none was seen. */
static int64_t hold_end(struct b24 *b, const char *method, int64_t hint_ms)
{
        int64_t now = clock_wall_ms(), at = table_get(b->resets, method);

        if (hint_ms > 0)
                return now + hint_ms;
        /* the portal's reset time is in whole seconds, rounded down */
        return at > now ? at + 1000 : now + HOLD_DEFAULT_MS;
}

static bool absent_fresh(struct b24 *b, const char *key)
{
        json_t *v = json_object_get(b->absent, key);

        return v && clock_wall_ms() - json_integer_value(v) < ABSENT_TTL_MS;
}

static void absent_note(struct b24 *b, const char *key)
{
        json_object_set_new(b->absent, key, json_integer(clock_wall_ms()));
}

static void absent_prune(struct b24 *b)
{
        const char *k;
        json_t *v;
        void *tmp;

        json_object_foreach_safe(b->absent, tmp, k, v) if (clock_wall_ms() -
                                                                json_integer_value(v) >=
                                                            ABSENT_TTL_MS)
                json_object_del(b->absent, k);
}

/* --- the pool -------------------------------------------------------------------------- */

static void cmd_free(struct cmd *c)
{
        if (!c)
                return;
        json_decref(c->params);
        json_decref(c->sent);
        free(c);
}

/* Adds a command (params consumed; NULL is a text json_pack refused: false, nothing
 * added). A command for an order counts in its `outstanding`. */
static bool enqueue(struct pass *p, enum cmd_kind kind, const char *method, json_t *params,
                    size_t order, struct group *g, json_t *sent)
{
        struct cmd *c;

        if (!params) {
                json_decref(sent);
                return false;
        }
        c = xcalloc(1, sizeof(*c));
        c->kind = kind;
        c->method = method;
        c->params = params;
        c->order = order;
        c->group = g;
        c->sent = sent;
        c->direct = b24_needs_direct(params);
        if (p->pool_len == p->pool_cap) {
                p->pool_cap = p->pool_cap ? p->pool_cap * 2 : 64;
                p->pool = xrealloc(p->pool, p->pool_cap * sizeof(*p->pool));
        }
        p->pool[p->pool_len++] = c;
        if (order != NONE)
                p->os[order].outstanding++;
        if (g)
                g->outstanding++;
        return true;
}

static struct group *group_new(struct pass *p, const char *kind)
{
        struct group *g = xcalloc(1, sizeof(*g));

        g->values = json_array();
        g->kind = kind;
        g->next = p->groups;
        p->groups = g;
        return g;
}

/* A group's state for one value: 1 answered, 0 still out, <0 its failure class. */
static int asked_state(struct pass *p, const char *key, const char **why)
{
        struct group *g = json_object_get(p->asked, key)
                                  ? (struct group *)(uintptr_t)json_integer_value(
                                            json_object_get(p->asked, key))
                                  : NULL;

        if (!g)
                return 1;
        if (g->error[0]) {
                *why = g->error;
                return g->error_class;
        }
        return g->outstanding > 0 ? 0 : 1;
}

/* --- steps ----------------------------------------------------------------------------- */

/* Asks for the order's unknown contact and company, and its maybe-created deal. */
static void ask(struct pass *p, struct order *o, size_t i, json_t *want)
{
        const struct snapshot *s = o->s;
        char key[KEY_SIZE];

        snprintf(key, sizeof(key), "deal:%s", s->order_id);
        if (o->deal && strcmp(o->deal, PENDING) == 0 && !o->deal_looked &&
            absent_fresh(p->b, key)) {
                /* looked up moments ago, and no create has been sent since */
                free(o->deal);
                o->deal = NULL;
        }
        if (o->deal && strcmp(o->deal, PENDING) == 0 && !o->deal_looked) {
                o->deal_looked = true;
                if (!enqueue(p, K_DEAL_FIND, "crm.deal.list",
                             json_pack("{s:{s:s, s:s}, s:[s], s:{s:s}}", "filter",
                                       "=ORIGINATOR_ID", p->b->cfg->site_id, "=ORIGIN_ID",
                                       s->order_id, "select", "ID", "order", "ID", "ASC"),
                             i, NULL, NULL))
                        refuse_unencodable(p, o);
        }
        for (enum key k = KEY_PHONE; k <= KEY_TITLE; k++) {
                bool *looked = k == KEY_TITLE ? &o->company_looked : &o->contact_looked;
                const char *name = key_of(o, k, key);
                if (!name || *looked || (k == KEY_TITLE ? o->company : o->contact))
                        continue;
                if (!json_object_get(p->asked, name) && !absent_fresh(p->b, name))
                        json_object_set_new(want, name, json_true());
        }
        if (!o->contact)
                o->contact_looked = true;
        if (!o->company)
                o->company_looked = true;
}

/* Turns the wanted values into shared look-ups: findbycomm per 20 phones or e-mails,
 * company.list per 20 titles. */
static void ask_shared(struct pass *p, json_t *want)
{
        static const struct {
                const char *prefix, *kind, *type;
                size_t max;
        } kinds[] = {{"phone:", "contact.phone", "PHONE", FINDBYCOMM_MAX},
                     {"email:", "contact.email", "EMAIL", FINDBYCOMM_MAX},
                     {"title:", "company.title", NULL, TITLES_MAX}};

        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
                struct group *g = NULL;
                const char *key;
                json_t *v;
                size_t plen = strlen(kinds[k].prefix);

                json_object_foreach(want, key, v)
                {
                        if (strncmp(key, kinds[k].prefix, plen) != 0)
                                continue;
                        if (!g)
                                g = group_new(p, kinds[k].kind);
                        /* the values are normalised texts of a parsed snapshot: UTF-8 */
                        json_array_append_new(g->values, json_string(key + plen));
                        json_object_set_new(p->asked, key, json_integer((json_int_t)(uintptr_t)g));
                        if (json_array_size(g->values) < kinds[k].max)
                                continue;
                        g = NULL;
                }
        }
        for (struct group *g = p->groups; g; g = g->next) {
                if (g->issued)
                        continue;
                g->issued = true;
                if (strcmp(g->kind, "company.title") == 0) {
                        json_t *titles = json_array();
                        size_t i;
                        json_t *v;
                        /* the titles as the buyers typed them: =TITLE is case-insensitive
                         * (MySQL *_ci); lower-cased ones match the same rows */
                        json_array_foreach(g->values, i, v) json_array_append(titles, v);
                        enqueue(p, K_COMPANY_FIND, "crm.company.list",
                                json_pack("{s:{s:o}, s:[s,s], s:{s:s}}", "filter", "=TITLE",
                                          titles, "select", "ID", "TITLE", "order", "ID", "ASC"),
                                NONE, g, NULL);
                } else {
                        enqueue(p, K_FIND, "crm.duplicate.findbycomm",
                                json_pack("{s:s, s:s, s:O}", "entity_type", "CONTACT", "type",
                                          strcmp(g->kind, "contact.phone") == 0 ? "PHONE"
                                                                                : "EMAIL",
                                          "values", g->values),
                                NONE, g, NULL);
                }
        }
}

json_t *b24_deal_owned_fields(const struct b24_conf *conf, const struct snapshot *s,
                              const char *stage)
{
        char amount[32];
        json_t *f;

        money_format(s->price_minor, amount, sizeof(amount));
        f = json_pack("{s:s, s:s, s:s}", "STAGE_ID", stage, "OPPORTUNITY", amount,
                      "CURRENCY_ID", s->currency);
        if (f && conf->roistat_field[0] && s->roistat_visit &&
            !put(f, conf->roistat_field, json_string(s->roistat_visit))) {
                json_decref(f);
                return NULL;
        }
        /* the mapping rules' fields are owned too: a changed rule or order updates them */
        if (f && !b24_rules_owned_fields(conf, s, f)) {
                json_decref(f);
                return NULL;
        }
        return f;
}

/* The owned deal fields of the order as it is now. NULL: a text is not UTF-8. */
static json_t *owned_fields(struct pass *p, struct order *o)
{
        return b24_deal_owned_fields(p->b->conf, o->s, o->stage);
}

static void party_add(struct pass *p, struct order *o, size_t i, bool company)
{
        const struct snapshot *s = o->s;
        json_t *f;
        bool ok;

        if (company) {
                f = json_pack("{s:s}", "TITLE", s->buyer.company);
                ok = f != NULL;
                if (ok && o->phone[0])
                        ok = put(f, "PHONE", multifield(o->phone));
                if (ok && o->email[0])
                        ok = put(f, "EMAIL", multifield(o->email));
                if (ok && s->buyer.inn) {
                        char c[64];
                        snprintf(c, sizeof(c), "INN %s", s->buyer.inn);
                        ok = put(f, "COMMENTS", json_string(c));
                }
        } else {
                f = json_pack("{s:s, s:s, s:s}", "NAME",
                              s->buyer.name ? s->buyer.name : o->phone[0] ? o->phone : o->email,
                              "SOURCE_ID", "STORE", "OPENED", "Y");
                ok = f != NULL;
                if (ok && o->phone[0])
                        ok = put(f, "PHONE", multifield(o->phone));
                if (ok && o->email[0])
                        ok = put(f, "EMAIL", multifield(o->email));
                if (ok && o->company)
                        ok = put(f, "COMPANY_ID", json_string(o->company));
        }
        if (!ok) {
                json_decref(f);
                refuse_unencodable(p, o);
                return;
        }
        if (!enqueue(p, company ? K_COMPANY_ADD : K_CONTACT_ADD,
                     company ? "crm.company.add" : "crm.contact.add",
                     json_pack("{s:o}", "fields", f), i, NULL, NULL))
                refuse_unencodable(p, o);
}

/* Marks an add of this buyer as out, so that other orders of the buyer wait for it. */
static void creating(struct pass *p, struct order *o, bool company, bool on)
{
        char key[KEY_SIZE];

        for (enum key k = company ? KEY_TITLE : KEY_PHONE; k <= (company ? KEY_TITLE : KEY_EMAIL);
             k++) {
                if (!key_of(o, k, key))
                        continue;
                if (on)
                        json_object_set_new(p->creating, key, json_true());
                else
                        json_object_del(p->creating, key);
        }
}

static bool is_creating(struct pass *p, struct order *o, bool company)
{
        char key[KEY_SIZE];

        for (enum key k = company ? KEY_TITLE : KEY_PHONE; k <= (company ? KEY_TITLE : KEY_EMAIL);
             k++)
                if (key_of(o, k, key) && json_object_get(p->creating, key))
                        return true;
        return false;
}

/* The deal step: add, or update only what changed. */
static void deal_step(struct pass *p, struct order *o, size_t i)
{
        const struct snapshot *s = o->s;
        const struct b24_conf *conf = p->b->conf;
        json_t *now = owned_fields(p, o), *fields, *prev;
        const char *k;
        json_t *v;
        bool ok = now != NULL;

        if (!ok) {
                refuse_unencodable(p, o);
                return;
        }
        if (!o->deal) {
                char title[400];
                snprintf(title, sizeof(title), "%s%s", conf->deal_title_prefix,
                         s->account_number);
                struct b24_order_rules rules;
                b24_rules_resolve(conf, s, &rules);
                fields = json_deep_copy(now);
                ok = put(fields, "TITLE", json_string(title)) &&
                     put(fields, "CATEGORY_ID", json_integer(rules.category_id)) &&
                     put(fields, "ORIGINATOR_ID", json_string(p->b->cfg->site_id)) &&
                     put(fields, "ORIGIN_ID", json_string(s->order_id)) &&
                     put(fields, "IS_MANUAL_OPPORTUNITY", json_string("Y"));
                if (ok && o->contact)
                        ok = put(fields, "CONTACT_ID", json_string(o->contact));
                if (ok && o->company)
                        ok = put(fields, "COMPANY_ID", json_string(o->company));
                if (!ok || !enqueue(p, K_DEAL_ADD, "crm.deal.add",
                                    json_pack("{s:o, s:{s:s}}", "fields", fields, "params",
                                              "REGISTER_SONET_EVENT", "N"),
                                    i, NULL, now))
                        refuse_unencodable(p, o);
                return;
        }
        prev = o->sent ? json_loads(o->sent, 0, NULL) : NULL;
        fields = json_object();
        json_object_foreach(now, k, v)
        {
                json_t *was = json_object_get(prev, k);
                if (!was || !json_equal(was, v))
                        json_object_set(fields, k, v); /* from a valid object: OOM aborts */
        }
        json_decref(prev);
        if (json_object_size(fields) == 0) {
                /* nothing the CRM shows has changed: no command */
                json_decref(fields);
                json_decref(now);
                return;
        }
        if (!enqueue(p, K_DEAL_UPDATE, "crm.deal.update",
                     json_pack("{s:s, s:o, s:{s:s}}", "id", o->deal, "fields", fields, "params",
                               "REGISTER_SONET_EVENT", "N"),
                     i, NULL, now))
                refuse_unencodable(p, o);
}

/* A row's discount, per unit, as crm.deal.productrows.set takes it: PRICE is the final
 * price per unit, DISCOUNT_TYPE_ID 1 an absolute discount of DISCOUNT_SUM per unit
 * (b24restdocs api-reference/crm/deals/crm-deal-productrows-set.md; type 1 needs
 * DISCOUNT_SUM). So the rows add up to what the buyer pays, OPPORTUNITY, to the kopeck. */
static bool row_discount(json_t *row, bool has_base, int64_t base_minor, int64_t price_minor)
{
        char sum[32];

        if (!row || !has_base || base_minor <= price_minor)
                return row != NULL;
        money_format(base_minor - price_minor, sum, sizeof(sum));
        return put(row, "DISCOUNT_TYPE_ID", json_integer(1)) &&
               put(row, "DISCOUNT_SUM", json_string(sum));
}

json_t *b24_deal_rows(const struct b24_conf *conf, const struct snapshot *s)
{
        json_t *rows = json_array(), *row;
        bool ok = true;

        for (size_t r = 0; ok && r < s->n_items; r++) {
                char price[32], qty[32];
                money_format(s->items[r].price_minor, price, sizeof(price));
                quantity_format(s->items[r].quantity_milli, qty, sizeof(qty));
                row = json_pack("{s:s, s:s, s:s}", "PRODUCT_NAME", s->items[r].name, "PRICE",
                                price, "QUANTITY", qty);
                ok = row_discount(row, s->items[r].has_base_price, s->items[r].base_price_minor,
                                  s->items[r].price_minor) &&
                     json_array_append_new(rows, row) == 0;
        }
        if (ok && has_delivery_row(s)) {
                char price[32];
                money_format(s->delivery.price_minor, price, sizeof(price));
                row = json_pack("{s:s, s:s, s:s}", "PRODUCT_NAME", conf->delivery_row_name,
                                "PRICE", price, "QUANTITY", "1");
                ok = row_discount(row, s->delivery.has_base_price, s->delivery.base_price_minor,
                                  s->delivery.price_minor) &&
                     json_array_append_new(rows, row) == 0;
        }
        if (!ok) {
                json_decref(rows);
                return NULL;
        }
        return rows;
}

static void rows_step(struct pass *p, struct order *o, size_t i)
{
        json_t *rows = b24_deal_rows(p->b->conf, o->s);

        if (!rows) {
                refuse_unencodable(p, o);
                return;
        }
        if (!enqueue(p, K_ROWS, "crm.deal.productrows.set",
                     json_pack("{s:s, s:o}", "id", o->deal, "rows", rows), i, NULL, NULL))
                refuse_unencodable(p, o);
}

/* A repeat buyer found by one key may bring a new other one (a known phone with a new
 * e-mail). That key is only noted as seen with the contact ("b24.contact.email.seen:…",
 * oldest wins): no command. If a later order comes with that key and nothing the portal
 * knows, it goes to that contact, and its keys are appended to the contact (items added,
 * nothing replaced), so that the contact holds what the deal's buyer gave. */
static int note_seen(struct pass *p, struct order *o)
{
        const char *kinds[2] = {"contact.phone", "contact.email"};
        const char *seen[2] = {"contact.phone.seen", "contact.email.seen"};
        const char *vals[2] = {o->phone, o->email};

        for (int k = 0; k < 2; k++) {
                char *have = NULL;
                if (!vals[k][0])
                        continue;
                if (meta_read(p->st, p->w, kinds[k], vals[k], &have) < 0)
                        return -EIO;
                if (!have)
                        meta_write(p->w, seen[k], vals[k], o->contact);
                free(have);
        }
        return 0;
}

/* The contact some earlier order saw one of this order's keys with. 0 or -errno. */
static int from_seen(struct pass *p, struct order *o)
{
        int r = 0;

        if (o->phone[0])
                r = meta_read(p->st, p->w, "contact.phone.seen", o->phone, &o->contact);
        if (r == 0 && !o->contact && o->email[0])
                r = meta_read(p->st, p->w, "contact.email.seen", o->email, &o->contact);
        return r;
}

/* Appends the order's keys that no contact is known to hold to its contact; cached once
 * the portal says so. Until then the keys count as being created, so that an order with
 * only those keys waits instead of creating a second contact. 0 or the store's -errno. */
static int new_key(struct pass *p, struct order *o, size_t i)
{
        const char *kinds[2] = {"contact.phone", "contact.email"};
        const char *vals[2] = {o->phone, o->email};
        json_t *f = NULL;
        char *have;

        if (o->key_asked)
                return 0;
        for (enum key k = KEY_PHONE; k <= KEY_EMAIL; k++) {
                char key[KEY_SIZE];
                if (!key_of(o, k, key))
                        continue;
                if (meta_read(p->st, p->w, kinds[k], vals[k], &have) < 0)
                        return -EIO;
                if (have) {
                        free(have);
                        continue;
                }
                if (json_object_get(p->creating, key))
                        continue;
                if (!f)
                        f = json_object();
                /* normalised texts of a parsed snapshot: UTF-8 */
                json_object_set_new(f, k ? "EMAIL" : "PHONE", multifield(vals[k]));
                json_object_set_new(p->creating, key, json_true());
        }
        if (!f)
                return 0;
        o->key_asked = true;
        enqueue(p, K_CONTACT_KEY, "crm.contact.update",
                json_pack("{s:s, s:o}", "id", o->contact, "fields", f), i, NULL, NULL);
        return 0;
}

/* Moves an order whose commands have all been answered to its next step: 0, or the
 * store's -errno (a read failed: nothing more is sent for the order). */
static int advance(struct pass *p, struct order *o, size_t i, json_t *want)
{
        const char *why = NULL;
        char key[KEY_SIZE];
        int c;

        if (o->finished || o->outstanding > 0)
                return 0;
        if (from_cache(p, o) < 0)
                return -EIO;
        ask(p, o, i, want);
        if (o->finished || o->outstanding > 0)
                return 0;
        if (o->deal && strcmp(o->deal, PENDING) == 0)
                return 0; /* its look-up is in the pool */

        /* the shared look-ups this order waits on */
        for (enum key k = KEY_PHONE; k <= KEY_TITLE; k++) {
                if (!key_of(o, k, key) || (k == KEY_TITLE ? o->company : o->contact))
                        continue;
                c = asked_state(p, key, &why);
                if (c == 0 || json_object_get(want, key))
                        return 0;
                if (c < 0) {
                        finish(p, o, c == -EINVAL ? STORE_PERMFAIL : STORE_TEMPFAIL,
                               "the %s look-up failed: %s",
                               k == KEY_TITLE ? "company" : "contact", why);
                        return 0;
                }
        }
        if (from_cache(p, o) < 0)
                return -EIO;
        if (o->contact && !o->key_asked && note_seen(p, o) < 0)
                return -EIO;
        if (!o->contact && !is_creating(p, o, false)) {
                if (from_seen(p, o) < 0)
                        return -EIO;
                if (o->contact && new_key(p, o, i) < 0)
                        return -EIO;
                /* the deal is bound to the contact once it holds the keys: if the append
                 * fails, the next pass finds the contact the same way and appends again */
                if (o->outstanding > 0)
                        return 0;
        }
        if (o->contact) {
                if (!o->contact_linked)
                        store_writes_link(p->w, o->s->order_id, "b24.contact", o->contact);
                o->contact_linked = true;
        }
        if (o->company && !o->company_linked) {
                store_writes_link(p->w, o->s->order_id, "b24.company", o->company);
                o->company_linked = true;
        }

        if (o->title_key[0] && !o->company) {
                if (!is_creating(p, o, true)) {
                        creating(p, o, true, true);
                        party_add(p, o, i, true);
                }
                return 0; /* the contact waits for the company's id */
        }
        if ((o->phone[0] || o->email[0]) && !o->contact) {
                if (!is_creating(p, o, false)) {
                        creating(p, o, false, true);
                        party_add(p, o, i, false);
                }
                return 0;
        }
        deal_step(p, o, i);
        if (o->finished || o->outstanding > 0)
                return 0;
        if (strcmp(o->rows_done ? o->rows_done : "", o->rows_hash) != 0) {
                rows_step(p, o, i);
                return 0;
        }
        finish(p, o, STORE_OK, "%s", "");
        return 0;
}

/* --- reading a command's answer -------------------------------------------------------- */

/* A command failed: its order's step, or its look-up group, with the words. */
static void command_failed(struct pass *p, struct cmd *c, const char *code, const char *words,
                           int cls)
{
        struct order *o = c->order != NONE ? &p->os[c->order] : NULL;
        static const char *const what[] = {
                [K_DEAL_FIND] = "deal look-up", [K_FIND] = "contact look-up",
                [K_CONTACT_LIST] = "contact look-up", [K_COMPANY_FIND] = "company look-up",
                [K_COMPANY_ADD] = "company", [K_CONTACT_ADD] = "contact",
                [K_DEAL_ADD] = "deal", [K_DEAL_UPDATE] = "deal update",
                [K_ROWS] = "product rows", [K_CONTACT_KEY] = "contact's new key"};

        if (code && strcmp(code, "OPERATION_TIME_LIMIT") == 0)
                hold(p->b, c->method, hold_end(p->b, c->method, 0),
                     "OPERATION_TIME_LIMIT inside a batch");
        /* a look-up is a read: whatever the portal's words, asking again may answer, and
         * a look-up never ends an order (nor becomes "not found") */
        if (cls == -EINVAL && c->kind <= K_COMPANY_FIND)
                cls = -EAGAIN;
        if (c->group) {
                if (!c->group->error[0]) {
                        snprintf(c->group->error, sizeof(c->group->error), "%s%s%s",
                                 code && *code ? code : "", code && *code ? " " : "", words);
                        c->group->error_class = cls;
                }
                return;
        }
        if (!o)
                return;
        /* the portal refused a party: once more without the e-mail (then gone from the
         * order, so a second refusal ends here) */
        if ((c->kind == K_CONTACT_ADD || c->kind == K_COMPANY_ADD) && cls == -EINVAL &&
            o->email[0]) {
                char note[400];
                snprintf(note, sizeof(note), "e-mail \"%s\" dropped: Bitrix24 refused the %s "
                         "with it (%s)", o->email, what[c->kind], words);
                store_writes_link(p->w, o->s->order_id, "b24.note", note);
                log_warn("b24.email_dropped", "order_id=%s reason=\"%s\"", o->s->order_id, words);
                /* gone from the order: neither sent nor cached for the contact */
                creating(p, o, c->kind == K_COMPANY_ADD, false);
                o->email[0] = '\0';
                creating(p, o, c->kind == K_COMPANY_ADD, true);
                party_add(p, o, c->order, c->kind == K_COMPANY_ADD);
                return;
        }
        if (c->kind == K_CONTACT_KEY)
                creating(p, o, false, false);
        if (c->kind == K_CONTACT_KEY && cls == -EINVAL) {
                /* the portal will not take the key: the deal goes on without it */
                log_warn("b24.contact_key_refused", "order_id=%s contact_id=%s reason=\"%s\"",
                         o->s->order_id, o->contact, words);
                return;
        }
        if (c->kind == K_CONTACT_ADD || c->kind == K_COMPANY_ADD)
                creating(p, o, c->kind == K_COMPANY_ADD, false);
        if (cls == -EACCES && !p->auth_refused) {
                p->auth_refused = true; /* the pass ends as a refused webhook */
                snprintf(p->auth_code, sizeof(p->auth_code), "%s", code ? code : "");
        }
        p->out[o->w].retry_after_ms = code && strcmp(code, "OPERATION_TIME_LIMIT") == 0
                                              ? held_until(p->b, c->method) - clock_wall_ms()
                                              : 0;
        finish(p, o, cls == -EINVAL ? STORE_PERMFAIL : STORE_TEMPFAIL,
               "Bitrix24 refused the %s: %s%s%s", what[c->kind], code && *code ? code : "",
               code && *code ? " " : "", words);
}

/* Learns which contact holds each phone and e-mail of a contact.list answer. */
static int learn_contacts(struct pass *p, json_t *list)
{
        size_t i, j;
        json_t *c, *m;
        int r = 0;

        json_array_foreach(list, i, c)
        {
                char id[32];
                if (!result_id(c, id, sizeof(id)))
                        continue;
                for (int k = 0; k < 2; k++) {
                        const char *kind = k ? "contact.email" : "contact.phone";
                        json_array_foreach(json_object_get(c, k ? "EMAIL" : "PHONE"), j, m)
                        {
                                const char *val = json_string_value(json_object_get(m, "VALUE"));
                                char norm[256], *have = NULL;
                                if (!val || (k ? email_normalize(val, norm, sizeof(norm))
                                               : phone_normalize(val, p->b->conf->country_code,
                                                                 norm, sizeof(norm))) < 0)
                                        continue;
                                if (meta_read(p->st, p->w, kind, norm, &have) < 0)
                                        r = -EIO;
                                else if (!have)
                                        meta_write(p->w, kind, norm, id);
                                free(have);
                        }
                }
        }
        return r;
}

/* The owned fields a deal.add or deal.update sent, as the next update compares them. */
static void remember_sent(struct pass *p, struct order *o, const struct cmd *c)
{
        char *sent = json_dumps(c->sent, JSON_COMPACT | JSON_SORT_KEYS);

        set_link(p, o, "b24.sent", &o->sent, sent);
        free(sent);
}

/* The contact now holds the order's phone and e-mail: cache them (oldest wins). */
static void cache_keys(struct pass *p, const struct order *o, const char *contact)
{
        if (o->phone[0])
                meta_write(p->w, "contact.phone", o->phone, contact);
        if (o->email[0])
                meta_write(p->w, "contact.email", o->email, contact);
}

/* Reads one command's own result. Returns 0, or -EIO when a store read failed. */
static int settle(struct pass *p, struct cmd *c, json_t *result)
{
        struct order *o = c->order != NONE ? &p->os[c->order] : NULL;
        char id[32];
        size_t i;
        json_t *v;
        int r = 0;

        switch (c->kind) {
        case K_DEAL_FIND:
                if (!json_is_array(result)) {
                        command_failed(p, c, "", "the deal look-up answered no list", -EAGAIN);
                        break;
                }
                free(o->deal);
                o->deal = NULL;
                if (json_array_size(result) == 0) {
                        char key[KEY_SIZE];
                        snprintf(key, sizeof(key), "deal:%s", o->s->order_id);
                        absent_note(p->b, key);
                } else {
                        if (!result_id(json_array_get(result, 0), id, sizeof(id))) {
                                command_failed(p, c, "", "the deal look-up answered no id",
                                               -EAGAIN);
                                o->deal = xstrdup(PENDING);
                                break;
                        }
                        link_deal(p, o, id);
                        log_info("b24.deal_found", "order_id=%s deal_id=%s reason=\"an "
                                 "earlier create's answer was lost\"", o->s->order_id, id);
                }
                break;
        case K_FIND: {
                json_t *ids = json_object_get(result, "CONTACT");
                if (!json_is_object(result) && !(json_is_array(result) &&
                                                 json_array_size(result) == 0)) {
                        command_failed(p, c, "", "findbycomm answered no map", -EAGAIN);
                        break;
                }
                if (json_array_size(ids) > 0) {
                        /* which value is whose: read the contacts' phones and e-mails */
                        json_t *chunk = json_array();
                        json_array_foreach(ids, i, v)
                        {
                                if (json_is_integer(v) || json_is_string(v))
                                        json_array_append(chunk, v);
                                if (json_array_size(chunk) == 0 ||
                                    (json_array_size(chunk) < LIST_PAGE &&
                                     i + 1 < json_array_size(ids)))
                                        continue;
                                /* the chunk goes into the command ("o"): a new one
                                 * follows, never the same array cleared under it */
                                enqueue(p, K_CONTACT_LIST, "crm.contact.list",
                                        json_pack("{s:{s:o}, s:[s,s,s], s:{s:s}}", "filter",
                                                  "ID", chunk, "select", "ID", "PHONE",
                                                  "EMAIL", "order", "ID", "ASC"),
                                        NONE, c->group, NULL);
                                chunk = json_array();
                        }
                        json_decref(chunk);
                }
                break;
        }
        case K_CONTACT_LIST:
                if (!json_is_array(result)) {
                        command_failed(p, c, "", "the contact list answered no list", -EAGAIN);
                        break;
                }
                r = learn_contacts(p, result);
                break;
        case K_COMPANY_FIND: {
                json_t *co;
                if (!json_is_array(result)) {
                        command_failed(p, c, "", "the company list answered no list",
                                       -EAGAIN);
                        break;
                }
                json_array_foreach(result, i, co)
                {
                        const char *t = json_string_value(json_object_get(co, "TITLE"));
                        char name[300];
                        if (!t || !result_id(co, id, sizeof(id)))
                                continue;
                        lower(t, name, sizeof(name));
                        meta_write(p->w, "company.title", name, id);
                }
                if (json_array_size(result) >= LIST_PAGE && !c->single) {
                        /* a full page may hide a title's oldest company: ask each title
                         * that was not seen on its own */
                        json_t *t;
                        json_array_foreach(c->group->values, i, t)
                        {
                                char *have = NULL;
                                if (meta_read(p->st, p->w, "company.title",
                                              json_string_value(t), &have) < 0)
                                        r = -EIO;
                                if (have) {
                                        free(have);
                                        continue;
                                }
                                /* the group is answered when its singles are */
                                if (enqueue(p, K_COMPANY_FIND, "crm.company.list",
                                            json_pack("{s:{s:O}, s:[s,s], s:{s:s}}", "filter",
                                                      "=TITLE", t, "select", "ID", "TITLE",
                                                      "order", "ID", "ASC"),
                                            NONE, c->group, NULL))
                                        p->pool[p->pool_len - 1]->single = true;
                        }
                }
                break;
        }
        case K_COMPANY_ADD:
                creating(p, o, true, false);
                if (!result_id(result, id, sizeof(id))) {
                        command_failed(p, c, "", "crm.company.add answered no id", -EAGAIN);
                        break;
                }
                meta_write(p->w, "company.title", o->title_key, id);
                set_link(p, o, "b24.company", &o->company, id);
                o->company_linked = true;
                break;
        case K_CONTACT_ADD:
                creating(p, o, false, false);
                if (!result_id(result, id, sizeof(id))) {
                        command_failed(p, c, "", "crm.contact.add answered no id", -EAGAIN);
                        break;
                }
                cache_keys(p, o, id);
                set_link(p, o, "b24.contact", &o->contact, id);
                o->contact_linked = true;
                break;
        case K_DEAL_ADD:
                if (!result_id(result, id, sizeof(id))) {
                        command_failed(p, c, "", "crm.deal.add answered no id", -EAGAIN);
                        break;
                }
                link_deal(p, o, id);
                remember_sent(p, o, c);
                log_info("b24.deal_created", "order_id=%s deal_id=%s stage=%s", o->s->order_id,
                         id, o->stage);
                break;
        case K_DEAL_UPDATE:
                if (!json_is_true(result)) {
                        command_failed(p, c, "", "crm.deal.update did not answer true",
                                       -EAGAIN);
                        break;
                }
                remember_sent(p, o, c);
                break;
        case K_CONTACT_KEY:
                creating(p, o, false, false);
                if (!json_is_true(result)) {
                        command_failed(p, c, "", "crm.contact.update did not answer true",
                                       -EAGAIN);
                        break;
                }
                cache_keys(p, o, o->contact);
                break;
        case K_ROWS:
                if (!json_is_true(result)) {
                        command_failed(p, c, "", "crm.deal.productrows.set did not answer true",
                                       -EAGAIN);
                        break;
                }
                set_link(p, o, "b24.rows", &o->rows_done, o->rows_hash);
                break;
        }
        return r;
}

/* A look-up group is answered: each value it left without a record is noted absent. */
static void group_answered(struct pass *p, struct group *g)
{
        const char *prefix = strcmp(g->kind, "contact.phone") == 0   ? "phone:"
                             : strcmp(g->kind, "contact.email") == 0 ? "email:"
                                                                     : "title:";
        size_t i;
        json_t *v;

        json_array_foreach(g->values, i, v)
        {
                char key[KEY_SIZE], *have = NULL;
                if (meta_read(p->st, p->w, g->kind, json_string_value(v), &have) < 0)
                        continue; /* not noted: asked again next time */
                if (!have) {
                        snprintf(key, sizeof(key), "%s%s", prefix, json_string_value(v));
                        absent_note(p->b, key);
                }
                free(have);
        }
}

/* The command is answered (or failed): release its order and group. */
static void release(struct cmd *c, struct pass *p)
{
        if (c->order != NONE)
                p->os[c->order].outstanding--;
        if (c->group && --c->group->outstanding == 0 && !c->group->error[0])
                group_answered(p, c->group);
}

/* --- sending --------------------------------------------------------------------------- */

/* Sends one command alone, as JSON. Returns 0 (its verdict read), or the call's code
 * when the failure is not the command's own (-EAGAIN transport/limit, -EACCES). */
static int send_direct(struct pass *p, struct cmd *c)
{
        struct b24_error err;
        json_t *doc = NULL;
        int r;

        p->sent_any = true;
        r = b24_call(p->b->client, c->method, json_incref(c->params), &doc, &err);
        if (r == 0) {
                note_time(p->b, c->method, json_object_get(doc, "time"));
                r = settle(p, c, json_object_get(doc, "result"));
                json_decref(doc);
                return r;
        }
        json_decref(doc);
        if (r == -EINVAL || strcmp(err.code, "OPERATION_TIME_LIMIT") == 0) {
                if (strcmp(err.code, "OPERATION_TIME_LIMIT") == 0)
                        hold(p->b, c->method, hold_end(p->b, c->method, err.retry_after_ms),
                             "OPERATION_TIME_LIMIT");
                command_failed(p, c, err.code, err.description, r == -EINVAL ? -EINVAL
                                                                             : -EAGAIN);
                return 0;
        }
        p->err = err;
        return r;
}

/* The portal's unkeyed errors (a list): their words, for the orders they may concern. */
static void unkeyed_words(json_t *errors, char *buf, size_t size)
{
        json_t *e = json_array_get(errors, 0);
        const char *d = json_string_value(json_object_get(e, "error_description"));
        const char *code = json_string_value(json_object_get(e, "error"));

        snprintf(buf, size, "no result for the command; the portal's errors could not be "
                 "matched to commands (%zu, first: %s %s)", json_array_size(errors),
                 code ? code : "", d ? d : "");
}

/* Sends `cmds` as one batch and reads every command's own result. Returns 0, -EIO (a
 * store read failed), or the call's code when the batch failed as a whole. */
static int send_batch(struct pass *p, struct cmd **cmds, size_t n)
{
        json_t *cmd = json_object(), *doc = NULL, *res, *results, *errors, *times;
        char key[16], words[300];
        int r;

        for (size_t i = 0; i < n; i++) {
                char *q = b24_query_string(cmds[i]->method, cmds[i]->params);
                snprintf(key, sizeof(key), "k%zu", i);
                /* ASCII, bounded by QUERY_MAX: NULL only past that bound */
                json_object_set_new(cmd, key, q ? json_string(q) : json_string(""));
                free(q);
        }
        p->sent_any = true;
        r = b24_call(p->b->client, "batch", json_pack("{s:i, s:o}", "halt", 0, "cmd", cmd), &doc,
                     &p->err);
        if (r != 0)
                return r;
        res = json_object_get(doc, "result");
        results = json_object_get(res, "result");
        errors = json_object_get(res, "result_error");
        times = json_object_get(res, "result_time");
        r = 0;
        for (size_t i = 0; i < n; i++) {
                struct cmd *c = cmds[i];
                json_t *mine, *e;
                snprintf(key, sizeof(key), "k%zu", i);
                mine = json_is_object(results) ? json_object_get(results, key) : NULL;
                e = json_is_object(errors) ? json_object_get(errors, key) : NULL;
                if (json_is_object(times))
                        note_time(p->b, c->method, json_object_get(times, key));
                if (e) {
                        const char *code = json_string_value(json_object_get(e, "error"));
                        const char *d = json_string_value(json_object_get(e, "error_description"));
                        command_failed(p, c, code ? code : "",
                                       d && *d ? d : "an error without a description",
                                       b24_classify_error(code, 400));
                } else if (!mine || json_is_null(mine)) {
                        if (json_is_array(errors) && json_array_size(errors) > 0)
                                unkeyed_words(errors, words, sizeof(words));
                        else
                                snprintf(words, sizeof(words), "the portal answered neither a "
                                         "result nor an error for the command");
                        command_failed(p, c, "", words, -EAGAIN);
                } else if (settle(p, c, mine) < 0) {
                        r = -EIO;
                }
        }
        json_decref(doc);
        return r;
}

/* True when other orders are due in the store now: a partial batch would waste a call.
 * An order carried CARRY_MAX times in a row is not carried again, whatever the store
 * says, so that no order waits for ever on a batch that does not fill. */
static bool more_due(struct pass *p)
{
        for (size_t i = 0; i < p->n; i++)
                if (!p->os[i].finished && p->os[i].carried_out)
                        return false;
        return store_next_due(p->st, "bitrix24") <= clock_wall_ms();
}

/* Takes the next call's commands from the pool (at most 50; a direct one alone). Orders
 * whose command's method is held are stopped with the hold's time. */
static size_t take(struct pass *p, struct cmd **ret, bool *direct)
{
        size_t n = 0, keep = 0;
        int64_t now = clock_wall_ms();

        *direct = false;
        for (size_t i = 0; i < p->pool_len; i++) {
                struct cmd *c = p->pool[i];
                int64_t until = held_until(p->b, c->method);
                if (until > now) {
                        if (c->order != NONE) {
                                struct order *o = &p->os[c->order];
                                p->out[o->w].retry_after_ms = until - now;
                                finish(p, o, STORE_TEMPFAIL, "Bitrix24 holds %s for %llds "
                                       "(OPERATION_TIME_LIMIT)", c->method,
                                       (long long)((until - now + 999) / 1000));
                        } else {
                                snprintf(c->group->error, sizeof(c->group->error),
                                         "%s is held (OPERATION_TIME_LIMIT)", c->method);
                                c->group->error_class = -EAGAIN;
                        }
                        release(c, p);
                        cmd_free(c);
                        continue;
                }
                if (c->order != NONE && p->os[c->order].finished) {
                        /* an add it would have made: another order of the buyer makes it */
                        if (c->kind == K_CONTACT_ADD || c->kind == K_CONTACT_KEY ||
                            c->kind == K_COMPANY_ADD)
                                creating(p, &p->os[c->order], c->kind == K_COMPANY_ADD, false);
                        release(c, p);
                        cmd_free(c);
                        continue;
                }
                if (n == 0 && c->direct) {
                        ret[n++] = c;
                        *direct = true;
                        continue;
                }
                if (*direct || c->direct || n == BATCH_MAX) {
                        p->pool[keep++] = c;
                        continue;
                }
                ret[n++] = c;
        }
        p->pool_len = keep;
        return n;
}

/* Before the commands are sent: the durable "maybe created" mark for each deal.add, and
 * the look-up notes an add makes stale. */
static void mark_pending(struct pass *p, struct cmd **cmds, size_t *n)
{
        size_t keep = 0;

        for (size_t i = 0; i < *n; i++) {
                struct cmd *c = cmds[i];
                struct order *o = c->order != NONE ? &p->os[c->order] : NULL;
                /* from the moment its add is sent, a record may exist whatever the answer:
                 * "looked up, none" no longer holds */
                if (c->kind == K_DEAL_ADD) {
                        char key[KEY_SIZE];
                        snprintf(key, sizeof(key), "deal:%s", o->s->order_id);
                        json_object_del(p->b->absent, key);
                }
                for (enum key k = KEY_PHONE; k <= KEY_TITLE; k++) {
                        char key[KEY_SIZE];
                        bool adds = k == KEY_TITLE ? c->kind == K_COMPANY_ADD
                                                   : c->kind == K_CONTACT_ADD ||
                                                             c->kind == K_CONTACT_KEY;
                        if (adds && key_of(o, k, key))
                                json_object_del(p->b->absent, key);
                }
                if (c->kind == K_DEAL_ADD && !o->pending_stored) {
                        if (store_link_set(p->st, o->s->order_id, "b24.deal", PENDING) < 0) {
                                finish(p, o, STORE_TEMPFAIL, "not sent: the store could not "
                                       "mark the deal pending before its create (%s)",
                                       store_errmsg(p->st));
                                release(c, p);
                                cmd_free(c);
                                continue;
                        }
                        o->pending_stored = true;
                }
                cmds[keep++] = c;
        }
        *n = keep;
}

static void build_want(struct pass *p, int *r)
{
        json_t *want = json_object();

        for (size_t i = 0; *r == 0 && i < p->n; i++)
                if (advance(p, &p->os[i], i, want) < 0)
                        *r = -EIO;
        if (*r == 0)
                ask_shared(p, want);
        json_decref(want);
}

/* Whether to end the pass before a partial batch, carrying its unfinished orders into
 * the next one, whose new orders fill the batch. It pays when other orders are due and
 * the next pass can take them in: this one has room, or a quarter of its orders are
 * finished. Before its first call, or while busy (more than one order), the pass waits up
 * to LINGER_MS for other orders to become due; a lone order does not wait between its
 * steps. */
static bool carry(struct pass *p)
{
        size_t finished = 0;
        int64_t until = clock_mono_ms() + LINGER_MS;

        for (size_t i = 0; i < p->n; i++)
                finished += p->os[i].finished;
        if (p->n >= p->b->ops.batch_max && finished * 4 < p->n)
                return false;
        if (more_due(p))
                return true;
        if (p->sent_any && p->n < 2)
                return false;
        while (clock_mono_ms() < until && !atomic_load(&p->b->stopping)) {
                clock_sleep_ms(LINGER_POLL_MS);
                if (more_due(p))
                        return true;
        }
        return false;
}

/* Runs the pass. Returns 0, a b24_call code, -EIO or -ECANCELED. */
static int run(struct pass *p)
{
        struct cmd *cmds[BATCH_MAX];
        int r = 0;

        for (;;) {
                size_t n, ready;
                bool direct;

                build_want(p, &r);
                if (r < 0)
                        return r;
                ready = p->pool_len;
                if (ready == 0)
                        return 0;
                if (ready < BATCH_MAX && carry(p))
                        return 1; /* the next pass fills the batch */
                if (atomic_load(&p->b->stopping)) {
                        snprintf(p->err.code, sizeof(p->err.code), "stopping");
                        snprintf(p->err.description, sizeof(p->err.description),
                                 "not sent: the daemon is stopping");
                        return -ECANCELED;
                }
                n = take(p, cmds, &direct);
                mark_pending(p, cmds, &n);
                if (n == 0)
                        continue;
                if (direct)
                        r = send_direct(p, cmds[0]);
                else
                        r = send_batch(p, cmds, n);
                for (size_t i = 0; i < n; i++) {
                        /* a call that failed as a whole answered no look-up: "none" must
                         * not be noted for its values */
                        if (r < 0 && r != -EIO && cmds[i]->group && !cmds[i]->group->error[0])
                                snprintf(cmds[i]->group->error, sizeof(cmds[i]->group->error),
                                         "%s", "the call carrying it failed");
                        release(cmds[i], p);
                        cmd_free(cmds[i]);
                }
                if (r < 0)
                        return r;
        }
}

/* --- the pass -------------------------------------------------------------------------- */

static void order_free(struct order *o)
{
        snapshot_free(o->s);
        free(o->deal);
        free(o->contact);
        free(o->company);
        free(o->rows_done);
        free(o->sent);
}

static int read_links(struct pass *p, struct order *o)
{
        const char *id = o->s->order_id;
        struct store *st = p->st;
        int r;

        if ((r = link_read(st, p->w, id, "b24.deal", &o->deal)) < 0 ||
            (r = link_read(st, p->w, id, "b24.contact", &o->contact)) < 0 ||
            (r = link_read(st, p->w, id, "b24.company", &o->company)) < 0 ||
            (r = link_read(st, p->w, id, "b24.rows", &o->rows_done)) < 0 ||
            (r = link_read(st, p->w, id, "b24.sent", &o->sent)) < 0)
                return r;
        o->pending_stored = o->deal && strcmp(o->deal, PENDING) == 0;
        o->contact_linked = o->contact != NULL;
        o->company_linked = o->company != NULL;
        return 0;
}

void b24_repair_writes(struct store_writes *w, const char *order_id, unsigned what)
{
        /* a deal looked up again may be another one (or a new one): it gets everything */
        if (what & B24_REPAIR_DEAL) {
                store_writes_link(w, order_id, "b24.deal", PENDING);
                what |= B24_REPAIR_FIELDS | B24_REPAIR_ROWS;
        }
        /* deal_step sends the owned fields that differ from b24.sent: none recorded, all */
        if (what & B24_REPAIR_FIELDS)
                store_writes_link(w, order_id, "b24.sent", "{}");
        /* advance() sends the rows when b24.rows is not the basket's hash */
        if (what & B24_REPAIR_ROWS)
                store_writes_link(w, order_id, "b24.rows", "reconcile");
}

/* The order's deal stage into o->stage: 0, or -1 with the order finished. A configured
 * @paid moves a deal only to a later stage, so a paid order's stage depends on the
 * pipeline's SORT: it is read once and again after PIPELINE_TTL_MS. When it cannot be read,
 * the paid order waits (TEMPFAIL) rather than land at a guessed stage; a failure is
 * remembered for PIPELINE_RETRY_MS, so a pass of many paid orders asks once. */
#define PIPELINE_TTL_MS (10 * 60 * 1000)
#define PIPELINE_RETRY_MS 10000

static int order_stage(struct pass *p, struct order *o)
{
        struct b24 *b = p->b;
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
                finish(p, o, STORE_TEMPFAIL, "the pipeline's stages could not be read: %s",
                       pc->error);
                return -1;
        }
        if (b24_conf_order_stage(b->conf, needed ? &pc->p : NULL, o->s, o->stage,
                                 sizeof(o->stage)) < 0) {
                finish(p, o, STORE_PERMFAIL, "site status \"%s\" has no entry in [bitrix24.map]",
                       o->s->status);
                return -1;
        }
        return 0;
}

/* Reads an order: its snapshot, stage, contact keys and links. 0, or -EIO. */
static int order_load(struct pass *p, struct order *o, const struct store_work *work)
{
        struct snapshot_error serr;
        const struct snapshot *s;

        if (snapshot_parse(work->json, strlen(work->json), &o->s, &serr) < 0) {
                finish(p, o, STORE_PERMFAIL, "stored snapshot unreadable: %s %s", serr.field,
                       serr.message);
                return 0;
        }
        s = o->s;
        if (order_stage(p, o) < 0)
                return 0;
        if (phone_normalize(s->buyer.phone, p->b->conf->country_code, o->phone,
                            sizeof(o->phone)) < 0)
                o->phone[0] = '\0';
        if (email_normalize(s->buyer.email, o->email, sizeof(o->email)) < 0) {
                o->email[0] = '\0';
        } else if (!b24_email_ok(o->email)) {
                char note[400];
                snprintf(note, sizeof(note), "e-mail \"%.200s\" dropped: Bitrix24 refuses it "
                         "(check_email, or longer than %d characters)", o->email,
                         B24_MULTIFIELD_MAX);
                store_writes_link(p->w, s->order_id, "b24.note", note);
                log_warn("b24.email_dropped", "order_id=%s reason=\"the portal refuses this "
                         "e-mail\"", s->order_id);
                o->email[0] = '\0';
        }
        if (s->buyer.legal && s->buyer.company)
                lower(s->buyer.company, o->title_key, sizeof(o->title_key));
        rows_hash(s, p->b->conf->delivery_row_name, o->rows_hash);
        /* a link that cannot be read is not "no link": stop before any request */
        return read_links(p, o) < 0 ? -EIO : 0;
}

static void pass_free(struct pass *p)
{
        for (size_t i = 0; i < p->pool_len; i++)
                cmd_free(p->pool[i]);
        free(p->pool);
        while (p->groups) {
                struct group *g = p->groups;
                p->groups = g->next;
                json_decref(g->values);
                free(g);
        }
        json_decref(p->asked);
        json_decref(p->creating);
        for (size_t i = 0; i < p->n; i++)
                order_free(&p->os[i]);
        free(p->os);
}

static int deliver(void *ctx, struct store *st, struct store_writes *writes,
                   const struct store_work *works, size_t n, struct sink_outcome *out)
{
        struct b24 *b = ctx;
        struct pass p = {.b = b, .st = st, .w = writes, .n = n, .out = out, .works = works};
        size_t done = 0, carried = 0;
        int r = 0;

        absent_prune(b);
        p.os = xcalloc(n, sizeof(*p.os));
        p.asked = json_object();
        p.creating = json_object();
        for (size_t i = 0; i < n; i++)
                p.os[i].w = i;
        if (atomic_load(&b->stopping)) {
                snprintf(p.err.description, sizeof(p.err.description),
                         "not sent: the daemon is stopping");
                r = -ECANCELED;
        }
        for (size_t i = 0; r == 0 && i < n; i++) {
                r = order_load(&p, &p.os[i], &works[i]);
                p.os[i].carried_out =
                        p.os[i].s && json_integer_value(json_object_get(
                                             b->carries, p.os[i].s->order_id)) >= CARRY_MAX;
        }
        if (r == 0)
                r = run(&p);
        for (size_t i = 0; i < n; i++) {
                struct order *o = &p.os[i];
                if (o->finished) {
                        if (o->s)
                                json_object_del(b->carries, o->s->order_id);
                        done += out[i].kind == STORE_OK;
                        continue;
                }
                if (r == 1) {
                        json_t *k = json_object_get(b->carries, o->s->order_id);
                        if (json_object_size(b->carries) > 100000)
                                json_object_clear(b->carries); /* a bound, never reached */
                        json_object_set_new(b->carries, o->s->order_id,
                                            json_integer(json_integer_value(k) + 1));
                        /* carried: what it learned is in `writes`; the next pass resumes */
                        out[i].carried = true;
                        finish(&p, o, STORE_WAITING, "%s",
                               "carried into the next pass with more orders");
                        carried++;
                } else if (r == 0) {
                        /* cannot happen: run() ends with an empty pool only when every
                         * order has its verdict; say so rather than guess */
                        log_err("b24.no_step", "order_id=%s", o->s ? o->s->order_id : "?");
                        finish(&p, o, STORE_TEMPFAIL, "%s", "no step was left to take");
                } else if (r == -EIO) {
                        finish(&p, o, STORE_TEMPFAIL, "not sent: the store failed (%s)",
                               store_errmsg(st));
                } else if (r == -ECANCELED) {
                        finish(&p, o, STORE_TEMPFAIL, "%s", p.err.description);
                } else {
                        out[i].retry_after_ms = p.err.retry_after_ms;
                        out[i].uncertain = strcmp(p.err.code, "transport") == 0;
                        finish(&p, o, r == -EINVAL ? STORE_PERMFAIL : STORE_TEMPFAIL,
                               "Bitrix24: %s %s", p.err.code, p.err.description);
                }
        }
        if (r == 1)
                r = 0;
        if (r == 0 && p.auth_refused) {
                r = -EACCES;
                snprintf(p.err.code, sizeof(p.err.code), "%s", p.auth_code);
        }
        if (r == -EACCES)
                log_err("b24.auth_refused", "code=%s hint=\"the incoming webhook was refused: "
                        "check [bitrix24] webhook_url_file and the webhook's CRM rights\"",
                        p.err.code);
        log_info("b24.pass", "orders=%zu done=%zu carried=%zu status=%d max_operating_s=%.3f",
                 n, done, carried, r, b24_client_max_operating(b->client));
        pass_free(&p);
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

/* Taken over from another server: its last requests may still fill the portal's bucket. */
static void b24_taken(void *ctx)
{
        struct b24 *b = ctx;

        b24_client_fill(b->client);
}

static void b24_free(void *ctx)
{
        struct b24 *b = ctx;

        if (!b)
                return;
        b24_client_free(b->client);
        json_decref(b->absent);
        json_decref(b->carries);
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
        b24_client_measure(b->client, "bitrix24");
        atomic_init(&b->stopping, false);
        b->absent = json_object();
        b->carries = json_object();
        b->ops = (struct sink_ops){.name = "bitrix24",
                                   .batch_max = (size_t)conf->orders_per_batch,
                                   .deliver = deliver,
                                   .stop = b24_stop,
                                   .taken = b24_taken,
                                   .free = b24_free};
        *ret_ops = &b->ops;
        *ret_ctx = b;
        return 0;
}
