/*
 * The HTTP client: one reusable libcurl handle per sink thread (connections are kept
 * alive between requests), with a whole-request timeout and a hard cap on the answer's
 * size. Transport failures are reported as -errno so that callers classify them without
 * knowing curl.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_client;

struct http_response {
        long status;         /* HTTP status, 0 when no answer */
        char *body;          /* NUL-terminated, may be empty */
        size_t len;
        int64_t retry_after_s; /* from Retry-After, -1 when absent */
        char error[256];     /* transport error text (never contains the URL) */
};

/* `reuse`: keep connections alive between requests. Only for idempotent requests: on a
 * reused connection that dies before the answer, libcurl sends the request again. */
struct http_client *http_client_new(int64_t timeout_ms, size_t max_response_bytes, bool reuse);
struct http_client *http_client_free(struct http_client *c);

/* Times every request of this client in orderbridge_remote_request_duration_seconds{sink}
 * (/metrics), answered or not. `sink` is a sink's name (kept, not copied: a constant). */
void http_client_measure(struct http_client *c, const char *sink);

/* POSTs `body` to `url` with extra `headers` (NULL-terminated "Name: value" list).
 * Returns 0 when an HTTP answer arrived (any status), -ETIMEDOUT, -ECONNREFUSED,
 * -ECONNRESET, -EMSGSIZE (answer too large) or -EIO otherwise. */
int http_client_post(struct http_client *c, const char *url, const char *const *headers,
                     const char *body, size_t len, struct http_response *ret);

void http_response_clear(struct http_response *r);
