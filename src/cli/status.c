/*
 * `orderbridge status`: read the store that a running daemon uses (SQLite's WAL lets it
 * run beside the daemon): the queue per sink (every kind in sinks/registry.c, or the one
 * that --sink names), or one order's whole story.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "sinks/registry.h"
#include "store/store.h"

static void print_time(const char *label, json_t *ms)
{
        char buf[32];
        time_t t;
        struct tm tm;

        if (!json_is_integer(ms) || json_integer_value(ms) <= 0)
                return;
        t = (time_t)(json_integer_value(ms) / 1000);
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%SZ", &tm);
        printf(" %s=%s", label, buf);
}

static void print_order(json_t *doc)
{
        json_t *snap = json_object_get(doc, "snapshot"), *order = json_object_get(snap, "order");
        json_t *row;
        size_t i;

        printf("order %s (rev %lld)\n", json_string_value(json_object_get(doc, "order_id")),
               (long long)json_integer_value(json_object_get(doc, "rev")));
        printf("  now: status=%s canceled=%s paid=%s price=%s %s visit=%s\n",
               json_string_value(json_object_get(order, "status")),
               json_is_true(json_object_get(order, "canceled")) ? "yes" : "no",
               json_is_true(json_object_get(order, "paid")) ? "yes" : "no",
               json_string_value(json_object_get(order, "price")),
               json_string_value(json_object_get(order, "currency")),
               json_is_string(json_object_get(order, "roistat_visit"))
                       ? json_string_value(json_object_get(order, "roistat_visit"))
                       : "-");
        printf("deliveries:\n");
        json_array_foreach(json_object_get(doc, "deliveries"), i, row)
        {
                printf("  %-9s %-9s attempts=%lld done_rev=%lld want_rev=%lld",
                       json_string_value(json_object_get(row, "sink")),
                       json_string_value(json_object_get(row, "state")),
                       (long long)json_integer_value(json_object_get(row, "attempts")),
                       (long long)json_integer_value(json_object_get(row, "done_rev")),
                       (long long)json_integer_value(json_object_get(row, "want_rev")));
                if (strcmp(json_string_value(json_object_get(row, "state")), "done"))
                        print_time("next", json_object_get(row, "next_at"));
                if (json_is_string(json_object_get(row, "last_error")))
                        printf(" last_error=\"%s\"",
                               json_string_value(json_object_get(row, "last_error")));
                printf("\n");
        }
        printf("links:\n");
        json_array_foreach(json_object_get(doc, "links"), i, row)
                printf("  %s=%s\n", json_string_value(json_object_get(row, "kind")),
                       json_string_value(json_object_get(row, "remote_id")));
        printf("snapshots received (newest first):\n");
        json_array_foreach(json_object_get(doc, "history"), i, row)
        {
                printf("  rev=%lld version=%lld source=%s outcome=%s",
                       (long long)json_integer_value(json_object_get(row, "rev")),
                       (long long)json_integer_value(json_object_get(row, "version")),
                       json_string_value(json_object_get(row, "source")),
                       json_string_value(json_object_get(row, "outcome")));
                print_time("at", json_object_get(row, "received_at"));
                printf("\n");
        }
        printf("attempts (newest first):\n");
        json_array_foreach(json_object_get(doc, "attempts"), i, row)
        {
                printf("  %-9s rev=%lld outcome=%s",
                       json_string_value(json_object_get(row, "sink")),
                       (long long)json_integer_value(json_object_get(row, "rev")),
                       json_string_value(json_object_get(row, "outcome")));
                print_time("at", json_object_get(row, "at"));
                if (json_is_string(json_object_get(row, "detail")))
                        printf(" detail=\"%s\"", json_string_value(json_object_get(row, "detail")));
                printf("\n");
        }
}

/* What the daemon's last light reconcile found (meta "reconcile.drift" and "reconcile.at"),
 * when it has run: "reconcile: 3 drift (at …)", or a "reconcile" member of the JSON. */
static void reconcile_line(struct store *st, int as_json, bool comma)
{
        char *drift = NULL, *at = NULL, *end = NULL;
        long long n;

        if (store_meta_get(st, "reconcile.drift", &drift) == 0 && drift &&
            store_meta_get(st, "reconcile.at", &at) == 0 && at) {
                n = strtoll(drift, &end, 10);
                if (end != drift && !*end && n >= 0 && strspn(at, "0123456789-:TZ") == strlen(at)) {
                        if (as_json)
                                printf("%s\"reconcile\":{\"drift\":%lld,\"at\":\"%s\"}",
                                       comma ? "," : "", n, at);
                        else
                                printf("reconcile: %lld drift (at %s)\n", n, at);
                }
        }
        free(drift);
        free(at);
}

/* The queue of every sink kind (enabled or not: a disabled one may still hold work), or
 * of `only` when given. */
static int queue(struct store *st, const char *only, int as_json)
{
        size_t shown = 0;
        int r = 0;

        if (as_json)
                printf("{");
        else
                printf("%-9s %8s %8s %8s %8s %8s %8s\n", "sink", "pending", "inflight",
                       "retrying", "waiting", "done", "dead");
        for (size_t i = 0; i < sink_registry_count(); i++) {
                const char *name = sink_registry_get(i)->name;
                struct store_counts c;
                if (only && strcmp(only, name) != 0)
                        continue;
                if ((r = store_counts(st, name, &c)) < 0)
                        break;
                if (as_json)
                        printf("%s\"%s\":{\"pending\":%lld,\"inflight\":%lld,"
                               "\"retrying\":%lld,\"waiting\":%lld,\"done\":%lld,"
                               "\"dead\":%lld}",
                               shown ? "," : "", name, (long long)c.pending,
                               (long long)c.inflight, (long long)c.retrying,
                               (long long)c.waiting, (long long)c.done, (long long)c.dead);
                else
                        printf("%-9s %8lld %8lld %8lld %8lld %8lld %8lld\n", name,
                               (long long)c.pending, (long long)c.inflight,
                               (long long)c.retrying, (long long)c.waiting,
                               (long long)c.done, (long long)c.dead);
                shown++;
        }
        if (r == 0)
                reconcile_line(st, as_json, shown > 0);
        if (as_json)
                printf("}\n");
        return r;
}

static int status(const struct config *cfg, const char *order_id, const char *only,
                  int as_json)
{
        struct store *st;
        int r;

        r = store_open(cfg->store_path, &st);
        if (r < 0) {
                fprintf(stderr, "orderbridge status: store %s: %s\n", cfg->store_path,
                        strerror(-r));
                return 1;
        }
        if (order_id) {
                char *json = NULL;
                r = store_order_report(st, order_id, &json);
                if (r == -ENOENT)
                        fprintf(stderr, "orderbridge status: no order %s\n", order_id);
                else if (r < 0)
                        fprintf(stderr, "orderbridge status: %s\n", store_errmsg(st));
                else if (as_json)
                        printf("%s\n", json);
                else {
                        json_t *doc = json_loads(json, 0, NULL);
                        print_order(doc);
                        json_decref(doc);
                }
                free(json);
        } else {
                r = queue(st, only, as_json);
        }
        store_close(st);
        return r < 0 ? 1 : 0;
}

int cli_status(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        if (argc > 1) {
                fprintf(stderr, "orderbridge status: at most one ORDER_ID\n");
                return 2;
        }
        return status(cfg, argc == 1 ? argv[0] : NULL, o->sink, o->json);
}
