/*
 * The Bitrix24 REST client: calls on an incoming webhook
 * (https://portal/rest/USER/CODE/method.json), under a client-side leaky bucket, with the
 * answer classified, once, where it enters (b24_answer_parse, b24_classify_error), into
 * the project's negative-errno convention:
 *   0         a result arrived (a batch may still hold per-command errors)
 *   -EAGAIN   transport error, 5xx, QUERY_LIMIT_EXCEEDED, OPERATION_TIME_LIMIT: try
 *             again later (retry_after_ms says when, if the portal said)
 *   -EACCES   the webhook is refused (expired_token, INVALID_CREDENTIALS, …)
 *   -EINVAL   the portal refused this call's data (CRM's HTTP 400, empty code), or the
 *             request could not be encoded (a text that is not UTF-8)
 * The webhook URL holds a secret code: it is never logged or put in an error.
 */
#pragma once

#include <errno.h>
#include <stdint.h>

#include <jansson.h>

#include "base/ratelimit.h"
#include "sinks/bitrix24_conf.h"

struct b24_error {
        long http_status;
        char code[64];
        char description[256];
        int64_t retry_after_ms;
};

struct b24_client;

/* The portal counts every request of one webhook in one leaky bucket ([bitrix24] rate
 * and burst), and the daemon has two clients on it: the sink's and the Bitrix24
 * source's. When the source has work (b24_conf_source_active), the bucket is split:
 * the source gets B24_SOURCE_SHARE_PCT of the rate and as much of the burst (at least
 * one request), the sink the rest, so that together they stay under the portal's
 * limit whatever each does. The source fetches up to 50 deals per request, so its
 * share is small; when it is idle the sink has the whole bucket. */
#define B24_SOURCE_SHARE_PCT 10

enum b24_client_role {
        B24_CLIENT_SINK,   /* the sink, and the one-shot verbs (check, stages) */
        B24_CLIENT_SOURCE, /* the Bitrix24 source: events and the poll */
};

/* A client for the enabled [bitrix24] webhook, with the sink's share of the bucket. */
struct b24_client *b24_client_new(const struct b24_conf *conf);

/* The same with the share of `role`. */
struct b24_client *b24_client_new_for(const struct b24_conf *conf, enum b24_client_role role);

/* The leaky bucket a client of `role` gets (its share, less the unit of burst and 5 %
 * of rate that are left unused for network jitter). */
void b24_client_bucket(const struct b24_conf *conf, enum b24_client_role role,
                       struct ratelimit *ret);

/* Measures this client's requests and publishes its bucket under `sink` (/metrics; see
 * http_client_measure and ratelimit_publish). */
void b24_client_measure(struct b24_client *c, const char *sink);

/* The milliseconds until the next b24_call may go without waiting for the bucket (0:
 * now). A caller that must stay responsive waits this long itself, interruptibly. */
int64_t b24_client_wait_ms(struct b24_client *c);
/* Counts the bucket as full, as if the portal had said so (a role taken over from another
 * server, whose last requests the portal may still count). */
void b24_client_fill(struct b24_client *c);
struct b24_client *b24_client_free(struct b24_client *c);

/* Calls `method` with a JSON body (`params`, consumed; NULL — a failed json_pack — is
 * -EINVAL without a request). Returns 0 with *ret_doc the whole answer, or one of the
 * negative codes above with `err` filled. */
int b24_call(struct b24_client *c, const char *method, json_t *params, json_t **ret_doc,
             struct b24_error *err);

/* Parses one answer: 0 with *ret_doc = the answer, or -EAGAIN/-EACCES/-EINVAL with `err`
 * filled (and *ret_doc the parsed body when it was JSON, for its "time" block, or NULL).
 * The caller frees *ret_doc. Pure: no I/O, so it is fuzzed directly. */
int b24_answer_parse(const char *body, size_t len, long http_status, json_t **ret_doc,
                     struct b24_error *err);

/* A batch answer's result and result_error sections (borrowed from `doc`), or NULL
 * where the portal sent [] for an empty one. */
void b24_batch_sections(json_t *doc, json_t **ret_result, json_t **ret_errors);

/* Classifies an error code (a per-command error of a batch, `{"error",…}`, or an
 * envelope's) with the HTTP status it came with: -EACCES, -EAGAIN or -EINVAL. */
int b24_classify_error(const char *code, long http_status);

/* `method?` and `params` as a PHP-style query string (fields[TITLE]=…&rows[0][PRICE]=…),
 * keys and values percent-encoded, so the result is ASCII. Used for batch commands. */
char *b24_query_string(const char *method, json_t *params);

/* A time block's operating_reset_at in wall ms, or 0 when it is missing or not a
 * plausible Unix time (the portal's answer is outside input). */
int64_t b24_reset_at_ms(json_t *time_block);

/* The largest time.operating seen (seconds of portal CPU), for the logs. */
double b24_client_max_operating(const struct b24_client *c);
