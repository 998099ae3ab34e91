/*
 * What an HTTP route is, and what it may do with its request. The server (server.c, the
 * only file that speaks libmicrohttpd) matches the path and method, enforces the limits
 * and reads a JSON body into a capped buffer before a route sees anything; a route then
 * answers at once, or holds the request and answers later from another thread (the
 * ingest answers from the intake's committer, after the fsync).
 *
 * Adding a route is one file, http/route_NAME.c, defining one `const struct http_route
 * route_NAME`, plus one row in the table of route.c. A refusal the server makes for every
 * route (404, 405 with Allow, 413, 415, an empty JSON body, 503 "busy" when the bodies
 * being received would pass [server] unverified_body_bytes) needs nothing from the route.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "queue/intake.h"
#include "sources/source.h"

struct dispatch;
struct http_request; /* one request: valid from the route's `handle` to its answer */

/* What every route may use; it outlives the server. */
struct http_env {
        const struct config *cfg;
        struct intake *intake;
        struct source *const *sources; /* the daemon's running sources */
        size_t n_sources;
        struct dispatch *const *sinks; /* the daemon's running dispatchers */
        size_t n_sinks;
};

/* The running source named `name` (its ops' name), or NULL: a route that feeds a
 * source's hints (Bitrix24's outgoing webhook → the Bitrix24 poller) finds it so. */
struct source *http_env_source(const struct http_env *env, const char *name);

/* Wakes the dispatcher of sink `name`, if it runs: a route that made work due (the status
 * page's Retry) has it picked up now, not at the next poll. */
void http_env_wake(const struct http_env *env, const char *name);

/* A route's own read connection to the store, one request at a time (the operator's
 * routes: /v1/orders/{id}, /metrics, the status page): the `open` and `close` of such a
 * route. Its state is a struct http_store_reader. */
struct store;
struct http_store_reader {
        pthread_mutex_t lock;
        struct store *store;
};
int http_store_reader_open(const struct http_env *env, void **ret_state);
void http_store_reader_close(void *state);

enum http_body {
        HTTP_BODY_NONE, /* a body, if any, is read and ignored */
        HTTP_BODY_JSON, /* Content-Type application/json required (415), at most [server]
                         * max_body_bytes (413, before reading when declared), not empty */
        HTTP_BODY_FORM, /* the same, as application/x-www-form-urlencoded (Bitrix24's
                         * outgoing webhooks); read its fields with http_form_value */
};

struct http_route {
        const char *methods; /* "POST", "GET, HEAD": the methods taken, and the Allow
                              * header of the 405 for any other */
        const char *path;    /* "/v1/orders"; with `prefix`, every path that starts with it */
        bool prefix;
        enum http_body body;
        /* Optional: state of the route's own for the server's lifetime (a store handle),
         * made at start and freed at stop. 0 or -errno (the server does not start). */
        int (*open)(const struct http_env *env, void **ret_state);
        void (*close)(void *state);
        /* Optional, for routes with a body: looks at the headers alone, before a byte
         * of the body is read, and answers (http_request_reply*) a request that can only
         * be refused, so that a sender without credentials never makes the server hold
         * its body. 0 (answered or not), or -errno to drop the connection. */
        int (*check_headers)(const struct http_env *env, void *state,
                             struct http_request *rq);
        /* Answers `rq` with http_request_reply*, or holds it. 0, or -errno to drop the
         * connection without an answer. Called in one of the server's threads. */
        int (*handle)(const struct http_env *env, void *state, struct http_request *rq);
};

/* The route table (route.c), in match order: the first match wins. */
const struct http_route *const *http_routes(size_t *ret_n);

/* ---- the request, as a route sees it (implemented in server.c) ---- */

/* The path as it came (not %-decoded: %00 cannot cut it short). */
const char *http_request_path(const struct http_request *rq);

/* A request header by name (case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *rq, const char *name);

/* Whether the peer is on this host: 127.0.0.0/8, ::1, or ::ffff:127.x.y.z. A reverse
 * proxy on the same host makes every request look local. */
bool http_request_peer_loopback(const struct http_request *rq);

/* A query-string argument by name, %-decoded, or NULL (the first when repeated). */
const char *http_request_arg(const struct http_request *rq, const char *name);

/* The whole body of an HTTP_BODY_JSON or HTTP_BODY_FORM route (NUL-terminated; *ret_len excludes the NUL). */
const char *http_request_body(const struct http_request *rq, size_t *ret_len);

/* Answers now, from `handle`: a JSON body (copied), Content-Type application/json,
 * Cache-Control no-store, Retry-After when retry_after_s > 0, and `www_authenticate`
 * (the WWW-Authenticate header) when not NULL. 0 or -EIO. */
int http_request_reply(struct http_request *rq, unsigned status, const char *json,
                       unsigned retry_after_s, const char *www_authenticate);

/* Answers now with `len` bytes of `body` as `content_type` ("text/html; charset=utf-8",
 * Prometheus' "text/plain; version=0.0.4"), Cache-Control no-store, and `headers`: NULL, or
 * NULL-terminated name, value pairs (Location, WWW-Authenticate, Content-Security-Policy).
 * 0 or -EIO. */
int http_request_reply_type(struct http_request *rq, unsigned status, const char *content_type,
                            const char *body, size_t len, const char *const *headers);

/* The error body every route answers with: {"error":…,"message":…[,"field":…]}
 * (caller frees; for http_request_resume). */
char *http_error_json(const char *error, const char *field, const char *message);

/* Answers {"error":…,"message":…[,"field":…]} now. */
int http_request_reply_error(struct http_request *rq, unsigned status, const char *error,
                             const char *field, const char *message);

/* Announces that the answer will come later, from any thread, through
 * http_request_resume: the connection waits (suspended) without counting as a slow
 * client, and the server's stop waits for it. -ESHUTDOWN when the server is stopping
 * (then answer at once). */
int http_request_hold(struct http_request *rq);

/* The answer to a held request (exactly once, from any thread; `json` is taken). */
void http_request_resume(struct http_request *rq, unsigned status, char *json,
                         unsigned retry_after_s);
