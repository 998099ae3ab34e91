/*
 * The HTTP front: libmicrohttpd with a small thread pool, connection and time limits,
 * body caps, and the routes of route.c's table:
 *   POST /v1/orders        signed order snapshots (route_orders.c)
 *   GET  /v1/orders/{id}   one order's state, behind a bearer token (route_order.c)
 *   GET  /healthz          liveness and store health (route_health.c)
 */
#pragma once

#include "http/route.h"

struct http_server;

/* Opens every route and listens on [server] listen. What `env` points to (the
 * configuration, the intake, the sources) must outlive the server; `env` is copied. */
int http_server_start(const struct http_env *env, struct http_server **ret);

/* Stops accepting, waits until every held request is answered (the intake must still be
 * running), then stops and frees. Accepts NULL. */
struct http_server *http_server_stop(struct http_server *srv);

/* The port actually bound (useful with listen = …:0). */
unsigned http_server_port(const struct http_server *srv);
