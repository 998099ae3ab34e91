/*
 * The Bitrix24 sink: for every order, a contact (found before it is created), a company
 * for a legal-entity buyer, exactly one deal (ORIGINATOR_ID = site, ORIGIN_ID = order id)
 * at the mapped stage, and the product rows — all packed into `batch` calls of at most
 * 50 commands under the portal's rate limit.
 */
#pragma once

#include <jansson.h>

#include "config/config.h"
#include "model/snapshot.h"
#include "sinks/bitrix24_conf.h"
#include "sinks/sink.h"

int sink_bitrix24_new(const struct config *cfg, const struct sink_ops **ret_ops, void **ret_ctx);

/* What the sink writes into a deal, for reconcile to compare a deal with (each NULL when
 * a text is not UTF-8). The fields orderbridge owns for `s` at `stage`: STAGE_ID,
 * OPPORTUNITY, CURRENCY_ID, the Roistat field when the order has a visit, and the mapping
 * rules' (b24_rules.h: ASSIGNED_BY_ID, SOURCE_ID, UTM_*, COMMENTS, [bitrix24.fields]). */
json_t *b24_deal_owned_fields(const struct b24_conf *conf, const struct snapshot *s,
                              const char *stage);
/* The product rows as crm.deal.productrows.set gets them: PRODUCT_NAME, PRICE ("2495.00",
 * after discount), QUANTITY ("2"), and for a discounted row DISCOUNT_TYPE_ID 1 with
 * DISCOUNT_SUM per unit; then the delivery's row ([bitrix24] delivery_row_name) when the
 * delivery costs more than 0. The fields the mapping rules own are b24_deal_owned_fields'. */
json_t *b24_deal_rows(const struct b24_conf *conf, const struct snapshot *s);

/* What a repair (store_request's writes) must say so that the sink's next pass makes the
 * deal match the order again, rather than trust what it remembers sending: DEAL looks the
 * deal up again by ORIGIN_ID (and creates it when there is none), then sends everything;
 * FIELDS sends every owned field; ROWS sends the rows. CONTACT_ID and COMPANY_ID are never
 * re-sent (a manager may have changed them). */
enum {
        B24_REPAIR_DEAL = 1u << 0,
        B24_REPAIR_FIELDS = 1u << 1,
        B24_REPAIR_ROWS = 1u << 2,
};
void b24_repair_writes(struct store_writes *w, const char *order_id, unsigned what);
