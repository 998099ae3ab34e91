/*
 * A deal row → where it goes, and the snapshot of a deal that did not come from the
 * site. Everything in a row is outside input: the snapshot is built from the row's
 * values as they are and then parsed by snapshot_parse, the one validation every
 * snapshot passes, so a deal without a currency or with a bad amount is refused with the
 * snapshot's field named, as a site order would be. Only the title is forgiving: it is a
 * label a manager typed, so it is cut to size and its control characters blanked rather
 * than lose the deal's revenue over it.
 */
#include "sources/b24_deal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "model/iso8601.h"

bool b24_deal_id_valid(const char *s)
{
        size_t n = strlen(s);

        return n >= 1 && n <= B24_DEAL_ID_MAX && strspn(s, "0123456789") == n && s[0] != '0';
}

json_t *b24_deal_select(const char *roistat_field)
{
        json_t *a = json_pack("[s,s,s,s,s,s,s,s,s,s,s]", "ID", "TITLE", "STAGE_ID",
                              "STAGE_SEMANTIC_ID", "CATEGORY_ID", "OPPORTUNITY", "CURRENCY_ID",
                              "DATE_CREATE", "DATE_MODIFY", "ORIGINATOR_ID", "ORIGIN_ID");

        if (roistat_field && roistat_field[0])
                json_array_append_new(a, json_string(roistat_field));
        return a;
}

/* A string field, NULL when absent, null, empty or not a string. */
static const char *text(json_t *deal, const char *name)
{
        const char *s = json_string_value(json_object_get(deal, name));

        return s && s[0] ? s : NULL;
}

static int fail(struct snapshot_error *err, const char *field, const char *message)
{
        snprintf(err->field, sizeof(err->field), "%s", field);
        snprintf(err->message, sizeof(err->message), "%s", message);
        return -EINVAL;
}

int b24_deal_read(json_t *deal, struct b24_deal *ret, struct snapshot_error *err)
{
        json_t *id = json_object_get(deal, "ID");
        char buf[32];

        memset(err, 0, sizeof(*err));
        if (!json_is_object(deal))
                return fail(err, "(row)", "a deal row must be an object");
        /* the portal writes ids as strings; a number is taken too */
        if (json_is_integer(id))
                snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(id));
        else
                snprintf(buf, sizeof(buf), "%s", json_is_string(id) ? json_string_value(id) : "");
        if (!b24_deal_id_valid(buf))
                return fail(err, "ID", "must be a deal id (1-18 digits)");
        memcpy(ret->id, buf, strlen(buf) + 1);
        ret->date_modify = text(deal, "DATE_MODIFY");
        if (!ret->date_modify || iso8601_parse(ret->date_modify, &ret->modified) < 0)
                return fail(err, "DATE_MODIFY", "must be an ISO 8601 time with an offset");
        ret->originator_id = text(deal, "ORIGINATOR_ID");
        ret->origin_id = text(deal, "ORIGIN_ID");
        ret->stage = text(deal, "STAGE_ID");
        return 0;
}

bool b24_deal_from_site(const struct b24_deal *d, const char *site_id)
{
        return site_id && d->originator_id && d->origin_id &&
               strcmp(d->originator_id, site_id) == 0;
}

/* The title as a label: control characters blanked, at most SNAPSHOT_TEXT_MAX bytes, cut
 * before a UTF-8 sequence rather than inside it (jansson gave us valid UTF-8). */
static json_t *title_of(json_t *deal)
{
        const char *t = text(deal, "TITLE");
        size_t n;
        char *s;
        json_t *out;

        if (!t)
                return json_null();
        n = strlen(t);
        if (n > SNAPSHOT_TEXT_MAX) {
                n = SNAPSHOT_TEXT_MAX;
                while (n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80)
                        n--;
        }
        s = xstrndup(t, n);
        for (char *p = s; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = ' ';
        out = json_string(s);
        free(s);
        return out;
}

/* The roistat field's value when it is a visit number (digits), else NULL. */
static json_t *visit_of(json_t *deal, const char *roistat_field)
{
        json_t *v = roistat_field && roistat_field[0] ? json_object_get(deal, roistat_field) : NULL;
        const char *s = json_string_value(v);
        char buf[32];

        if (json_is_integer(v) && json_integer_value(v) >= 0) {
                snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
                return json_string(buf);
        }
        if (s && s[0] && strlen(s) <= SNAPSHOT_VISIT_MAX && strspn(s, "0123456789") == strlen(s))
                return json_string(s);
        return NULL;
}

/* The deal's field a snapshot field comes from, for the message. */
static const char *deal_field(const char *snapshot_field)
{
        static const char *const map[][2] = {
            {"order.status", "STAGE_ID"},        {"order.created_at", "DATE_CREATE"},
            {"order.updated_at", "DATE_MODIFY"}, {"order.price", "OPPORTUNITY"},
            {"order.currency", "CURRENCY_ID"},   {"order.deal.id", "ID"},
            {"order.deal.title", "TITLE"},
        };

        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
                if (strcmp(map[i][0], snapshot_field) == 0)
                        return map[i][1];
        return NULL;
}

int b24_deal_snapshot(json_t *deal, const char *site_id, const char *roistat_field, int64_t version,
                      struct snapshot **ret, struct snapshot_error *err)
{
        struct b24_deal d;
        const char *semantic = text(deal, "STAGE_SEMANTIC_ID");
        char order_id[sizeof(SNAPSHOT_DEAL_PREFIX) + B24_DEAL_ID_MAX];
        json_t *order, *root, *visit;
        char *body;
        int r;

        if ((r = b24_deal_read(deal, &d, err)) < 0)
                return r;
        snprintf(order_id, sizeof(order_id), SNAPSHOT_DEAL_PREFIX "%s", d.id);
        /* values are copied as the portal sent them: snapshot_parse judges them */
        order = json_pack(
            "{s:s, s:O?, s:b, s:b, s:O?, s:O?, s:O?, s:O?, s:I, s:[], s:{s:s, s:o}}", "id",
            order_id, "status", json_object_get(deal, "STAGE_ID"), "canceled",
            semantic && strcmp(semantic, "F") == 0, "paid", semantic && strcmp(semantic, "S") == 0,
            "created_at", json_object_get(deal, "DATE_CREATE"), "updated_at",
            json_object_get(deal, "DATE_MODIFY"), "price", json_object_get(deal, "OPPORTUNITY"),
            "currency", json_object_get(deal, "CURRENCY_ID"), "version", (json_int_t)version,
            "items", "deal", "id", d.id, "title", title_of(deal));
        if (!order)
                return fail(err, "(deal)", "could not be encoded");
        if ((visit = visit_of(deal, roistat_field)))
                json_object_set_new(order, "roistat_visit", visit);
        root = json_pack("{s:s, s:o}", "site", site_id ? site_id : "", "order", order);
        body = root ? json_dumps(root, JSON_COMPACT) : NULL;
        json_decref(root);
        if (!body)
                return fail(err, "(deal)", "could not be encoded");
        r = snapshot_parse(body, strlen(body), ret, err);
        free(body);
        if (r < 0 && deal_field(err->field)) {
                char m[sizeof(err->message)];
                snprintf(m, sizeof(m), "%s (the deal's %s)", err->message, deal_field(err->field));
                memcpy(err->message, m, sizeof(m));
        }
        return r;
}

const char *b24_deal_change_name(enum b24_deal_change c)
{
        switch (c) {
        case B24_DEAL_NEW:
                return "new";
        case B24_DEAL_CHANGED:
                return "changed";
        case B24_DEAL_SAME:
                return "same";
        case B24_DEAL_OLDER:
                return "older";
        }
        return "?";
}

/* The "order" object of a snapshot's JSON without its version (a new reference), or NULL. */
static json_t *order_without_version(const char *json, int64_t *ret_version,
                                     int64_t *ret_updated_at)
{
        json_t *root = json_loads(json, 0, NULL);
        json_t *order = json_incref(json_object_get(root, "order"));
        json_t *v, *u;

        json_decref(root);
        if (!json_is_object(order)) {
                json_decref(order);
                return NULL;
        }
        v = json_object_get(order, "version");
        u = json_object_get(order, "updated_at");
        *ret_version = json_is_integer(v) ? json_integer_value(v) : 0;
        if (!json_is_string(u) || iso8601_parse(json_string_value(u), ret_updated_at) < 0)
                *ret_updated_at = 0;
        json_object_del(order, "version");
        return order;
}

enum b24_deal_change b24_deal_compare(const struct snapshot *incoming, const char *stored_json,
                                      int64_t *ret_version)
{
        int64_t want = incoming->updated_at * 1000, stored_version = 0, stored_updated = 0,
                unused_v, unused_u;
        json_t *stored = stored_json
                             ? order_without_version(stored_json, &stored_version, &stored_updated)
                             : NULL;
        json_t *mine = order_without_version(incoming->json, &unused_v, &unused_u);
        enum b24_deal_change c;

        if (!stored_json)
                c = B24_DEAL_NEW;
        else if (stored && json_equal(stored, mine))
                c = B24_DEAL_SAME;
        else if (stored && stored_updated > incoming->updated_at)
                c = B24_DEAL_OLDER;
        else
                c = B24_DEAL_CHANGED;
        if (c == B24_DEAL_CHANGED && stored_version >= want)
                want = stored_version + 1;
        *ret_version = want;
        json_decref(stored);
        json_decref(mine);
        return c;
}
