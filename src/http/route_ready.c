/*
 * GET /readyz: whether to send this daemon traffic now. 200 {"status":"ready"} once
 * serve has opened and recovered the store and started the sinks and the listener;
 * 503 {"status":"starting"} before, {"status":"stopping"} after a stop signal (it drains
 * and should get nothing new). Liveness and the sinks' health are /healthz's.
 */
#include "base/lifecycle.h"
#include "http/route.h"

static int ready_handle(const struct http_env *env, void *state, struct http_request *rq)
{
        switch (lifecycle_get()) {
        case LIFECYCLE_READY:
                return http_request_reply(rq, 200, "{\"status\":\"ready\"}", 0, NULL);
        case LIFECYCLE_STOPPING:
                return http_request_reply(rq, 503, "{\"status\":\"stopping\"}", 0, NULL);
        case LIFECYCLE_STARTING:
                break;
        }
        return http_request_reply(rq, 503, "{\"status\":\"starting\"}", 1, NULL);
}

const struct http_route route_ready = {
    .methods = "GET, HEAD",
    .path = "/readyz",
    .body = HTTP_BODY_NONE,
    .handle = ready_handle,
};
