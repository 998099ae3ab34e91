/*
 * `orderbridge reconcile [--repair] [--since DATE] [--json]`: reads Roistat and Bitrix24
 * back for the orders changed since DATE (default: the last 30 days) and prints every
 * difference from what orderbridge delivered, one line each, then a summary line:
 *
 *   ORDER     SINK      FIELD     STORE                     REMOTE
 *   1002      roistat   revenue   4990.00                   4000.00
 *   checked=12 drift=1 not_delivered=0
 *
 * With --repair each (order, sink) that drifted is asked to be delivered again; a running
 * daemon does it within its poll interval (one that is not running, at its next start).
 * Exit 0: no drift; 1: drift; 2: a remote or the store could not be read, or a usage or
 * configuration problem. It reads the store beside a running daemon (SQLite's WAL) and
 * writes to it only to repair.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "cli/cli.h"
#include "model/iso8601.h"
#include "queue/reconcile.h"
#include "store/store.h"

#define DEFAULT_DAYS 30
#define PROGRESS_EVERY 500
/* columns of the table, in characters: values are cut to fit, with "…" */
#define W_ORDER 20
#define W_SINK 9
#define W_FIELD 10
#define W_VALUE 25

/* --since: a date (UTC midnight) or a date-time with its offset, as ms. */
static int parse_since(const char *text, int64_t *ret_ms)
{
        char buf[64];
        int64_t epoch;

        if (strlen(text) == 10) {
                snprintf(buf, sizeof(buf), "%sT00:00:00Z", text);
                text = buf;
        }
        if (iso8601_parse(text, &epoch) < 0)
                return -EINVAL;
        *ret_ms = epoch * 1000;
        return 0;
}

/* Up to `width` characters of UTF-8 `s` ("…" ending one that is cut), padded to `width`
 * unless it is the last column. */
static void cell(const char *s, size_t width, bool last)
{
        size_t chars = 0, i = 0, cut = 0;

        for (; s[i]; i++)
                if (((unsigned char)s[i] & 0xC0) != 0x80 && ++chars == width)
                        cut = i; /* where the last character that fits begins */
        if (chars > width) {
                fwrite(s, 1, cut, stdout);
                fputs("…", stdout);
                chars = width;
        } else {
                fputs(s, stdout);
        }
        if (!last)
                printf("%*s", (int)(width - chars + 1), "");
}

static void print_table(const struct reconcile_report *r)
{
        if (r->n_drifts > 0) {
                cell("ORDER", W_ORDER, false);
                cell("SINK", W_SINK, false);
                cell("FIELD", W_FIELD, false);
                cell("STORE", W_VALUE, false);
                cell("REMOTE", W_VALUE, true);
                putchar('\n');
        }
        for (size_t i = 0; i < r->n_drifts; i++) {
                const struct reconcile_drift *d = &r->drifts[i];
                cell(d->order_id, W_ORDER, false);
                cell(d->sink, W_SINK, false);
                cell(d->field, W_FIELD, false);
                cell(d->store, W_VALUE, false);
                cell(d->remote, W_VALUE, true);
                putchar('\n');
        }
        if (r->n_unsent > 0)
                printf("not yet delivered (not drift):\n");
        for (size_t i = 0; i < r->n_unsent; i++)
                printf("  %s %s %s\n", r->unsent[i].order_id, r->unsent[i].sink,
                       r->unsent[i].state);
}

static json_t *report_json(const struct reconcile_report *r)
{
        json_t *doc = json_object(), *drifts = json_array(), *unsent = json_array();

        json_object_set_new(doc, "checked", json_integer((json_int_t)r->checked));
        json_object_set_new(doc, "drift", json_integer((json_int_t)r->n_drifts));
        json_object_set_new(doc, "not_delivered", json_integer((json_int_t)r->n_unsent));
        json_object_set_new(doc, "read", json_integer((json_int_t)r->read));
        for (size_t i = 0; i < r->n_drifts; i++) {
                const struct reconcile_drift *d = &r->drifts[i];
                /* texts from the store and the remotes: one that is not UTF-8 is null */
                json_array_append_new(
                    drifts, json_pack("{s:s?, s:s, s:s, s:s?, s:s?, s:b}", "order_id", d->order_id,
                                      "sink", d->sink, "field", d->field, "store", d->store,
                                      "remote", d->remote, "by_hand", d->by_hand));
        }
        for (size_t i = 0; i < r->n_unsent; i++)
                json_array_append_new(
                    unsent, json_pack("{s:s?, s:s, s:s?}", "order_id", r->unsent[i].order_id,
                                      "sink", r->unsent[i].sink, "state", r->unsent[i].state));
        json_object_set_new(doc, "drifts", drifts);
        json_object_set_new(doc, "not_yet_delivered", unsent);
        json_object_set_new(doc, "error",
                            r->remote_error ? json_string(r->remote_errmsg) : json_null());
        return doc;
}

struct repairs {
        json_t *list; /* --json: the outcomes, else NULL and one line each */
};

static void repaired(void *arg, const char *order_id, const char *sink,
                     enum reconcile_repair_kind kind, int err)
{
        static const char *const words[] = {
            [RECONCILE_REQUESTED] = "repair requested",
            [RECONCILE_MERGE] = "merge by hand (more than one deal for the order)",
            [RECONCILE_LEFT] = "left as it is (the contact is the CRM's to choose)",
            [RECONCILE_FAILED] = "repair failed",
        };
        struct repairs *rp = arg;

        if (rp->list)
                json_array_append_new(rp->list, json_pack("{s:s?, s:s, s:s}", "order_id", order_id,
                                                          "sink", sink, "outcome", words[kind]));
        else
                printf("%s %s %s%s%s\n", order_id, sink, words[kind], err ? ": " : "",
                       err ? strerror(-err) : "");
}

/* A line each time another PROGRESS_EVERY orders have been read (`arg`: how many had at
 * the last line). */
static void progress(void *arg, size_t read)
{
        size_t *shown = arg;

        if (read / PROGRESS_EVERY > *shown / PROGRESS_EVERY) {
                fprintf(stderr, "orderbridge reconcile: %zu orders read\n", read);
                *shown = read;
        }
}

static int reconcile(const struct config *cfg, const struct cli_opts *o, int64_t since_ms)
{
        size_t shown = 0;
        struct reconcile_opts ro = {
            .since_ms = since_ms, .progress = progress, .progress_arg = &shown};
        struct reconcile_report rep;
        struct repairs rp = {NULL};
        struct reconcile *rc;
        struct store *st;
        int r, status;

        r = reconcile_new(cfg, &rc);
        if (r < 0) {
                fprintf(stderr, "orderbridge reconcile: %s\n",
                        r == -EINVAL ? "neither [roistat] nor [bitrix24] is enabled: nothing "
                                       "to compare"
                                     : strerror(-r));
                return 2;
        }
        r = store_open(cfg->store_path, &st);
        if (r < 0) {
                fprintf(stderr, "orderbridge reconcile: store %s\n", store_open_error());
                reconcile_free(rc);
                return 2;
        }
        r = reconcile_run(rc, st, &ro, &rep);
        if (r < 0)
                fprintf(stderr, "orderbridge reconcile: the store failed: %s\n", store_errmsg(st));
        if (rep.remote_error)
                fprintf(stderr, "orderbridge reconcile: %s (its orders are not compared)\n",
                        rep.remote_errmsg);
        status = r < 0 || rep.remote_error ? 2 : rep.n_drifts > 0 ? 1 : 0;
        if (o->repair && r == 0) {
                if (o->json)
                        rp.list = json_array();
                else
                        print_table(&rep);
                if (reconcile_repair(st, &rep, clock_wall_ms(), repaired, &rp) < 0) {
                        fprintf(stderr, "orderbridge reconcile: a repair failed: %s\n",
                                store_errmsg(st));
                        status = 2;
                }
        } else if (!o->json) {
                print_table(&rep);
        }
        if (o->json) {
                json_t *doc = report_json(&rep);
                char *text;
                if (rp.list)
                        json_object_set_new(doc, "repairs", rp.list);
                text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                printf("%s\n", text ? text : "{}");
                free(text);
                json_decref(doc);
        } else {
                printf("checked=%zu drift=%zu not_delivered=%zu\n", rep.checked, rep.n_drifts,
                       rep.n_unsent);
        }
        reconcile_report_clear(&rep);
        store_close(st);
        reconcile_free(rc);
        return status;
}

int cli_reconcile(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        int64_t since_ms = clock_wall_ms() - (int64_t)DEFAULT_DAYS * 86400 * 1000;

        if (argc > 0) {
                fprintf(stderr, "orderbridge reconcile: unexpected argument %s\n", argv[0]);
                return 2;
        }
        if (o->since && parse_since(o->since, &since_ms) < 0) {
                fprintf(stderr,
                        "orderbridge reconcile: --since %s: give a date (2026-03-01) "
                        "or a date-time with its offset (2026-03-01T10:00:00+03:00)\n",
                        o->since);
                return 2;
        }
        return reconcile(cfg, o, since_ms);
}
