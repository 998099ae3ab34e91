/*
 * GET /v1/orders/{id}: one order's state (latest snapshot, history, per-sink delivery,
 * attempts, dead letters, links) for an operator, behind the admin token (http/auth.h:
 * a bearer token, or HTTP Basic with it as the password). The route has its own
 * read-only use of the store: one connection, one request at a time (the store's handles
 * are per thread).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "http/auth.h"
#include "http/route.h"
#include "model/snapshot.h"
#include "store/store.h"

#define PREFIX "/v1/orders/"

static int order_handle(const struct http_env *env, void *state, struct http_request *rq)
{
        struct http_store_reader *rd = state;
        const char *id = http_request_path(rq) + strlen(PREFIX);
        size_t n = strlen(id);
        char *json = NULL;
        int r;

        if (!http_auth_admin(env->cfg, rq))
                return 0;
        if (n == 0 || n > SNAPSHOT_ID_MAX || !snapshot_id_chars(id))
                return http_request_reply_error(rq, 400, "invalid_field", "id",
                                                "an order id has only letters, digits, '-' "
                                                "and '_'");
        pthread_mutex_lock(&rd->lock);
        r = store_order_report(rd->store, id, &json);
        pthread_mutex_unlock(&rd->lock);
        if (r == -ENOENT)
                return http_request_reply_error(rq, 404, "not_found", "id", "no such order");
        if (r < 0)
                return http_request_reply_error(rq, 503, "store_unavailable", NULL,
                                                "cannot read the store");
        r = http_request_reply(rq, 200, json, 0, NULL);
        free(json);
        return r;
}

const struct http_route route_order = {
    .methods = "GET, HEAD",
    .path = PREFIX,
    .prefix = true,
    .body = HTTP_BODY_NONE,
    .open = http_store_reader_open,
    .close = http_store_reader_close,
    .handle = order_handle,
};
