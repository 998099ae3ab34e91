/*
 * The HTTP front: libmicrohttpd with a small thread pool, connection and time limits,
 * body caps, and the routes:
 *   POST /v1/orders        signed order snapshots (ingest.c)
 *   GET  /v1/orders/{id}   one order's state, behind a bearer token
 *   GET  /healthz          liveness and store health
 */
#pragma once

#include "config/config.h"
#include "http/ingest.h"

struct http_server;

int http_server_start(const struct config *cfg, struct ingest *in, struct http_server **ret);

/* Stops accepting, lets the committer finish and answer what it holds, then stops. */
struct http_server *http_server_stop(struct http_server *srv);

/* The port actually bound (useful with listen = …:0). */
unsigned http_server_port(const struct http_server *srv);
