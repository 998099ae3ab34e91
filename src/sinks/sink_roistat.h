/*
 * The Roistat sink: orders go to POST {url}/project/add-orders?project=N in batches, and
 * the configured status dictionary goes to /project/set-statuses before the first order
 * and again whenever the configuration changes it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config/config.h"
#include "sinks/roistat_conf.h"
#include "sinks/sink.h"
#include "model/snapshot.h"

/* Builds the sink; the ops describe it to the dispatcher. */
int sink_roistat_new(const struct config *cfg, const struct sink_ops **ret_ops, void **ret_ctx);

/* One order as Roistat wants it, for add-orders and for the pull export alike (the one
 * place that decides an order's Roistat shape), or NULL with `why` filled when the
 * configuration has no status for this snapshot. A site order is "Order <account
 * number>"; a deal made in Bitrix24 (snapshot.deal_id) is "Deal <ID>: <title>", its
 * fields say source bitrix24 and its deal_id, and it has no account_number. */
json_t *roistat_order_json(const struct roistat_conf *conf, const struct snapshot *s, char *why,
                           size_t why_size);

/* A custom field of "fields": its id (the key) and a name for people. */
struct roistat_field {
        const char *id, *name;
};

/* Every custom field an order may carry, in a fixed order (the pull export's
 * import_scheme lists them); *ret_n gets how many. */
const struct roistat_field *roistat_fields(size_t *ret_n);

/* What Roistat answered: the envelope's verdict and add-orders' per-batch counters.
 * `success` only for "status":"success" (a string); `status` is what the field said,
 * empty when it was absent or not a string. */
struct roistat_answer {
        bool success;
        bool has_processed;
        int64_t processed, saved, uploaded, not_changed;
        int64_t by_status, waiting_visit, invalid_format, internal_error;
        char status[32], error[64], description[192], comment[128];
};

/* Parses an answer body; -EINVAL when it is not a JSON object. Pure (fuzzed). */
int roistat_answer_parse(const char *body, size_t len, struct roistat_answer *ret);

/* The set-statuses body for the configured dictionary. */
json_t *roistat_statuses_json(const struct roistat_conf *conf);

struct http_response;

/* What an answer other than a success means, as the sink reads it (with "Use-Http-Code:
 * 1"): -EAGAIN (the remote is unwell), -EACCES (the key or account refused) or 0 (this
 * request's data refused), with `detail` in Roistat's words and the Retry-After. For
 * reconcile, which reads order/list with the sink's conventions. */
int roistat_classify_answer(const struct http_response *resp, int rc, char *detail, size_t size,
                            int64_t *retry_after_ms);
