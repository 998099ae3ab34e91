/*
 * The order snapshot: what the site says an order looks like now. Parsing is also
 * validation: every field is checked against its type and bounds, and the first problem
 * is reported with the field's path ("order.items[2].price") and a sentence a site
 * developer can act on. A parsed snapshot is always internally consistent; the canonical
 * JSON kept in `json` is what the store saves and the sinks read back.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAPSHOT_ID_MAX 64
#define SNAPSHOT_VISIT_MAX 32
#define SNAPSHOT_ITEMS_MAX 1000
#define SNAPSHOT_TEXT_MAX 255
#define SNAPSHOT_CODE_MAX 16        /* lid, person_type: [A-Za-z0-9_-] */
#define SNAPSHOT_COMMENT_MAX 1000
#define SNAPSHOT_COUPONS_MAX 20
#define SNAPSHOT_COUPON_MAX 64
#define SNAPSHOT_PAYMENTS_MAX 20
#define SNAPSHOT_PROPERTIES_MAX 100
#define SNAPSHOT_PROPERTY_KEY_MAX 50
#define SNAPSHOT_PROPERTY_VALUE_MAX 1000

struct snapshot_item {
        char *product_id; /* may be NULL */
        char *name;
        int64_t price_minor;      /* per unit, after discount */
        bool has_base_price;
        int64_t base_price_minor; /* per unit, before discount: >= price_minor */
        int64_t quantity_milli;
};

struct snapshot_delivery {
        bool present;
        char *name;               /* may be NULL */
        int64_t price_minor;      /* after discount */
        bool has_base_price;
        int64_t base_price_minor; /* >= price_minor */
};

struct snapshot_payment {
        char *name;
        int64_t sum_minor;
        bool paid;
};

/* An order property (Bitrix's b_sale_order_props CODE → value), in the order given. */
struct snapshot_property {
        char *code, *value;
};

enum { SNAPSHOT_UTM_SOURCE, SNAPSHOT_UTM_MEDIUM, SNAPSHOT_UTM_CAMPAIGN, SNAPSHOT_UTM_CONTENT,
       SNAPSHOT_UTM_TERM, SNAPSHOT_UTM_N };

/* "source", "medium", … in the order of the enum above, then NULL. */
extern const char *const snapshot_utm_names[SNAPSHOT_UTM_N + 1];

struct snapshot_buyer {
        bool legal;
        char *name, *phone, *email, *company, *inn; /* each may be NULL */
};

struct snapshot {
        char *site;
        char *order_id;
        char *account_number; /* defaults to order_id */
        bool has_version;
        int64_t version;
        char *status;
        bool canceled, paid;
        int64_t created_at;    /* Unix seconds */
        bool has_updated_at;
        int64_t updated_at;
        int64_t price_minor;
        bool has_cost;
        int64_t cost_minor;
        char currency[4];
        char *roistat_visit;   /* NULL when absent or dropped as invalid */
        bool visit_dropped;    /* the sender gave one, and it was not digits */
        struct snapshot_buyer buyer;
        struct snapshot_item *items;
        size_t n_items;
        /* Optional, all of them (README, "The ingest contract"). */
        char *lid;             /* the Bitrix site of the order ("s1"), may be NULL */
        char *person_type;     /* Bitrix person type id, may be NULL */
        char *comment;         /* the buyer's comment, may be NULL */
        struct snapshot_delivery delivery;
        bool has_discount;
        int64_t discount_minor;
        char **coupons;
        size_t n_coupons;
        struct snapshot_payment *payments;
        size_t n_payments;
        bool has_sum_paid;
        int64_t sum_paid_minor;
        char *utm[SNAPSHOT_UTM_N]; /* each may be NULL */
        struct snapshot_property *properties;
        size_t n_properties;
        /* A deal read from Bitrix24 that did not come from the site (a call, a chat, a
         * manager's deal): set only by orderbridge's Bitrix24 source, refused at ingest.
         * Its `status` is the deal's stage id (which may hold ':', as "C1:WON"),
         * `canceled` and `paid` its stage's semantics (failure, success). */
        char *deal_id;         /* NULL for a site order */
        char *deal_title;      /* may be NULL */
        char *json;            /* canonical form: compact, sorted keys */
};

struct snapshot_error {
        char field[96];
        char message[192];
};

/* The value of order property `code`, or NULL. */
const char *snapshot_property(const struct snapshot *s, const char *code);

/* Parses and validates one snapshot (the JSON object {"site":…, "order":{…}}).
 * Returns 0 and *ret, or -EINVAL with `err` filled in. */
int snapshot_parse(const char *text, size_t len, struct snapshot **ret,
                   struct snapshot_error *err);

struct snapshot *snapshot_free(struct snapshot *s);

/* Whether `s` uses only the characters of an order id or status code: letters, digits,
 * '-' and '_' (the HTTP layer checks ids in URLs with the same rule). A status may also
 * hold ':' (a Bitrix24 stage id such as "C1:WON", the status of a deal snapshot). */
bool snapshot_id_chars(const char *s);

/* What a snapshot from the site (ingest, import) must also be: for this site when
 * `site_id` is set, and not a Bitrix24 deal (no order.deal, no order id with the deal
 * prefix). 0, or -EINVAL with `err` naming the field. */
int snapshot_check_from_site(const struct snapshot *s, const char *site_id,
                             struct snapshot_error *err);

/* The order id of Bitrix24 deal <ID> that did not come from the site: "b24-deal-<ID>".
 * The prefix is reserved: the ingest refuses site orders that use it. */
#define SNAPSHOT_DEAL_PREFIX "b24-deal-"

/* What orders the snapshots of one order: the sender's version and its updated_at. The
 * store keeps this key beside each order's latest snapshot, so that it can judge a new
 * snapshot without parsing the stored one. */
struct snapshot_order_key {
        bool has_version;
        int64_t version;
        bool has_updated_at;
        int64_t updated_at; /* Unix seconds */
};

/* THE ordering rule, the only copy (the README's ingest contract has it as a table):
 * whether `incoming` replaces `stored`. A key both carry decides, `version` first, then
 * `updated_at`; equal on the deciding key is not newer (a repeat). With no key in common
 * (one has only `version`, the other only `updated_at`) the incoming snapshot wins: the
 * site changed how it keys its snapshots (a module upgrade), and refusing every update
 * from then on would leave the remotes stale for ever. That last case is why the rule
 * is not a symmetric comparison, and why the arguments are named. */
bool snapshot_order_is_newer(const struct snapshot_order_key *incoming,
                             const struct snapshot_order_key *stored);

/* snapshot_order_is_newer on two parsed snapshots. */
bool snapshot_is_newer(const struct snapshot *incoming, const struct snapshot *stored);
