/*
 * libmicrohttpd glue. MHD's POST processor is not used: the only bodies are JSON, read
 * into a buffer capped at [server] max_body_bytes. A request is answered as early as its
 * problem is known: wrong route or method, wrong media type, or a declared length over
 * the cap, before any body is read. A suspended connection (waiting for the group
 * commit) is answered when the committer resumes it.
 *
 * MHD's connection timeout only fires on silence, so a client that sends one byte a
 * second would hold its slot for ever: a reaper thread shuts down any connection whose
 * request (headers and body) takes longer than [server] connection_timeout_s, except
 * while the connection is waiting for our own commit.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/log.h"
#include "model/snapshot.h"
#include "store/store.h"
#include "base/xalloc.h"

#define HEADER_MAX 8192

/* One per TCP connection: since when the client owes us a complete request. */
struct conn_clock {
        int fd;
        int64_t since_ms;  /* accepted, or the last request answered */
        bool waiting;      /* suspended on the commit: our time, not the client's */
        struct conn_clock *prev, *next;
};

struct http_server {
        const struct config *cfg;
        pthread_mutex_t clock_lock;
        pthread_cond_t clock_cond;
        struct conn_clock *clocks;
        pthread_t reaper;
        bool stopping;
        struct ingest *ingest;
        struct MHD_Daemon *mhd;
        struct store *reader; /* for GET /v1/orders/{id} */
        pthread_mutex_t reader_lock;
        unsigned port;
};

enum route { ROUTE_NONE, ROUTE_INGEST, ROUTE_ORDER, ROUTE_HEALTH };

struct request {
        enum route route;
        char *body;
        size_t len, cap, seen;
        bool too_big;
        bool submitted;
        struct ingest_job *job;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *json,
                             unsigned retry_after_s, const char *allow, bool bearer)
{
        struct MHD_Response *resp;
        enum MHD_Result r;
        char ra[16];

        resp = MHD_create_response_from_buffer(strlen(json), (void *)json,
                                               MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", "application/json");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        if (retry_after_s) {
                snprintf(ra, sizeof(ra), "%u", retry_after_s);
                MHD_add_response_header(resp, "Retry-After", ra);
        }
        if (allow)
                MHD_add_response_header(resp, "Allow", allow);
        if (bearer)
                MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
        r = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status,
                                   const char *error, const char *field, const char *message)
{
        json_t *doc = json_pack("{s:s, s:s}", "error", error, "message", message);
        enum MHD_Result r;
        char *text;

        if (field)
                json_object_set_new(doc, "field", json_string(field));
        text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        r = reply(conn, status, text, 0, NULL, false);
        free(text);
        return r;
}

static enum MHD_Result reply_answer(struct MHD_Connection *conn, struct ingest_answer *a)
{
        enum MHD_Result r = reply(conn, a->status, a->json ? a->json : "{}", a->retry_after_s,
                                  NULL, false);
        ingest_answer_clear(a);
        return r;
}

static bool json_media_type(const char *ct)
{
        size_t n = strlen("application/json");

        if (!ct || strncasecmp(ct, "application/json", n) != 0)
                return false;
        return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static enum MHD_Result handle_health(struct http_server *srv, struct MHD_Connection *conn)
{
        if (!ingest_store_healthy(srv->ingest))
                return reply(conn, 503, "{\"status\":\"store_failing\"}", 5, NULL, false);
        return reply(conn, 200, "{\"status\":\"ok\"}", 0, NULL, false);
}

static bool bearer_ok(const struct config *cfg, struct MHD_Connection *conn)
{
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        size_t want, got;

        /* the scheme name is case-insensitive (RFC 9110) */
        if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
                return false;
        auth += 7;
        want = strlen(cfg->admin_token);
        got = strlen(auth);
        /* compare in constant time over the expected length */
        return got == want && CRYPTO_memcmp(auth, cfg->admin_token, want) == 0;
}

static enum MHD_Result handle_order(struct http_server *srv, struct MHD_Connection *conn,
                                    const char *url)
{
        const char *id = url + strlen("/v1/orders/");
        size_t n = strlen(id);
        char *json = NULL;
        enum MHD_Result res;
        int r;

        if (!srv->cfg->admin_token)
                return reply_error(conn, 403, "admin_disabled", NULL,
                                   "set [server] admin_token_file to use this endpoint");
        if (!bearer_ok(srv->cfg, conn))
                return reply(conn, 401,
                             "{\"error\":\"unauthorized\",\"field\":\"Authorization\","
                             "\"message\":\"a valid bearer token is required\"}",
                             0, NULL, true);
        if (n == 0 || n > SNAPSHOT_ID_MAX || !snapshot_id_chars(id))
                return reply_error(conn, 400, "invalid_field", "id",
                                   "an order id has only letters, digits, '-' and '_'");
        pthread_mutex_lock(&srv->reader_lock);
        r = store_order_report(srv->reader, id, &json);
        pthread_mutex_unlock(&srv->reader_lock);
        if (r == -ENOENT)
                return reply_error(conn, 404, "not_found", "id", "no such order");
        if (r < 0)
                return reply_error(conn, 503, "store_unavailable", NULL, "cannot read the store");
        res = reply(conn, 200, json, 0, NULL, false);
        free(json);
        return res;
}

static struct conn_clock *clock_of(struct MHD_Connection *conn)
{
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

static void clock_set(struct http_server *srv, struct MHD_Connection *conn, bool waiting,
                      bool restart)
{
        struct conn_clock *c = clock_of(conn);

        pthread_mutex_lock(&srv->clock_lock);
        if (c) {
                c->waiting = waiting;
                if (restart)
                        c->since_ms = clock_mono_ms();
        }
        pthread_mutex_unlock(&srv->clock_lock);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
        struct http_server *srv = cls;
        const union MHD_ConnectionInfo *ci;
        struct conn_clock *c;

        pthread_mutex_lock(&srv->clock_lock);
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                c = xcalloc(1, sizeof(*c));
                c->fd = ci ? ci->connect_fd : -1;
                c->since_ms = clock_mono_ms();
                c->next = srv->clocks;
                if (srv->clocks)
                        srv->clocks->prev = c;
                srv->clocks = c;
                *socket_context = c;
        } else if ((c = *socket_context)) {
                if (c->prev)
                        c->prev->next = c->next;
                else
                        srv->clocks = c->next;
                if (c->next)
                        c->next->prev = c->prev;
                free(c);
                *socket_context = NULL;
        }
        pthread_mutex_unlock(&srv->clock_lock);
}

/* Cuts connections whose client is too slow; MHD then sees the socket fail and cleans
 * up in its own thread, so the reaper never frees anything itself. */
static void *reaper(void *arg)
{
        struct http_server *srv = arg;
        int64_t limit = srv->cfg->connection_timeout_s * 1000;

        pthread_mutex_lock(&srv->clock_lock);
        while (!srv->stopping) {
                struct timespec ts;
                int64_t now = clock_mono_ms();

                for (struct conn_clock *c = srv->clocks; c; c = c->next)
                        if (!c->waiting && c->fd >= 0 && now - c->since_ms > limit) {
                                shutdown(c->fd, SHUT_RDWR);
                                c->since_ms = INT64_MAX / 2; /* once is enough */
                                log_info("http.slow_client_cut", "timeout_s=%lld",
                                         (long long)srv->cfg->connection_timeout_s);
                        }
                clock_mono_deadline(250, &ts);
                pthread_cond_timedwait(&srv->clock_cond, &srv->clock_lock, &ts);
        }
        pthread_mutex_unlock(&srv->clock_lock);
        return NULL;
}

/* Paths are used as they come: ids are [A-Za-z0-9_-] and need no escapes, while decoding
 * %00 would cut a path short ("/v1/orders%00/x" must not route to /v1/orders). */
static size_t keep_escapes(void *cls, struct MHD_Connection *conn, char *s)
{
        return strlen(s);
}

static enum route route_of(const char *url)
{
        if (strcmp(url, "/v1/orders") == 0)
                return ROUTE_INGEST;
        if (strncmp(url, "/v1/orders/", 11) == 0)
                return ROUTE_ORDER;
        if (strcmp(url, "/healthz") == 0)
                return ROUTE_HEALTH;
        return ROUTE_NONE;
}

/* The first call for a request: route, method, media type, declared length. Returns
 * MHD_YES with *done = true when it answered already. */
static enum MHD_Result first_call(struct http_server *srv, struct MHD_Connection *conn,
                                  const char *url, const char *method, struct request *rq,
                                  bool *done)
{
        const char *cl, *ct;

        *done = true;
        rq->route = route_of(url);
        switch (rq->route) {
        case ROUTE_NONE:
                return reply_error(conn, 404, "not_found", NULL, "no such endpoint");
        case ROUTE_HEALTH:
        case ROUTE_ORDER:
                if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                        return reply(conn, 405, "{\"error\":\"method_not_allowed\"}", 0,
                                     "GET, HEAD", false);
                *done = false;
                return MHD_YES;
        case ROUTE_INGEST:
                if (strcmp(method, "POST"))
                        return reply(conn, 405, "{\"error\":\"method_not_allowed\"}", 0, "POST",
                                     false);
                ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
                if (!json_media_type(ct))
                        return reply_error(conn, 415, "unsupported_media_type", "Content-Type",
                                           "the body must be application/json");
                cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl && (strlen(cl) > 15 || strtoull(cl, NULL, 10) >
                                                      (unsigned long long)srv->cfg->max_body_bytes))
                        return reply_error(conn, 413, "body_too_large", NULL,
                                           "the body is larger than [server] max_body_bytes");
                *done = false;
                return MHD_YES;
        }
        return MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
        struct http_server *srv = cls;
        struct request *rq = *con_cls;
        struct ingest_answer ans = {0};
        struct ingest_request ir;
        bool done;

        if (!rq) {
                enum MHD_Result r;
                rq = xcalloc(1, sizeof(*rq));
                *con_cls = rq;
                r = first_call(srv, conn, url, method, rq, &done);
                if (done)
                        rq->submitted = true; /* answered: swallow any body */
                return r;
        }
        if ((rq->route == ROUTE_HEALTH || rq->route == ROUTE_ORDER) && *upload_data_size) {
                *upload_data_size = 0; /* a GET has no use for a body: ignore it */
                return MHD_YES;
        }
        if (rq->route == ROUTE_HEALTH)
                return handle_health(srv, conn);
        if (rq->route == ROUTE_ORDER)
                return handle_order(srv, conn, url);
        if (rq->route != ROUTE_INGEST)
                return MHD_NO;

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                rq->seen += n;
                /* a body that goes on far past the cap (chunked, so its length was not
                 * declared) is not drained for ever: drop the connection */
                if (rq->too_big && rq->seen / 4 > (size_t)srv->cfg->max_body_bytes)
                        return MHD_NO;
                if (rq->submitted || rq->too_big)
                        return MHD_YES;
                if (rq->len + n > (size_t)srv->cfg->max_body_bytes) {
                        rq->too_big = true;
                        free(rq->body);
                        rq->body = NULL;
                        return MHD_YES;
                }
                if (rq->len + n + 1 > rq->cap) {
                        rq->cap = rq->len + n + 1 < 4096 ? 4096 : (rq->len + n + 1) * 2;
                        if (rq->cap > (size_t)srv->cfg->max_body_bytes + 1)
                                rq->cap = (size_t)srv->cfg->max_body_bytes + 1;
                        rq->body = xrealloc(rq->body, rq->cap);
                }
                memcpy(rq->body + rq->len, upload_data, n);
                rq->len += n;
                rq->body[rq->len] = '\0';
                return MHD_YES;
        }

        /* The body is complete (or we were resumed). */
        if (rq->job) {
                ingest_job_finish(rq->job, &ans);
                rq->job = NULL;
                return reply_answer(conn, &ans);
        }
        if (rq->submitted)
                return MHD_YES;
        if (rq->too_big)
                return reply_error(conn, 413, "body_too_large", NULL,
                                   "the body is larger than [server] max_body_bytes");
        if (rq->len == 0)
                return reply_error(conn, 400, "invalid_field", "(body)", "the body is empty");

        rq->submitted = true;
        clock_set(srv, conn, true, false); /* from here on the wait is ours */
        ir = (struct ingest_request){
                .body = rq->body,
                .len = rq->len,
                .webhook_id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-id"),
                .webhook_timestamp =
                        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-timestamp"),
                .webhook_signature =
                        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-signature"),
        };
        if (ingest_submit(srv->ingest, conn, &ir, &rq->job, &ans) == 1)
                return reply_answer(conn, &ans);
        return MHD_YES; /* suspended until committed */
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        struct request *rq = *con_cls;

        if (!rq)
                return;
        clock_set(cls, conn, false, true); /* the next request's clock starts now */
        if (rq->job) {
                /* the client went away after the commit was queued: the snapshot is
                 * stored all the same; only the answer is lost */
                struct ingest_answer ans;
                ingest_job_finish(rq->job, &ans);
                ingest_answer_clear(&ans);
        }
        free(rq->body);
        free(rq);
        *con_cls = NULL;
}

int http_server_start(const struct config *cfg, struct ingest *in, struct http_server **ret)
{
        struct http_server *srv = xcalloc(1, sizeof(*srv));
        struct sockaddr_storage ss = {0};
        const union MHD_DaemonInfo *info;
        int r;

        if (strchr(cfg->listen_host, ':')) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                a->sin6_family = AF_INET6;
                a->sin6_port = htons(cfg->listen_port);
                inet_pton(AF_INET6, cfg->listen_host, &a->sin6_addr);
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                a->sin_family = AF_INET;
                a->sin_port = htons(cfg->listen_port);
                inet_pton(AF_INET, cfg->listen_host, &a->sin_addr);
        }
        srv->cfg = cfg;
        srv->ingest = in;
        pthread_mutex_init(&srv->reader_lock, NULL);
        pthread_mutex_init(&srv->clock_lock, NULL);
        clock_cond_init(&srv->clock_cond);
        r = store_open(cfg->store_path, &srv->reader);
        if (r < 0) {
                free(srv);
                return r;
        }
        srv->mhd = MHD_start_daemon(
                MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                        (strchr(cfg->listen_host, ':') ? MHD_USE_IPv6 : 0),
                cfg->listen_port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, &ss,
                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
                MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_s,
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(HEADER_MAX * 4),
                MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
                MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, srv, MHD_OPTION_END);
        if (!srv->mhd) {
                store_close(srv->reader);
                free(srv);
                return -EADDRINUSE;
        }
        if (pthread_create(&srv->reaper, NULL, reaper, srv) != 0) {
                MHD_stop_daemon(srv->mhd);
                store_close(srv->reader);
                free(srv);
                return -EAGAIN;
        }
        info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
        srv->port = info ? info->port : cfg->listen_port;
        *ret = srv;
        return 0;
}

unsigned http_server_port(const struct http_server *srv)
{
        return srv->port;
}

struct http_server *http_server_stop(struct http_server *srv)
{
        if (!srv)
                return NULL;
        pthread_mutex_lock(&srv->clock_lock);
        srv->stopping = true;
        pthread_cond_signal(&srv->clock_cond);
        pthread_mutex_unlock(&srv->clock_lock);
        pthread_join(srv->reaper, NULL);
        MHD_quiesce_daemon(srv->mhd);
        ingest_drain(srv->ingest); /* answers and resumes every queued request */
        MHD_stop_daemon(srv->mhd);
        pthread_mutex_destroy(&srv->clock_lock);
        pthread_cond_destroy(&srv->clock_cond);
        store_close(srv->reader);
        pthread_mutex_destroy(&srv->reader_lock);
        free(srv);
        return NULL;
}
