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

struct snapshot_item {
        char *product_id; /* may be NULL */
        char *name;
        int64_t price_minor;
        int64_t quantity_milli;
};

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
        /* A deal read from Bitrix24 that did not come from the site (a call, a chat, a
         * manager's deal): set only by orderbridge's Bitrix24 source, refused at ingest.
         * Its `status` is the deal's stage id (which may hold ':', as "C1:WON"),
         * `canceled` and `paid` its stage's semantics (failure, success). */
        char *deal_id;         /* NULL for a site order */
        char *deal_title;      /* may be NULL */
        char *json;            /* canonical form: compact, sorted keys */
};

struct snapshot_error {
        char field[64];
        char message[192];
};

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
