/*
 * The route table: the only place a route is named. Each row is defined in its own file,
 * http/route_NAME.c; the server tries the rows in this order and takes the first whose
 * path matches ("/v1/orders" exactly before the "/v1/orders/" prefix).
 */
#include "http/route.h"

#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "queue/dispatch.h"
#include "store/store.h"

extern const struct http_route route_orders; /* POST /v1/orders: signed snapshots */
extern const struct http_route route_order;  /* GET  /v1/orders/{id}: one order, admin */
extern const struct http_route route_health; /* GET  /healthz */
extern const struct http_route route_b24_events; /* POST /v1/bitrix24/events: deal events */
/* GET /v1/roistat/export: Roistat's pull protocol */
extern const struct http_route route_roistat_export;
extern const struct http_route route_ready; /* GET  /readyz */
extern const struct http_route route_metrics; /* GET /metrics: Prometheus, loopback or admin */
extern const struct http_route route_page;       /* GET  /: the status page, admin */
extern const struct http_route route_page_retry; /* POST /retry: its Retry button */

static const struct http_route *const routes[] = {
    &route_orders,
    &route_order,
    &route_health,
    &route_b24_events,
    &route_roistat_export,
    &route_ready,
    &route_metrics,
    &route_page,
    &route_page_retry,
};

const struct http_route *const *http_routes(size_t *ret_n)
{
        *ret_n = sizeof(routes) / sizeof(routes[0]);
        return routes;
}

struct source *http_env_source(const struct http_env *env, const char *name)
{
        for (size_t i = 0; i < env->n_sources; i++)
                if (strcmp(env->sources[i]->ops->name, name) == 0)
                        return env->sources[i];
        return NULL;
}

void http_env_wake(const struct http_env *env, const char *name)
{
        for (size_t i = 0; i < env->n_sinks; i++)
                if (strcmp(dispatch_sink(env->sinks[i]), name) == 0)
                        dispatch_wake(env->sinks[i]);
}

int http_store_reader_open(const struct http_env *env, void **ret_state)
{
        struct http_store_reader *rd = xcalloc(1, sizeof(*rd));
        int r = store_open(env->cfg->store_path, &rd->store);

        if (r < 0) {
                free(rd);
                return r;
        }
        pthread_mutex_init(&rd->lock, NULL);
        *ret_state = rd;
        return 0;
}

void http_store_reader_close(void *state)
{
        struct http_store_reader *rd = state;

        store_close(rd->store);
        pthread_mutex_destroy(&rd->lock);
        free(rd);
}
