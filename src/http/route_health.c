/*
 * GET /healthz: liveness and store health for a load balancer or systemd's watchdog
 * script. 200 {"status":"ok"}, or 503 {"status":"store_failing"} with Retry-After while
 * the intake's last commit failed (it reads an atomic the committer writes).
 */
#include "http/route.h"

static int health_handle(const struct http_env *env, void *state, struct http_request *rq)
{
        if (!intake_healthy(env->intake))
                return http_request_reply(rq, 503, "{\"status\":\"store_failing\"}", 5, NULL);
        return http_request_reply(rq, 200, "{\"status\":\"ok\"}", 0, NULL);
}

const struct http_route route_health = {
    .methods = "GET, HEAD",
    .path = "/healthz",
    .body = HTTP_BODY_NONE,
    .handle = health_handle,
};
