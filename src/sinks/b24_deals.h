/*
 * Reading the site's deals back from Bitrix24, for reconcile: the deals whose
 * ORIGINATOR_ID is the site and ORIGIN_ID one of a list of order ids (crm.deal.list with
 * "=ORIGINATOR_ID" and "@ORIGIN_ID", at most 50 ids a command, each command's further
 * pages asked for), and the product rows of deals (crm.deal.productrows.get) — every
 * command in `batch` calls of at most 50, through the sink's client (b24_client.h: its
 * rate limit, its classification of answers).
 */
#pragma once

#include <stdatomic.h>
#include <stddef.h>

#include <jansson.h>

#include "sinks/b24_client.h"

/* ORIGIN_IDs per crm.deal.list command (the portal's page is 50 rows: a list of 50 ids
 * answers in one page unless an order has more than one deal). */
#define B24_DEALS_IDS_MAX 50

/* The deals of `site_id` whose ORIGIN_ID is one of the `n` `order_ids`, with the fields
 * `select` names (an array of field names, borrowed; ID and ORIGIN_ID are always read):
 * 0 with *ret, an object from ORIGIN_ID to the array of its deals in ID order (an order
 * without a deal has no member); or -EAGAIN (after a few tries), -EACCES, -EINVAL or
 * -ECANCELED (`stop` set) with `err` filled. */
int b24_deals_of_orders(struct b24_client *c, const char *site_id, const char *const *order_ids,
                        size_t n, json_t *select, const atomic_bool *stop, json_t **ret,
                        struct b24_error *err);

/* The product rows of each of the `n` deals: 0 with *ret, an object from deal ID to its
 * rows (as crm.deal.productrows.get answers them), or an error as above. */
int b24_deals_rows(struct b24_client *c, const char *const *deal_ids, size_t n,
                   const atomic_bool *stop, json_t **ret, struct b24_error *err);
