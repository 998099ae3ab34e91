/*
 * libmicrohttpd glue, and the only file that speaks it. MHD's POST processor is not
 * used: the routes' bodies are JSON, read into one capped buffer (base/buf, [server]
 * max_body_bytes). A request is answered as early as its problem is known — no route,
 * wrong method, wrong media type, or a declared length over the cap — before any body is
 * read; then its route (route.c's table) answers, or holds it. A held request's
 * connection is suspended until http_request_resume, which may come from any thread
 * (the intake's committer); `hold_lock` orders the suspend before the resume.
 *
 * MHD's connection timeout only fires on silence, so a client that sends one byte a
 * second would hold its slot for ever: a reaper thread shuts down any connection whose
 * request (headers and body) takes longer than [server] connection_timeout_s, except
 * while the request is held (the wait is ours, not the client's).
 *
 * Bodies cost memory before anyone knows who sent them, so the route's header check
 * (the signature headers) comes before a body is read, and the bodies being received
 * share one budget, [server] unverified_body_bytes: a request reserves its declared
 * length (max_body_bytes when chunked) on its headers, is answered 503 busy when the
 * budget cannot cover it, and gives it back when it ends, whichever way (on_completed).
 *
 * Stopping: new connections are closed as they come (the accept policy; not
 * MHD_quiesce_daemon, whose worker-pool branch races each worker's own removal of the
 * listen fd from its epoll set and aborts on the ENOENT), answers say "Connection:
 * close", every held request is resumed by the intake, and the stop waits — up to
 * DRAIN_MAX_MS — until every request handed to a route has its answer written to the
 * socket (on_completed) before libmicrohttpd closes the connections.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/xalloc.h"
#include "http/route.h"

#define HEADER_MAX 8192
#define SMALL_BODY_MAX 65536 /* bodies this small may use the budget's last eighth */
#define BUSY_RETRY_S 5
#define DRAIN_MAX_MS 10000   /* the stop's wait for answers still being written */

/* One per TCP connection: since when the client owes us a complete request. */
struct conn_clock {
        int fd;
        int64_t since_ms;  /* accepted, or the last request answered */
        bool waiting;      /* held: our time, not the client's */
        struct conn_clock *prev, *next;
};

struct http_server {
        const struct config *cfg;
        struct http_env env;
        const struct http_route *const *routes;
        size_t n_routes;
        void **states; /* each route's own, from its `open` */

        pthread_mutex_t clock_lock;
        pthread_cond_t clock_cond;
        struct conn_clock *clocks;
        pthread_t reaper;
        bool stopping;

        pthread_mutex_t hold_lock;
        pthread_cond_t hold_cond; /* `held` or `answering` reached 0 */
        size_t held;              /* held requests not yet resumed */
        size_t answering;         /* requests handed to their route, answer not yet sent */
        bool draining;            /* stopping: no more holds */
        atomic_bool closed;       /* stopping: new connections are closed, answers say so */

        pthread_mutex_t budget_lock;
        size_t reserved; /* bytes of unverified_body_bytes taken by bodies being read */
        bool refusing;   /* the last reservation failed (logged once per spell) */

        struct MHD_Daemon *mhd;
        unsigned port;
};

struct http_request {
        struct http_server *srv;
        struct MHD_Connection *conn;
        const char *url;
        const struct http_route *route; /* NULL: no route, answered 404 */
        void *state;
        struct buf body;
        size_t seen;   /* body bytes received, kept or not */
        bool too_big;  /* the body passed the cap: dropped, 413 at its end */
        bool answered; /* an answer is queued: swallow whatever else comes */
        size_t reserved; /* of the body budget, given back in on_completed */
        bool answering;  /* counted in srv->answering until on_completed */
        /* a held request; under srv->hold_lock */
        bool held, suspended, ready;
        unsigned later_status, later_retry_after_s;
        char *later_json;
};

static const struct metrics_family requests_family = {
    .name = "orderbridge_http_requests_total",
    .help = "Answers the HTTP server gave, by route (its path in the route table; none: no "
            "route matched) and status code.",
    .type = METRICS_COUNTER,
    .labels = {"route", "code"},
};

/* Queues an answer: `len` bytes of `body` as `type`, no-store, and the headers given
 * (Retry-After, Allow, WWW-Authenticate, then `extra`: NULL-terminated name, value pairs). */
static enum MHD_Result queue_body(struct http_request *rq, unsigned status, const char *type,
                                  const char *body, size_t len, unsigned retry_after_s,
                                  const char *allow, const char *www_authenticate,
                                  const char *const *extra)
{
        struct MHD_Response *resp;
        enum MHD_Result r;
        char ra[16], code[8];

        snprintf(code, sizeof(code), "%u", status);
        metrics_counter_add(&requests_family,
                            (const char *const[]){rq->route ? rq->route->path : "none", code}, 1);
        resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", type);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        if (retry_after_s) {
                snprintf(ra, sizeof(ra), "%u", retry_after_s);
                MHD_add_response_header(resp, "Retry-After", ra);
        }
        if (allow)
                MHD_add_response_header(resp, "Allow", allow);
        if (www_authenticate)
                MHD_add_response_header(resp, "WWW-Authenticate", www_authenticate);
        for (size_t i = 0; extra && extra[i] && extra[i + 1]; i += 2)
                MHD_add_response_header(resp, extra[i], extra[i + 1]);
        /* stopping: a keep-alive client must not send another request into the drain */
        if (atomic_load(&rq->srv->closed))
                MHD_add_response_header(resp, "Connection", "close");
        r = MHD_queue_response(rq->conn, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result queue_answer(struct http_request *rq, unsigned status, const char *json,
                                    unsigned retry_after_s, const char *allow,
                                    const char *www_authenticate)
{
        return queue_body(rq, status, "application/json", json, strlen(json), retry_after_s,
                          allow, www_authenticate, NULL);
}

char *http_error_json(const char *error, const char *field, const char *message)
{
        json_t *doc = json_pack("{s:s, s:s}", "error", error, "message", message);
        char *text;

        if (field)
                json_object_set_new(doc, "field", json_string(field));
        text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        return text;
}

/* ---- connections and their clocks ---- */

/* Stopping: a new connection is closed at once (its client sees the error before any
 * request of it could be stored). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
        struct http_server *srv = cls;

        (void)addr;
        (void)addrlen;
        return atomic_load(&srv->closed) ? MHD_NO : MHD_YES;
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

/* ---- the request API of route.h ---- */

const char *http_request_path(const struct http_request *rq)
{
        return rq->url;
}

const char *http_request_header(const struct http_request *rq, const char *name)
{
        return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

bool http_request_peer_loopback(const struct http_request *rq)
{
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;

        if (!ci || !ci->client_addr)
                return false;
        if (ci->client_addr->sa_family == AF_INET) {
                memcpy(&in4, ci->client_addr, sizeof(in4));
                return (ntohl(in4.sin_addr.s_addr) >> 24) == 127;
        }
        if (ci->client_addr->sa_family == AF_INET6) {
                memcpy(&in6, ci->client_addr, sizeof(in6));
                return IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr) ||
                       (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr) && in6.sin6_addr.s6_addr[12] == 127);
        }
        return false;
}

const char *http_request_arg(const struct http_request *rq, const char *name)
{
        return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_request_body(const struct http_request *rq, size_t *ret_len)
{
        *ret_len = rq->body.len;
        return rq->body.data ? rq->body.data : "";
}

int http_request_reply(struct http_request *rq, unsigned status, const char *json,
                       unsigned retry_after_s, const char *www_authenticate)
{
        rq->answered = true;
        return queue_answer(rq, status, json, retry_after_s, NULL, www_authenticate) ==
                               MHD_YES
                       ? 0
                       : -EIO;
}

int http_request_reply_type(struct http_request *rq, unsigned status, const char *content_type,
                            const char *body, size_t len, const char *const *headers)
{
        rq->answered = true;
        return queue_body(rq, status, content_type, body, len, 0, NULL, NULL, headers) == MHD_YES
                       ? 0
                       : -EIO;
}

int http_request_reply_error(struct http_request *rq, unsigned status, const char *error,
                             const char *field, const char *message)
{
        char *text = http_error_json(error, field, message);
        int r = http_request_reply(rq, status, text, 0, NULL);

        free(text);
        return r;
}

int http_request_hold(struct http_request *rq)
{
        struct http_server *srv = rq->srv;

        pthread_mutex_lock(&srv->hold_lock);
        if (srv->draining) {
                pthread_mutex_unlock(&srv->hold_lock);
                return -ESHUTDOWN;
        }
        rq->held = true;
        srv->held++;
        pthread_mutex_unlock(&srv->hold_lock);
        clock_set(srv, rq->conn, true, false); /* from here on the wait is ours */
        return 0;
}

void http_request_resume(struct http_request *rq, unsigned status, char *json,
                         unsigned retry_after_s)
{
        struct http_server *srv = rq->srv;

        pthread_mutex_lock(&srv->hold_lock);
        rq->later_status = status;
        rq->later_json = json;
        rq->later_retry_after_s = retry_after_s;
        rq->ready = true;
        if (rq->suspended)
                MHD_resume_connection(rq->conn);
        if (--srv->held == 0)
                pthread_cond_broadcast(&srv->hold_cond);
        pthread_mutex_unlock(&srv->hold_lock);
}

/* A held request, in its own thread: answer it if its answer came, else suspend the
 * connection until it does (under the lock, so that no resume can overtake it). */
static enum MHD_Result answer_held(struct http_request *rq)
{
        struct http_server *srv = rq->srv;
        enum MHD_Result r;
        unsigned status, retry_after_s;
        char *json;

        pthread_mutex_lock(&srv->hold_lock);
        if (!rq->ready) {
                rq->suspended = true;
                MHD_suspend_connection(rq->conn);
                pthread_mutex_unlock(&srv->hold_lock);
                return MHD_YES;
        }
        rq->suspended = false;
        status = rq->later_status;
        retry_after_s = rq->later_retry_after_s;
        json = rq->later_json;
        rq->later_json = NULL;
        pthread_mutex_unlock(&srv->hold_lock);
        rq->answered = true;
        r = queue_answer(rq, status, json ? json : "{}", retry_after_s, NULL, NULL);
        free(json);
        return r;
}

/* ---- routing ---- */

/* The media type a route's body must have. */
static const char *body_media_type(enum http_body body)
{
        return body == HTTP_BODY_FORM ? "application/x-www-form-urlencoded" : "application/json";
}

/* Whether Content-Type `ct` is `want`, parameters (charset) aside. */
static bool media_type_is(const char *ct, const char *want)
{
        size_t n = strlen(want);

        if (!ct || strncasecmp(ct, want, n) != 0)
                return false;
        return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* Whether `method` is one of the comma-separated `list` ("GET, HEAD"). */
static bool method_listed(const char *list, const char *method)
{
        size_t n = strlen(method);

        for (const char *p = list; *p;) {
                size_t len;

                while (*p == ' ' || *p == ',')
                        p++;
                len = strcspn(p, ", ");
                if (len == n && len > 0 && strncmp(p, method, n) == 0)
                        return true;
                p += len;
        }
        return false;
}

static size_t route_index(const struct http_server *srv, const char *url)
{
        size_t i;

        for (i = 0; i < srv->n_routes; i++) {
                const struct http_route *rt = srv->routes[i];
                if (rt->prefix ? strncmp(url, rt->path, strlen(rt->path)) == 0
                               : strcmp(url, rt->path) == 0)
                        break;
        }
        return i;
}

/* ---- the budget of bodies not yet verified ---- */

/* Takes `n` bytes of [server] unverified_body_bytes for a body about to be read: whether
 * it could. Bodies over SMALL_BODY_MAX may take only seven eighths, so that big unsigned
 * bodies cannot shut out the shop's few-KB snapshots; and one body is always let in when
 * nothing else is reserved, so a budget below max_body_bytes still lets bodies through,
 * one at a time. */
static bool budget_take(struct http_server *srv, size_t n)
{
        size_t limit = (size_t)srv->cfg->unverified_body_bytes;
        bool ok, log_it;

        if (n > SMALL_BODY_MAX)
                limit -= limit / 8;
        pthread_mutex_lock(&srv->budget_lock);
        ok = srv->reserved == 0 || (n <= limit && srv->reserved <= limit - n);
        if (ok)
                srv->reserved += n;
        log_it = !ok && !srv->refusing;
        srv->refusing = !ok;
        pthread_mutex_unlock(&srv->budget_lock);
        if (log_it)
                log_warn("http.busy", "reason=\"bodies being received reached [server] "
                         "unverified_body_bytes\" budget=%lld",
                         (long long)srv->cfg->unverified_body_bytes);
        return ok;
}

static void budget_give(struct http_server *srv, size_t n)
{
        pthread_mutex_lock(&srv->budget_lock);
        srv->reserved -= n;
        pthread_mutex_unlock(&srv->budget_lock);
}

/* Reserves the body's length from the budget, or answers 503 busy before reading it. */
static enum MHD_Result reserve_body(struct http_server *srv, struct http_request *rq,
                                    const char *cl)
{
        const char *te = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_TRANSFER_ENCODING);
        size_t n = te   ? (size_t)srv->cfg->max_body_bytes
                   : cl ? (size_t)strtoull(cl, NULL, 10)
                        : 0;

        if (n == 0)
                return MHD_YES;
        if (!budget_take(srv, n)) {
                rq->answered = true;
                return queue_answer(rq, 503,
                                    "{\"error\":\"busy\",\"message\":\"too many request "
                                    "bodies are being received; send it again\"}",
                                    BUSY_RETRY_S, NULL, NULL);
        }
        rq->reserved = n;
        buf_init(&rq->body, n); /* never more memory than was reserved */
        return MHD_YES;
}

/* The first call of a request, on its headers: route, method, media type, declared
 * length, the route's own look at the headers, the body budget. Anything refused here is
 * answered before a byte of the body is read. */
static enum MHD_Result first_call(struct http_server *srv, struct http_request *rq,
                                  const char *url, const char *method)
{
        const char *cl, *ct;
        size_t i = route_index(srv, url);

        if (i == srv->n_routes) {
                char *text = http_error_json("not_found", NULL, "no such endpoint");
                enum MHD_Result r = queue_answer(rq, 404, text, 0, NULL, NULL);
                free(text);
                rq->answered = true;
                return r;
        }
        rq->route = srv->routes[i];
        rq->state = srv->states[i];
        if (!method_listed(rq->route->methods, method)) {
                rq->answered = true;
                return queue_answer(rq, 405, "{\"error\":\"method_not_allowed\"}", 0,
                                    rq->route->methods, NULL);
        }
        if (rq->route->body == HTTP_BODY_NONE)
                return MHD_YES;
        ct = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!media_type_is(ct, body_media_type(rq->route->body))) {
                char why[80];
                snprintf(why, sizeof(why), "the body must be %s",
                         body_media_type(rq->route->body));
                return http_request_reply_error(rq, 415, "unsupported_media_type",
                                                "Content-Type", why) == 0
                               ? MHD_YES
                               : MHD_NO;
        }
        cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && (strlen(cl) > 15 ||
                   strtoull(cl, NULL, 10) > (unsigned long long)srv->cfg->max_body_bytes))
                return http_request_reply_error(rq, 413, "body_too_large", NULL,
                                                "the body is larger than [server] "
                                                "max_body_bytes") == 0
                               ? MHD_YES
                               : MHD_NO;
        if (rq->route->check_headers) {
                if (rq->route->check_headers(&srv->env, rq->state, rq) < 0)
                        return MHD_NO;
                if (rq->answered)
                        return MHD_YES;
        }
        return reserve_body(srv, rq, cl);
}

/* A body arriving: into the capped buffer, or counted and dropped. */
static enum MHD_Result take_body(struct http_server *srv, struct http_request *rq,
                                 const char *data, size_t n)
{
        rq->seen += n;
        /* a body that goes on far past the cap (chunked, so its length was not declared)
         * is not drained for ever: drop the connection */
        if (rq->too_big && rq->seen / 4 > (size_t)srv->cfg->max_body_bytes)
                return MHD_NO;
        if (rq->answered || rq->too_big)
                return MHD_YES;
        if (buf_append(&rq->body, data, n) < 0) {
                rq->too_big = true;
                buf_free(&rq->body);
        }
        return MHD_YES;
}

/* The request is complete: refusals common to routes with a body, then the route. From here
 * on the request counts as one whose answer the stop waits for. */
static enum MHD_Result complete(struct http_server *srv, struct http_request *rq)
{
        int r;

        pthread_mutex_lock(&srv->hold_lock);
        srv->answering++;
        pthread_mutex_unlock(&srv->hold_lock);
        rq->answering = true;

        if (rq->route->body != HTTP_BODY_NONE) {
                if (rq->too_big)
                        r = http_request_reply_error(rq, 413, "body_too_large", NULL,
                                                     "the body is larger than [server] "
                                                     "max_body_bytes");
                else if (rq->body.len == 0)
                        r = http_request_reply_error(rq, 400, "invalid_field", "(body)",
                                                     "the body is empty");
                else
                        r = 1;
                if (r <= 0)
                        return r == 0 ? MHD_YES : MHD_NO;
        }
        r = rq->route->handle(&srv->env, rq->state, rq);
        if (r < 0)
                return MHD_NO;
        if (rq->held && !rq->answered)
                return answer_held(rq);
        return rq->answered ? MHD_YES : MHD_NO; /* a route that did not answer: cut */
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
        struct http_server *srv = cls;
        struct http_request *rq = *con_cls;
        size_t n = *upload_data_size;

        if (!rq) {
                rq = xcalloc(1, sizeof(*rq));
                rq->srv = srv;
                rq->conn = conn;
                rq->url = url;
                buf_init(&rq->body, (size_t)srv->cfg->max_body_bytes);
                *con_cls = rq;
                return first_call(srv, rq, url, method);
        }
        rq->url = url;
        if (!rq->route)
                return MHD_NO; /* answered 404 already */
        if (n > 0) {
                *upload_data_size = 0;
                if (rq->route->body == HTTP_BODY_NONE)
                        return MHD_YES; /* a GET has no use for a body: ignore it */
                return take_body(srv, rq, upload_data, n);
        }
        if (rq->answered)
                return MHD_YES;
        if (rq->held)
                return answer_held(rq); /* resumed */
        return complete(srv, rq);
}

/* Every request ends here once, answered or not, its client gone or not: what it took of
 * the budget goes back, and the stop learns that its answer is out. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        struct http_server *srv = cls;
        struct http_request *rq = *con_cls;

        if (!rq)
                return;
        clock_set(srv, conn, false, true); /* the next request's clock starts now */
        if (rq->reserved)
                budget_give(srv, rq->reserved);
        if (rq->answering) {
                pthread_mutex_lock(&srv->hold_lock);
                if (--srv->answering == 0)
                        pthread_cond_broadcast(&srv->hold_cond);
                pthread_mutex_unlock(&srv->hold_lock);
        }
        /* a client that went away after its snapshot was handed over: stored all the
         * same, only the answer is lost */
        free(rq->later_json);
        buf_free(&rq->body);
        free(rq);
        *con_cls = NULL;
}

static void close_routes(struct http_server *srv)
{
        for (size_t i = 0; i < srv->n_routes; i++)
                if (srv->states[i] && srv->routes[i]->close)
                        srv->routes[i]->close(srv->states[i]);
        free(srv->states);
        srv->states = NULL;
}

static int open_routes(struct http_server *srv)
{
        srv->routes = http_routes(&srv->n_routes);
        srv->states = xcalloc(srv->n_routes, sizeof(*srv->states));
        for (size_t i = 0; i < srv->n_routes; i++) {
                int r = srv->routes[i]->open ? srv->routes[i]->open(&srv->env, &srv->states[i])
                                             : 0;
                if (r < 0) {
                        close_routes(srv);
                        return r;
                }
        }
        return 0;
}

static void free_server(struct http_server *srv)
{
        close_routes(srv);
        pthread_mutex_destroy(&srv->clock_lock);
        pthread_cond_destroy(&srv->clock_cond);
        pthread_mutex_destroy(&srv->hold_lock);
        pthread_cond_destroy(&srv->hold_cond);
        pthread_mutex_destroy(&srv->budget_lock);
        free(srv);
}

int http_server_start(const struct http_env *env, struct http_server **ret)
{
        const struct config *cfg = env->cfg;
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
        srv->env = *env;
        r = open_routes(srv);
        if (r < 0) {
                free(srv);
                return r;
        }
        pthread_mutex_init(&srv->clock_lock, NULL);
        clock_cond_init(&srv->clock_cond);
        pthread_mutex_init(&srv->hold_lock, NULL);
        clock_cond_init(&srv->hold_cond);
        pthread_mutex_init(&srv->budget_lock, NULL);
        atomic_init(&srv->closed, false);
        srv->mhd = MHD_start_daemon(
                MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                        (strchr(cfg->listen_host, ':') ? MHD_USE_IPv6 : 0),
                cfg->listen_port, on_accept, srv, on_request, srv, MHD_OPTION_SOCK_ADDR, &ss,
                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
                MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_s,
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(HEADER_MAX * 4),
                MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
                MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, srv, MHD_OPTION_END);
        r = srv->mhd ? -pthread_create(&srv->reaper, NULL, reaper, srv) : -EADDRINUSE;
        if (r < 0) {
                if (srv->mhd)
                        MHD_stop_daemon(srv->mhd);
                free_server(srv);
                return r == -EADDRINUSE ? r : -EAGAIN;
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

/* Waits until every held request is resumed (the intake answers each: no bound), then
 * until every answer is written, for at most DRAIN_MAX_MS: 0, or how many are not. */
static size_t drain(struct http_server *srv)
{
        struct timespec deadline;
        bool late = false;
        size_t left;

        clock_mono_deadline(DRAIN_MAX_MS, &deadline);
        pthread_mutex_lock(&srv->hold_lock);
        srv->draining = true;
        while (srv->held > 0 || (srv->answering > 0 && !late)) {
                if (late)
                        pthread_cond_wait(&srv->hold_cond, &srv->hold_lock);
                else
                        late = pthread_cond_timedwait(&srv->hold_cond, &srv->hold_lock,
                                                      &deadline) == ETIMEDOUT;
        }
        left = srv->answering;
        pthread_mutex_unlock(&srv->hold_lock);
        return left;
}

struct http_server *http_server_stop(struct http_server *srv)
{
        size_t left;

        if (!srv)
                return NULL;
        atomic_store(&srv->closed, true);
        left = drain(srv);
        if (left > 0)
                log_warn("http.drain_timeout", "unanswered=%zu waited_ms=%d", left,
                         DRAIN_MAX_MS);
        pthread_mutex_lock(&srv->clock_lock);
        srv->stopping = true;
        pthread_cond_signal(&srv->clock_cond);
        pthread_mutex_unlock(&srv->clock_lock);
        pthread_join(srv->reaper, NULL);
        MHD_stop_daemon(srv->mhd);
        free_server(srv);
        return NULL;
}
