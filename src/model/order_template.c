/*
 * {placeholder} expansion over a snapshot. A placeholder is a name from the table below or
 * "property:CODE" (an order property by its Bitrix code). Values are the snapshot's own
 * validated texts (UTF-8, bounded), so an expansion is bounded by the template's length
 * plus the values it names; lists (coupons, payments) are joined with ", ".
 */
#include "model/order_template.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xalloc.h"
#include "model/money.h"
#include "model/snapshot.h"

#define PROPERTY_PREFIX "property:"
#define NAME_MAX_LEN 64

enum ph {
        PH_ID,
        PH_ACCOUNT_NUMBER,
        PH_LID,
        PH_PERSON_TYPE,
        PH_STATUS,
        PH_PRICE,
        PH_CURRENCY,
        PH_COMMENT,
        PH_DELIVERY,
        PH_DELIVERY_PRICE,
        PH_DISCOUNT,
        PH_COUPONS,
        PH_PAYMENTS,
        PH_SUM_PAID,
        PH_UTM_SOURCE,
        PH_UTM_MEDIUM,
        PH_UTM_CAMPAIGN,
        PH_UTM_CONTENT,
        PH_UTM_TERM,
        PH_BUYER_NAME,
        PH_BUYER_PHONE,
        PH_BUYER_EMAIL,
        PH_COMPANY,
        PH_INN,
        PH_N
};

static const char *const names[PH_N] = {
    [PH_ID] = "id",
    [PH_ACCOUNT_NUMBER] = "account_number",
    [PH_LID] = "lid",
    [PH_PERSON_TYPE] = "person_type",
    [PH_STATUS] = "status",
    [PH_PRICE] = "price",
    [PH_CURRENCY] = "currency",
    [PH_COMMENT] = "comment",
    [PH_DELIVERY] = "delivery",
    [PH_DELIVERY_PRICE] = "delivery_price",
    [PH_DISCOUNT] = "discount",
    [PH_COUPONS] = "coupons",
    [PH_PAYMENTS] = "payments",
    [PH_SUM_PAID] = "sum_paid",
    [PH_UTM_SOURCE] = "utm_source",
    [PH_UTM_MEDIUM] = "utm_medium",
    [PH_UTM_CAMPAIGN] = "utm_campaign",
    [PH_UTM_CONTENT] = "utm_content",
    [PH_UTM_TERM] = "utm_term",
    [PH_BUYER_NAME] = "buyer_name",
    [PH_BUYER_PHONE] = "buyer_phone",
    [PH_BUYER_EMAIL] = "buyer_email",
    [PH_COMPANY] = "company",
    [PH_INN] = "inn",
};

/* "{id} {account_number} … {property:CODE}": the placeholders, from the table above. */
static void known_names(char *buf, size_t size)
{
        size_t n = 0;

        for (int i = 0; i < PH_N && n < size; i++)
                n += (size_t)snprintf(buf + n, size - n, "{%s} ", names[i]);
        if (n < size)
                snprintf(buf + n, size - n, "{" PROPERTY_PREFIX "CODE}");
}

static int lookup(const char *name, size_t len)
{
        for (int i = 0; i < PH_N; i++)
                if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
                        return i;
        return -1;
}

/* Walks `tpl`: literal text and, when `s` is given, each placeholder's value go to `out`
 * (when set). 0, or -EINVAL with why. */
static int walk(const char *tpl, struct buf *out, const struct snapshot *s, char *why,
                size_t why_size);

int order_template_check(const char *tpl, char *why, size_t why_size)
{
        return walk(tpl, NULL, NULL, why, why_size);
}

static void put_money(struct buf *out, bool present, int64_t minor)
{
        char m[32];

        if (!present)
                return;
        money_format(minor, m, sizeof(m));
        buf_append(out, m, strlen(m));
}

static void put_text(struct buf *out, const char *t)
{
        if (t)
                buf_append(out, t, strlen(t));
}

static void put_value(struct buf *out, int ph, const struct snapshot *s)
{
        switch (ph) {
        case PH_ID:
                put_text(out, s->order_id);
                break;
        case PH_ACCOUNT_NUMBER:
                put_text(out, s->account_number);
                break;
        case PH_LID:
                put_text(out, s->lid);
                break;
        case PH_PERSON_TYPE:
                put_text(out, s->person_type);
                break;
        case PH_STATUS:
                put_text(out, s->status);
                break;
        case PH_PRICE:
                put_money(out, true, s->price_minor);
                break;
        case PH_CURRENCY:
                put_text(out, s->currency);
                break;
        case PH_COMMENT:
                put_text(out, s->comment);
                break;
        case PH_DELIVERY:
                put_text(out, s->delivery.name);
                break;
        case PH_DELIVERY_PRICE:
                put_money(out, s->delivery.present, s->delivery.price_minor);
                break;
        case PH_DISCOUNT:
                put_money(out, s->has_discount, s->discount_minor);
                break;
        case PH_COUPONS:
                for (size_t i = 0; i < s->n_coupons; i++) {
                        put_text(out, i ? ", " : "");
                        put_text(out, s->coupons[i]);
                }
                break;
        case PH_PAYMENTS:
                for (size_t i = 0; i < s->n_payments; i++) {
                        put_text(out, i ? ", " : "");
                        put_text(out, s->payments[i].name);
                }
                break;
        case PH_SUM_PAID:
                put_money(out, s->has_sum_paid, s->sum_paid_minor);
                break;
        case PH_UTM_SOURCE:
        case PH_UTM_MEDIUM:
        case PH_UTM_CAMPAIGN:
        case PH_UTM_CONTENT:
        case PH_UTM_TERM: /* in the order of snapshot_utm_names */
                put_text(out, s->utm[ph - PH_UTM_SOURCE]);
                break;
        case PH_BUYER_NAME:
                put_text(out, s->buyer.name);
                break;
        case PH_BUYER_PHONE:
                put_text(out, s->buyer.phone);
                break;
        case PH_BUYER_EMAIL:
                put_text(out, s->buyer.email);
                break;
        case PH_COMPANY:
                put_text(out, s->buyer.company);
                break;
        case PH_INN:
                put_text(out, s->buyer.inn);
                break;
        }
}

static int walk(const char *tpl, struct buf *out, const struct snapshot *s, char *why,
                size_t why_size)
{
        const char *p = tpl;

        while (*p) {
                const char *close;
                size_t len;
                int ph;

                if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
                        if (out)
                                buf_append(out, p, 1);
                        p += 2;
                        continue;
                }
                if (*p == '}') {
                        snprintf(why, why_size, "a '}' without its '{' (write }} for a brace)");
                        return -EINVAL;
                }
                if (*p != '{') {
                        if (out)
                                buf_append(out, p, 1);
                        p++;
                        continue;
                }
                close = strchr(p + 1, '}');
                if (!close) {
                        snprintf(why, why_size, "a '{' without its '}' (write {{ for a brace)");
                        return -EINVAL;
                }
                len = (size_t)(close - p - 1);
                ph = lookup(p + 1, len);
                if (ph < 0 && len > strlen(PROPERTY_PREFIX) &&
                    memcmp(p + 1, PROPERTY_PREFIX, strlen(PROPERTY_PREFIX)) == 0) {
                        size_t clen = len - strlen(PROPERTY_PREFIX);
                        char code[SNAPSHOT_PROPERTY_KEY_MAX + 1];
                        if (clen <= SNAPSHOT_PROPERTY_KEY_MAX) {
                                memcpy(code, p + 1 + strlen(PROPERTY_PREFIX), clen);
                                code[clen] = '\0';
                        }
                        if (clen > SNAPSHOT_PROPERTY_KEY_MAX || !snapshot_id_chars(code)) {
                                snprintf(why, why_size,
                                         "{%.*s}: a property code is 1-%d "
                                         "letters, digits, '-' or '_'",
                                         (int)(len > NAME_MAX_LEN ? NAME_MAX_LEN : len), p + 1,
                                         SNAPSHOT_PROPERTY_KEY_MAX);
                                return -EINVAL;
                        }
                        if (out)
                                put_text(out, snapshot_property(s, code));
                } else if (ph < 0) {
                        char known[512];
                        known_names(known, sizeof(known));
                        snprintf(why, why_size, "unknown placeholder {%.*s} (known: %s)",
                                 (int)(len > NAME_MAX_LEN ? NAME_MAX_LEN : len), p + 1, known);
                        return -EINVAL;
                } else if (out) {
                        put_value(out, ph, s);
                }
                p = close + 1;
        }
        return 0;
}

char *order_template_expand(const char *tpl, const struct snapshot *s)
{
        struct buf out;
        char why[8];

        /* a template is checked at load; the bound is the template plus every value it
         * may name, each of which the snapshot bounds */
        buf_init(&out, strlen(tpl) * 8192 + 64);
        if (walk(tpl, &out, s, why, sizeof(why)) < 0)
                buf_reset(&out);
        return buf_steal(&out);
}
