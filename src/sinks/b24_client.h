/*
 * The Bitrix24 REST client: calls on an incoming webhook
 * (https://portal/rest/USER/CODE/method.json), under a client-side leaky bucket, with the
 * answer classified into what the caller needs to decide:
 *   B24_OK            a result arrived (a batch may still hold per-command errors)
 *   B24_REMOTE_DOWN   transport error, 5xx, QUERY_LIMIT_EXCEEDED, OPERATION_TIME_LIMIT:
 *                     try again later (retry_after_ms says when, if the portal said)
 *   B24_AUTH          the webhook is refused (expired_token, INVALID_CREDENTIALS, …)
 *   B24_ERROR         the portal refused this call's data (CRM's HTTP 400, empty code)
 * The webhook URL holds a secret code: it is never logged or put in an error.
 */
#pragma once

#include <stdint.h>

#include <jansson.h>

#include "sinks/bitrix24_conf.h"

enum b24_status { B24_OK = 0, B24_REMOTE_DOWN = -1, B24_AUTH = -2, B24_ERROR = -3 };

struct b24_error {
        long http_status;
        char code[64];
        char description[256];
        int64_t retry_after_ms;
};

struct b24_client;

/* A client for the enabled [bitrix24] webhook. */
struct b24_client *b24_client_new(const struct b24_conf *conf);
struct b24_client *b24_client_free(struct b24_client *c);

/* Calls `method` with a JSON body (`params`, consumed). On B24_OK, *ret_doc is the whole
 * answer. */
int b24_call(struct b24_client *c, const char *method, json_t *params, json_t **ret_doc,
             struct b24_error *err);

/* Parses one answer: B24_OK with *ret_doc = the answer, or another b24_status with `err`
 * filled (and *ret_doc the parsed body when it was JSON, for its "time" block, or NULL).
 * The caller frees *ret_doc. Pure: no I/O, so it is fuzzed directly. */
int b24_answer_parse(const char *body, size_t len, long http_status, json_t **ret_doc,
                     struct b24_error *err);

/* A batch answer's result and result_error sections (borrowed from `doc`), or NULL
 * where the portal sent [] for an empty one. */
void b24_batch_sections(json_t *doc, json_t **ret_result, json_t **ret_errors);

/* Classifies a per-command error of a batch (`{"error","error_description"}`). */
int b24_classify_error(const char *code, long http_status);

/* Appends `params` to `buf` as a PHP-style query string (fields[TITLE]=…&rows[0][PRICE]=…),
 * values percent-encoded. Used for batch commands. */
char *b24_query_string(const char *method, json_t *params);

/* The largest time.operating seen (seconds of portal CPU), for the logs. */
double b24_client_max_operating(const struct b24_client *c);
