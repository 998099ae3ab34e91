/*
 * Reading orders back from Roistat: POST /project/integration/order/list?project=N with
 * {"filters", "limit", "offset"}, answered {"data":[…], "total":N, "status":"success"}
 * (help-en.roistat.com/API/methods/orders). The method has its own limit, 20 requests a
 * minute without "extend":["visit"], on top of the project's 10 a second: the reader
 * keeps to both by itself. Its answers are classified as the sink classifies its own
 * (roistat_classify_answer): -EAGAIN, -EACCES or -EINVAL. Reconcile reads through it.
 */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sinks/roistat_conf.h"

/* order/list's own limit per rolling minute (without extend), and the page size the
 * reader asks for (the docs tighten the limit above 1000 only with extend). */
#define ROISTAT_LIST_PER_MINUTE 20
#define ROISTAT_LIST_PAGE 1000

struct roistat_orders;

struct roistat_orders *roistat_orders_new(const struct roistat_conf *conf);
struct roistat_orders *roistat_orders_free(struct roistat_orders *c);

/* One page: the orders `filters` (borrowed; NULL for none) keeps, from `offset`, at most
 * `limit`. 0 with *ret_data (an array, caller decrefs) and *ret_total; else -EAGAIN (the
 * remote is unwell: after a few tries), -EACCES, -EINVAL (refused; or an answer that is
 * not the documented one) or -ECANCELED (`stop` was set while waiting), with `why`. */
int roistat_orders_page(struct roistat_orders *c, json_t *filters, size_t limit, size_t offset,
                        const atomic_bool *stop, json_t **ret_data, int64_t *ret_total, char *why,
                        size_t why_size);

/* The filters value for conditions that must all hold (`conds`, an array of
 * [field, op, value], consumed): {"and": conds}, except that one condition goes as the
 * flat list [[field, op, value]], because a live project answers a one-condition "and"
 * with HTTP 500 internal_error (roistat.md 1.3). NULL when `conds` is empty. */
json_t *roistat_orders_all_of(json_t *conds);

/* The same for conditions of which one must hold: {"or": conds}, one as the flat list. */
json_t *roistat_orders_any_of(json_t *conds);
