/*
 * The status page as HTML (GET / , route_page.c): what the route read from the store and
 * the sinks' state goes in as a struct page_view, the whole page comes out in a capped
 * buffer. Nothing here reads the store or the clock, so a test renders any view it likes.
 *
 * Every text that came from outside (ids, the remotes' words, the snapshot) is written
 * through html_text; markup is only what this file writes. The page is plain HTML with
 * one inline <style>, no script, no external asset, so its Content-Security-Policy can
 * forbid everything else. Elements a test or a script reads carry ids and data-
 * attributes: the row of each sink's queue (id="queue-NAME", a data-count="pending" cell
 * per count), each dead letter (data-order, data-sink), each delivery of the order shown
 * (id="delivery-NAME" data-state="done").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/buf.h"
#include "http/auth.h"
#include "queue/sinkstate.h"
#include "sinks/registry.h"
#include "store/store.h"

struct page_sink {
        const char *name;
        struct store_counts counts;
        bool running;                /* this daemon runs it: `state` is its loop's */
        struct sinkstate_view state;
};

struct page_dead {
        char *sink, *order_id, *reason; /* reason: the remote's words, or ours */
        int64_t rev, at, attempts;
};

struct page_view {
        int64_t now_ms;                     /* wall clock, for ages */
        char csrf[HTTP_CSRF_TOKEN_LEN + 1]; /* carried by every form that posts */
        struct page_sink sinks[SINK_KINDS_MAX];
        size_t n_sinks;
        struct page_dead *dead; /* newest first */
        size_t n_dead;
        int64_t dead_total;     /* how many there are; n_dead may be fewer */
        const char *order_id;   /* the order asked for (?order=), or NULL */
        json_t *order;          /* its report (store_order_report), NULL when unknown */
};

/* Writes the page for `v` into `out`: 0, or -EMSGSIZE when it passed the buffer's cap. */
int page_html_render(const struct page_view *v, struct buf *out);

/* Writes a short error page: "400 Bad Request", and `field`: `message`. 0 or -EMSGSIZE. */
int page_html_error(struct buf *out, unsigned status, const char *field, const char *message);
