/*
 * JSON → struct snapshot with jansson, then the canonical JSON back out. Unknown keys are
 * refused at every level, naming their path (issue #13): a misspelt "delivery.nmae" would
 * otherwise vanish silently and the CRM would show an order without its delivery. Known
 * keys must have the right type and bounds. Only the Roistat visit is forgiving: it comes
 * from a cookie, so a bad one is dropped and the order is kept.
 */
#include "model/snapshot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "model/iso8601.h"
#include "model/money.h"
#include "base/xalloc.h"

__attribute__((format(printf, 3, 4))) static int fail(struct snapshot_error *err,
                                                     const char *field, const char *fmt, ...)
{
        va_list ap;

        snprintf(err->field, sizeof(err->field), "%s", field);
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* No control characters; with `lines`, line breaks and tabs are allowed (a buyer's comment
 * or an address property is typed in a textarea). */
static bool printable(const char *s, bool lines)
{
        for (; *s; s++)
                if (((unsigned char)*s < 0x20 &&
                     !(lines && (*s == '\n' || *s == '\r' || *s == '\t'))) ||
                    *s == 0x7f)
                        return false;
        return true;
}

/* Refuses a member of `obj` that is not in `known` (NULL-terminated), naming its path
 * "<path>.<key>". */
static int only_known(json_t *obj, const char *path, const char *const *known,
                      struct snapshot_error *err)
{
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v)
        {
                size_t i;
                char where[96];

                for (i = 0; known[i] && strcmp(known[i], key) != 0; i++)
                        ;
                if (known[i])
                        continue;
                if (!key[0]) /* the empty key is still named: as "" */
                        key = "\"\"";
                if (path[0])
                        snprintf(where, sizeof(where), "%s.%s", path, key);
                else
                        snprintf(where, sizeof(where), "%s", key);
                return fail(err, where, "is not a field of the snapshot contract (README, The "
                            "ingest contract)");
        }
        return 0;
}

/* Reads a string value `v` (absent or null → *ret NULL, or "is required"); `lines` allows
 * line breaks and tabs (text typed in a textarea). */
static int read_text(json_t *v, const char *path, size_t max, bool required, bool lines,
                     char **ret, struct snapshot_error *err)
{
        const char *s;

        *ret = NULL;
        if (!v || json_is_null(v)) {
                if (required)
                        return fail(err, path, "is required");
                return 0;
        }
        if (!json_is_string(v))
                return fail(err, path, "must be a string");
        s = json_string_value(v);
        if (strlen(s) != json_string_length(v))
                return fail(err, path, "must not contain NUL characters");
        if (required && s[0] == '\0')
                return fail(err, path, "must not be empty");
        if (strlen(s) > max)
                return fail(err, path, "is longer than %zu bytes", max);
        if (!printable(s, lines))
                return fail(err, path, lines ? "must not contain control characters other "
                                               "than line breaks and tabs"
                                             : "must not contain control characters");
        *ret = xstrdup(s);
        return 0;
}

/* Reads an optional string field: absent or null → *ret NULL. */
static int get_text(json_t *obj, const char *key, const char *path, size_t max, bool required,
                    char **ret, struct snapshot_error *err)
{
        return read_text(json_object_get(obj, key), path, max, required, false, ret, err);
}

/* get_text for text typed in a textarea: line breaks and tabs allowed. Optional. */
static int get_lines(json_t *obj, const char *key, const char *path, size_t max, char **ret,
                     struct snapshot_error *err)
{
        return read_text(json_object_get(obj, key), path, max, false, true, ret, err);
}

static bool id_char(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '-' || c == '_';
}

bool snapshot_id_chars(const char *s)
{
        for (; *s; s++)
                if (!id_char(*s))
                        return false;
        return true;
}

/* A status code: an id, or a Bitrix24 stage id ("C1:WON") for a deal snapshot. */
static bool status_chars(const char *s)
{
        for (; *s; s++)
                if (*s != ':' && !id_char(*s))
                        return false;
        return true;
}

static int get_money(json_t *obj, const char *key, const char *path, bool required,
                     bool *ret_present, int64_t *ret_minor, struct snapshot_error *err)
{
        json_t *v = json_object_get(obj, key);
        int r;

        if (ret_present)
                *ret_present = false;
        if (!v || json_is_null(v)) {
                if (required)
                        return fail(err, path, "is required");
                return 0;
        }
        if (!json_is_string(v))
                return fail(err, path, "must be a decimal string such as \"4990.00\"");
        r = money_parse(json_string_value(v), ret_minor);
        if (r == -ERANGE)
                return fail(err, path, "is too large");
        if (r < 0)
                return fail(err, path,
                            "must be a non-negative decimal with at most 2 fraction digits");
        if (ret_present)
                *ret_present = true;
        return 0;
}

static int get_bool(json_t *obj, const char *key, const char *path, bool *ret,
                    struct snapshot_error *err)
{
        json_t *v = json_object_get(obj, key);

        *ret = false;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_boolean(v))
                return fail(err, path, "must be true or false");
        *ret = json_is_true(v);
        return 0;
}

static int get_time(json_t *obj, const char *key, const char *path, bool required,
                    bool *ret_present, int64_t *ret, struct snapshot_error *err)
{
        json_t *v = json_object_get(obj, key);

        if (ret_present)
                *ret_present = false;
        if (!v || json_is_null(v))
                return required ? fail(err, path, "is required") : 0;
        if (!json_is_string(v) || iso8601_parse(json_string_value(v), ret) < 0)
                return fail(err, path,
                            "must be an ISO 8601 time with an offset, e.g. "
                            "\"2026-03-13T10:00:00+03:00\"");
        if (ret_present)
                *ret_present = true;
        return 0;
}

static const char *const buyer_keys[] = {"type", "name", "phone", "email", "company", "inn",
                                         NULL};
static const char *const item_keys[] = {"product_id", "name", "price", "base_price", "quantity",
                                        NULL};

static int parse_buyer(json_t *order, struct snapshot *s, struct snapshot_error *err)
{
        json_t *b = json_object_get(order, "buyer");
        struct snapshot_buyer *buyer = &s->buyer;
        char *type = NULL;
        int r;

        if (!b || json_is_null(b))
                return 0;
        if (!json_is_object(b))
                return fail(err, "order.buyer", "must be an object");
        if ((r = only_known(b, "order.buyer", buyer_keys, err)) < 0)
                return r;
        r = get_text(b, "type", "order.buyer.type", 16, false, &type, err);
        if (r < 0)
                return r;
        if (type && strcmp(type, "legal") == 0)
                buyer->legal = true;
        else if (type && strcmp(type, "individual") != 0) {
                free(type);
                return fail(err, "order.buyer.type", "must be \"individual\" or \"legal\"");
        }
        free(type);
        if ((r = get_text(b, "name", "order.buyer.name", SNAPSHOT_TEXT_MAX, false, &buyer->name,
                          err)) < 0 ||
            (r = get_text(b, "phone", "order.buyer.phone", 64, false, &buyer->phone, err)) < 0 ||
            (r = get_text(b, "email", "order.buyer.email", 254, false, &buyer->email, err)) < 0 ||
            (r = get_text(b, "company", "order.buyer.company", SNAPSHOT_TEXT_MAX, false,
                          &buyer->company, err)) < 0 ||
            (r = get_text(b, "inn", "order.buyer.inn", 12, false, &buyer->inn, err)) < 0)
                return r;
        if (buyer->email && buyer->email[0] && !strchr(buyer->email, '@'))
                return fail(err, "order.buyer.email", "must be an e-mail address");
        if (buyer->inn && buyer->inn[0]) {
                size_t n = strlen(buyer->inn);
                if (strspn(buyer->inn, "0123456789") != n || (n != 10 && n != 12))
                        return fail(err, "order.buyer.inn", "must be 10 or 12 digits");
        }
        return 0;
}

static int parse_items(json_t *order, struct snapshot *s, struct snapshot_error *err)
{
        json_t *items = json_object_get(order, "items");
        char path[64];
        size_t i;
        json_t *it;
        int r;

        if (!items || json_is_null(items))
                return 0;
        if (!json_is_array(items))
                return fail(err, "order.items", "must be an array");
        if (json_array_size(items) > SNAPSHOT_ITEMS_MAX)
                return fail(err, "order.items", "has more than %d rows", SNAPSHOT_ITEMS_MAX);
        s->items = xcalloc(json_array_size(items) + 1, sizeof(*s->items));
        json_array_foreach(items, i, it)
        {
                struct snapshot_item *item = &s->items[i];
                json_t *q;

                s->n_items = i + 1;
                snprintf(path, sizeof(path), "order.items[%zu]", i);
                if (!json_is_object(it))
                        return fail(err, path, "must be an object");
                if ((r = only_known(it, path, item_keys, err)) < 0)
                        return r;
                snprintf(path, sizeof(path), "order.items[%zu].product_id", i);
                if ((r = get_text(it, "product_id", path, SNAPSHOT_ID_MAX, false,
                                  &item->product_id, err)) < 0)
                        return r;
                snprintf(path, sizeof(path), "order.items[%zu].name", i);
                if ((r = get_text(it, "name", path, SNAPSHOT_TEXT_MAX, true, &item->name, err)) <
                    0)
                        return r;
                snprintf(path, sizeof(path), "order.items[%zu].price", i);
                if ((r = get_money(it, "price", path, true, NULL, &item->price_minor, err)) < 0)
                        return r;
                snprintf(path, sizeof(path), "order.items[%zu].base_price", i);
                if ((r = get_money(it, "base_price", path, false, &item->has_base_price,
                                   &item->base_price_minor, err)) < 0)
                        return r;
                if (item->has_base_price && item->base_price_minor < item->price_minor)
                        return fail(err, path, "must not be less than the price (the price "
                                    "after discount)");
                snprintf(path, sizeof(path), "order.items[%zu].quantity", i);
                q = json_object_get(it, "quantity");
                if (!q || !json_is_string(q))
                        return fail(err, path, "is required, as a decimal string such as \"2\"");
                r = quantity_parse(json_string_value(q), &item->quantity_milli);
                if (r < 0 || item->quantity_milli == 0)
                        return fail(err, path,
                                    "must be a positive decimal with at most 3 fraction digits");
        }
        return 0;
}

static const char *const deal_keys[] = {"id", "title", NULL};

/* order.deal: {"id": digits, "title": text?}, a deal read from Bitrix24 (snapshot.h). */
static int parse_deal(json_t *order, struct snapshot *s, struct snapshot_error *err)
{
        json_t *d = json_object_get(order, "deal");
        int r;

        if (!d || json_is_null(d))
                return 0;
        if (!json_is_object(d))
                return fail(err, "order.deal", "must be an object");
        if ((r = only_known(d, "order.deal", deal_keys, err)) < 0)
                return r;
        if ((r = get_text(d, "id", "order.deal.id", 18, true, &s->deal_id, err)) < 0 ||
            (r = get_text(d, "title", "order.deal.title", SNAPSHOT_TEXT_MAX, false,
                          &s->deal_title, err)) < 0)
                return r;
        if (strspn(s->deal_id, "0123456789") != strlen(s->deal_id) || s->deal_id[0] == '0')
                return fail(err, "order.deal.id", "must be a Bitrix24 deal id (digits)");
        return 0;
}

const char *const snapshot_utm_names[SNAPSHOT_UTM_N + 1] = {"source", "medium", "campaign",
                                                            "content", "term", NULL};

static const char *const delivery_keys[] = {"name", "price", "base_price", NULL};
static const char *const payment_keys[] = {"name", "sum", "paid", NULL};

/* lid, person_type: 1..SNAPSHOT_CODE_MAX of [A-Za-z0-9_-]. */
static int get_code(json_t *obj, const char *key, const char *path, char **ret,
                    struct snapshot_error *err)
{
        int r = get_text(obj, key, path, SNAPSHOT_CODE_MAX, false, ret, err);

        if (r < 0 || !*ret)
                return r;
        if (!(*ret)[0] || !snapshot_id_chars(*ret))
                return fail(err, path, "must be 1-%d letters, digits, '-' or '_'",
                            SNAPSHOT_CODE_MAX);
        return 0;
}

/* An optional array of at most `max` members: 0 with *ret (NULL when absent). */
static int get_array(json_t *obj, const char *key, const char *path, size_t max, json_t **ret,
                     struct snapshot_error *err)
{
        json_t *v = json_object_get(obj, key);

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return fail(err, path, "must be an array");
        if (json_array_size(v) > max)
                return fail(err, path, "has more than %zu members", max);
        *ret = v;
        return 0;
}

/* An optional object: 0 with *ret (NULL when absent). */
static int get_object(json_t *obj, const char *key, const char *path, json_t **ret,
                      struct snapshot_error *err)
{
        json_t *v = json_object_get(obj, key);

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return fail(err, path, "must be an object");
        *ret = v;
        return 0;
}

/* order.delivery: {"name"?, "price", "base_price"?}. */
static int parse_delivery(json_t *order, struct snapshot *s, struct snapshot_error *err)
{
        struct snapshot_delivery *d = &s->delivery;
        json_t *o;
        int r;

        if ((r = get_object(order, "delivery", "order.delivery", &o, err)) < 0 || !o)
                return r;
        if ((r = only_known(o, "order.delivery", delivery_keys, err)) < 0 ||
            (r = get_text(o, "name", "order.delivery.name", SNAPSHOT_TEXT_MAX, false, &d->name,
                          err)) < 0 ||
            (r = get_money(o, "price", "order.delivery.price", true, NULL, &d->price_minor,
                           err)) < 0 ||
            (r = get_money(o, "base_price", "order.delivery.base_price", false,
                           &d->has_base_price, &d->base_price_minor, err)) < 0)
                return r;
        if (d->has_base_price && d->base_price_minor < d->price_minor)
                return fail(err, "order.delivery.base_price",
                            "must not be less than the price (the price after discount)");
        d->present = true;
        return 0;
}

static int parse_coupons(json_t *order, struct snapshot *s, struct snapshot_error *err)
{
        char path[64];
        json_t *arr, *v;
        size_t i;
        int r;

        if ((r = get_array(order, "coupons", "order.coupons", SNAPSHOT_COUPONS_MAX, &arr, err)) <
                    0 ||
            !arr)
                return r;
        s->coupons = xcalloc(json_array_size(arr) + 1, sizeof(*s->coupons));
        json_array_foreach(arr, i, v)
        {
                snprintf(path, sizeof(path), "order.coupons[%zu]", i);
                if (!json_is_string(v))
                        return fail(err, path, "must be a string");
                if ((r = read_text(v, path, SNAPSHOT_COUPON_MAX, true, false, &s->coupons[i],
                                   err)) < 0)
                        return r;
                s->n_coupons = i + 1;
        }
        return 0;
}

static int parse_payments(json_t *order, struct snapshot *s, struct snapshot_error *err)
{
        char path[64];
        json_t *arr, *v;
        size_t i;
        int r;

        if ((r = get_array(order, "payments", "order.payments", SNAPSHOT_PAYMENTS_MAX, &arr,
                           err)) < 0 ||
            !arr)
                return r;
        s->payments = xcalloc(json_array_size(arr) + 1, sizeof(*s->payments));
        json_array_foreach(arr, i, v)
        {
                struct snapshot_payment *pm = &s->payments[i];

                s->n_payments = i + 1;
                snprintf(path, sizeof(path), "order.payments[%zu]", i);
                if (!json_is_object(v))
                        return fail(err, path, "must be an object");
                if ((r = only_known(v, path, payment_keys, err)) < 0)
                        return r;
                snprintf(path, sizeof(path), "order.payments[%zu].name", i);
                if ((r = get_text(v, "name", path, SNAPSHOT_TEXT_MAX, true, &pm->name, err)) < 0)
                        return r;
                snprintf(path, sizeof(path), "order.payments[%zu].sum", i);
                if ((r = get_money(v, "sum", path, true, NULL, &pm->sum_minor, err)) < 0)
                        return r;
                snprintf(path, sizeof(path), "order.payments[%zu].paid", i);
                if ((r = get_bool(v, "paid", path, &pm->paid, err)) < 0)
                        return r;
        }
        return 0;
}

static int parse_utm(json_t *order, struct snapshot *s, struct snapshot_error *err)
{
        char path[64];
        json_t *o;
        int r;

        if ((r = get_object(order, "utm", "order.utm", &o, err)) < 0 || !o)
                return r;
        if ((r = only_known(o, "order.utm", snapshot_utm_names, err)) < 0)
                return r;
        for (size_t i = 0; i < SNAPSHOT_UTM_N; i++) {
                snprintf(path, sizeof(path), "order.utm.%s", snapshot_utm_names[i]);
                if ((r = get_text(o, snapshot_utm_names[i], path, SNAPSHOT_TEXT_MAX, false,
                                  &s->utm[i], err)) < 0)
                        return r;
        }
        return 0;
}

static int parse_properties(json_t *order, struct snapshot *s, struct snapshot_error *err)
{
        char path[96];
        const char *key;
        json_t *o, *v;
        size_t n = 0;
        int r;

        if ((r = get_object(order, "properties", "order.properties", &o, err)) < 0 || !o)
                return r;
        if (json_object_size(o) > SNAPSHOT_PROPERTIES_MAX)
                return fail(err, "order.properties", "has more than %d entries",
                            SNAPSHOT_PROPERTIES_MAX);
        s->properties = xcalloc(json_object_size(o) + 1, sizeof(*s->properties));
        json_object_foreach(o, key, v)
        {
                snprintf(path, sizeof(path), "order.properties.%s", key);
                if (!key[0] || strlen(key) > SNAPSHOT_PROPERTY_KEY_MAX || !snapshot_id_chars(key))
                        return fail(err, path, "the code must be 1-%d letters, digits, '-' or "
                                    "'_'", SNAPSHOT_PROPERTY_KEY_MAX);
                if (!json_is_string(v)) /* a null value is not an absent one here */
                        return fail(err, path, "must be a string");
                if ((r = read_text(v, path, SNAPSHOT_PROPERTY_VALUE_MAX, false, true,
                                   &s->properties[n].value, err)) < 0)
                        return r;
                s->properties[n].code = xstrdup(key);
                s->n_properties = ++n;
        }
        return 0;
}

/* The fields of issue #13, all optional. */
static int parse_extras(json_t *order, struct snapshot *s, struct snapshot_error *err)
{
        int r;

        if ((r = get_code(order, "lid", "order.lid", &s->lid, err)) < 0 ||
            (r = get_code(order, "person_type", "order.person_type", &s->person_type, err)) <
                    0 ||
            (r = get_lines(order, "comment", "order.comment", SNAPSHOT_COMMENT_MAX, &s->comment,
                           err)) < 0 ||
            (r = parse_delivery(order, s, err)) < 0 ||
            (r = get_money(order, "discount", "order.discount", false, &s->has_discount,
                           &s->discount_minor, err)) < 0 ||
            (r = parse_coupons(order, s, err)) < 0 || (r = parse_payments(order, s, err)) < 0 ||
            (r = get_money(order, "sum_paid", "order.sum_paid", false, &s->has_sum_paid,
                           &s->sum_paid_minor, err)) < 0 ||
            (r = parse_utm(order, s, err)) < 0 || (r = parse_properties(order, s, err)) < 0)
                return r;
        return 0;
}

const char *snapshot_property(const struct snapshot *s, const char *code)
{
        for (size_t i = 0; i < s->n_properties; i++)
                if (strcmp(s->properties[i].code, code) == 0)
                        return s->properties[i].value;
        return NULL;
}

static json_t *money_json(int64_t minor)
{
        char buf[32];

        money_format(minor, buf, sizeof(buf));
        return json_string(buf);
}

/* The fields of issue #13 into the canonical order object. */
static void canonical_extras(const struct snapshot *s, json_t *order)
{
        if (s->lid)
                json_object_set_new(order, "lid", json_string(s->lid));
        if (s->person_type)
                json_object_set_new(order, "person_type", json_string(s->person_type));
        if (s->comment)
                json_object_set_new(order, "comment", json_string(s->comment));
        if (s->delivery.present) {
                json_t *d = json_pack("{s:o}", "price", money_json(s->delivery.price_minor));
                if (s->delivery.name)
                        json_object_set_new(d, "name", json_string(s->delivery.name));
                if (s->delivery.has_base_price)
                        json_object_set_new(d, "base_price",
                                            money_json(s->delivery.base_price_minor));
                json_object_set_new(order, "delivery", d);
        }
        if (s->has_discount)
                json_object_set_new(order, "discount", money_json(s->discount_minor));
        if (s->coupons) {
                json_t *a = json_array();
                for (size_t i = 0; i < s->n_coupons; i++)
                        json_array_append_new(a, json_string(s->coupons[i]));
                json_object_set_new(order, "coupons", a);
        }
        if (s->payments) {
                json_t *a = json_array();
                for (size_t i = 0; i < s->n_payments; i++)
                        json_array_append_new(a, json_pack("{s:s, s:o, s:b}", "name",
                                                           s->payments[i].name, "sum",
                                                           money_json(s->payments[i].sum_minor),
                                                           "paid", s->payments[i].paid));
                json_object_set_new(order, "payments", a);
        }
        if (s->has_sum_paid)
                json_object_set_new(order, "sum_paid", money_json(s->sum_paid_minor));
        json_t *utm = json_object();
        for (size_t i = 0; i < SNAPSHOT_UTM_N; i++)
                if (s->utm[i])
                        json_object_set_new(utm, snapshot_utm_names[i], json_string(s->utm[i]));
        if (json_object_size(utm))
                json_object_set_new(order, "utm", utm);
        else
                json_decref(utm);
        if (s->properties) {
                json_t *o = json_object();
                for (size_t i = 0; i < s->n_properties; i++)
                        json_object_set_new(o, s->properties[i].code,
                                            json_string(s->properties[i].value));
                json_object_set_new(order, "properties", o);
        }
}

/* The canonical JSON: the validated fields only, in a fixed shape. */
static char *canonical_json(const struct snapshot *s)
{
        char price[32];
        json_t *order, *root, *items, *buyer;
        char *out;

        char when[32];

        money_format(s->price_minor, price, sizeof(price));
        iso8601_format(s->created_at, when, sizeof(when));
        order = json_pack("{s:s, s:s, s:s, s:b, s:b, s:s, s:s, s:s}", "id", s->order_id,
                          "account_number", s->account_number, "status", s->status, "canceled",
                          s->canceled, "paid", s->paid, "created_at", when, "price", price,
                          "currency", s->currency);
        if (s->has_version)
                json_object_set_new(order, "version", json_integer(s->version));
        if (s->has_updated_at) {
                iso8601_format(s->updated_at, when, sizeof(when));
                json_object_set_new(order, "updated_at", json_string(when));
        }
        if (s->has_cost) {
                money_format(s->cost_minor, price, sizeof(price));
                json_object_set_new(order, "cost", json_string(price));
        }
        if (s->roistat_visit)
                json_object_set_new(order, "roistat_visit", json_string(s->roistat_visit));
        if (s->deal_id) {
                json_t *deal = json_pack("{s:s}", "id", s->deal_id);
                if (s->deal_title)
                        json_object_set_new(deal, "title", json_string(s->deal_title));
                json_object_set_new(order, "deal", deal);
        }
        buyer = json_pack("{s:s}", "type", s->buyer.legal ? "legal" : "individual");
#define SET_OPT(obj, key, val)                                                                     \
        if (val)                                                                                   \
                json_object_set_new(obj, key, json_string(val));
        SET_OPT(buyer, "name", s->buyer.name);
        SET_OPT(buyer, "phone", s->buyer.phone);
        SET_OPT(buyer, "email", s->buyer.email);
        SET_OPT(buyer, "company", s->buyer.company);
        SET_OPT(buyer, "inn", s->buyer.inn);
        json_object_set_new(order, "buyer", buyer);
        items = json_array();
        for (size_t i = 0; i < s->n_items; i++) {
                char q[32];
                json_t *it;

                money_format(s->items[i].price_minor, price, sizeof(price));
                quantity_format(s->items[i].quantity_milli, q, sizeof(q));
                it = json_pack("{s:s, s:s, s:s}", "name", s->items[i].name, "price", price,
                               "quantity", q);
                SET_OPT(it, "product_id", s->items[i].product_id);
                if (s->items[i].has_base_price)
                        json_object_set_new(it, "base_price",
                                            money_json(s->items[i].base_price_minor));
                json_array_append_new(items, it);
        }
#undef SET_OPT
        json_object_set_new(order, "items", items);
        canonical_extras(s, order);
        root = json_pack("{s:s, s:o}", "site", s->site, "order", order);
        out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(root);
        if (!out)
                abort();
        return out;
}

static const char *const root_keys[] = {"site", "order", NULL};
static const char *const order_keys[] = {
        "id", "account_number", "version", "status", "canceled", "paid", "created_at",
        "updated_at", "price", "cost", "currency", "roistat_visit", "buyer", "items", "deal",
        "lid", "person_type", "comment", "delivery", "discount", "coupons", "payments",
        "sum_paid", "utm", "properties", NULL};

static int parse_order(json_t *root, struct snapshot *s, struct snapshot_error *err)
{
        json_t *order, *v;
        char *currency = NULL, *visit = NULL;
        int r;

        if (!json_is_object(root))
                return fail(err, "(body)", "must be a JSON object");
        if ((r = only_known(root, "", root_keys, err)) < 0)
                return r;
        if ((r = get_text(root, "site", "site", SNAPSHOT_TEXT_MAX, true, &s->site, err)) < 0)
                return r;
        order = json_object_get(root, "order");
        if (!order)
                return fail(err, "order", "is required");
        if (!json_is_object(order))
                return fail(err, "order", "must be an object");
        if ((r = only_known(order, "order", order_keys, err)) < 0)
                return r;

        if ((r = get_text(order, "id", "order.id", SNAPSHOT_ID_MAX, true, &s->order_id, err)) < 0)
                return r;
        if (!snapshot_id_chars(s->order_id))
                return fail(err, "order.id", "may contain only letters, digits, '-' and '_'");
        if ((r = get_text(order, "account_number", "order.account_number", SNAPSHOT_ID_MAX * 2,
                          false, &s->account_number, err)) < 0)
                return r;
        if (!s->account_number || !s->account_number[0]) {
                free(s->account_number);
                s->account_number = xstrdup(s->order_id);
        }

        v = json_object_get(order, "version");
        if (v && !json_is_null(v)) {
                if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                    json_integer_value(v) > (1LL << 53))
                        return fail(err, "order.version", "must be a non-negative integer");
                s->has_version = true;
                s->version = json_integer_value(v);
        }
        if ((r = get_text(order, "status", "order.status", 50, true, &s->status, err)) < 0)
                return r;
        if (!status_chars(s->status))
                return fail(err, "order.status", "must be a status code such as \"N\"");
        if ((r = get_bool(order, "canceled", "order.canceled", &s->canceled, err)) < 0 ||
            (r = get_bool(order, "paid", "order.paid", &s->paid, err)) < 0)
                return r;
        if ((r = get_time(order, "created_at", "order.created_at", true, NULL, &s->created_at,
                          err)) < 0 ||
            (r = get_time(order, "updated_at", "order.updated_at", false, &s->has_updated_at,
                          &s->updated_at, err)) < 0)
                return r;
        if (!s->has_version && !s->has_updated_at)
                return fail(err, "order.version",
                            "is required when order.updated_at is absent (it orders snapshots)");
        if ((r = get_money(order, "price", "order.price", true, NULL, &s->price_minor, err)) <
                    0 ||
            (r = get_money(order, "cost", "order.cost", false, &s->has_cost, &s->cost_minor,
                           err)) < 0)
                return r;
        if ((r = get_text(order, "currency", "order.currency", 3, true, &currency, err)) < 0)
                return r;
        if (strlen(currency) != 3 || strspn(currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3) {
                free(currency);
                return fail(err, "order.currency", "must be an ISO 4217 code such as \"RUB\"");
        }
        memcpy(s->currency, currency, 4);
        free(currency);

        /* The visit comes from a cookie: a bad one is dropped, never the order. */
        v = json_object_get(order, "roistat_visit");
        if (v && !json_is_null(v)) {
                const char *t = json_is_string(v) ? json_string_value(v) : NULL;
                size_t n = t ? strlen(t) : 0;
                if (t && n > 0 && n <= SNAPSHOT_VISIT_MAX && strspn(t, "0123456789") == n &&
                    n == json_string_length(v))
                        visit = xstrdup(t);
                else if (!t || n > 0)
                        s->visit_dropped = true;
        }
        s->roistat_visit = visit;

        if ((r = parse_buyer(order, s, err)) < 0 || (r = parse_items(order, s, err)) < 0 ||
            (r = parse_deal(order, s, err)) < 0 || (r = parse_extras(order, s, err)) < 0)
                return r;
        return 0;
}

int snapshot_parse(const char *text, size_t len, struct snapshot **ret,
                   struct snapshot_error *err)
{
        struct snapshot *s;
        json_error_t jerr;
        json_t *root;
        int r;

        memset(err, 0, sizeof(*err));
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return fail(err, "(body)", "is not valid JSON: %s at byte %d", jerr.text,
                            jerr.position);
        s = xcalloc(1, sizeof(*s));
        r = parse_order(root, s, err);
        json_decref(root);
        if (r < 0) {
                snapshot_free(s);
                return r;
        }
        s->json = canonical_json(s);
        *ret = s;
        return 0;
}

int snapshot_check_from_site(const struct snapshot *s, const char *site_id,
                             struct snapshot_error *err)
{
        memset(err, 0, sizeof(*err));
        if (site_id && strcmp(site_id, s->site) != 0)
                return fail(err, "site", "does not match this orderbridge's [site] id");
        if (s->deal_id)
                return fail(err, "order.deal", "is set only by orderbridge's Bitrix24 source");
        if (strncmp(s->order_id, SNAPSHOT_DEAL_PREFIX, strlen(SNAPSHOT_DEAL_PREFIX)) == 0)
                return fail(err, "order.id", "must not begin with \"%s\": those are deals read "
                            "from Bitrix24", SNAPSHOT_DEAL_PREFIX);
        return 0;
}

struct snapshot *snapshot_free(struct snapshot *s)
{
        if (!s)
                return NULL;
        free(s->site);
        free(s->order_id);
        free(s->account_number);
        free(s->status);
        free(s->roistat_visit);
        free(s->buyer.name);
        free(s->buyer.phone);
        free(s->buyer.email);
        free(s->buyer.company);
        free(s->buyer.inn);
        for (size_t i = 0; i < s->n_items; i++) {
                free(s->items[i].product_id);
                free(s->items[i].name);
        }
        free(s->items);
        free(s->lid);
        free(s->person_type);
        free(s->comment);
        free(s->delivery.name);
        for (size_t i = 0; i < s->n_coupons; i++)
                free(s->coupons[i]);
        free(s->coupons);
        for (size_t i = 0; i < s->n_payments; i++)
                free(s->payments[i].name);
        free(s->payments);
        for (size_t i = 0; i < SNAPSHOT_UTM_N; i++)
                free(s->utm[i]);
        for (size_t i = 0; i < s->n_properties; i++) {
                free(s->properties[i].code);
                free(s->properties[i].value);
        }
        free(s->properties);
        free(s->deal_id);
        free(s->deal_title);
        free(s->json);
        free(s);
        return NULL;
}

bool snapshot_order_is_newer(const struct snapshot_order_key *incoming,
                             const struct snapshot_order_key *stored)
{
        if (incoming->has_version && stored->has_version)
                return incoming->version > stored->version;
        if (incoming->has_updated_at && stored->has_updated_at)
                return incoming->updated_at > stored->updated_at;
        return true; /* no key in common: the site changed its keys, arrival order */
}

bool snapshot_is_newer(const struct snapshot *incoming, const struct snapshot *stored)
{
        struct snapshot_order_key in = {incoming->has_version, incoming->version,
                                        incoming->has_updated_at, incoming->updated_at};
        struct snapshot_order_key st = {stored->has_version, stored->version,
                                        stored->has_updated_at, stored->updated_at};

        return snapshot_order_is_newer(&in, &st);
}
