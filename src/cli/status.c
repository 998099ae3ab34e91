/*
 * `orderbridge status`: read the store that a running daemon uses (SQLite's WAL lets it
 * run beside the daemon): the queue per sink (every kind in sinks/registry.c, or the one
 * that --sink names) with the age of its oldest owed delivery and the pause the daemon
 * recorded (meta "sink.NAME.state", see queue/sinkstate.h; a record left by a process
 * that is gone is not shown), the dead letters (--dead), or one order's whole story.
 * --json prints the same through jansson: the queue is an object keyed by sink name.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/clock.h"
#include "cli/cli.h"
#include "model/iso8601.h"
#include "queue/sinkstate.h"
#include "sinks/registry.h"
#include "store/store.h"

#define DEAD_LIMIT_DEFAULT 50

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
 * when it has run: {"drift":N,"at":"…"}, or NULL. */
static json_t *reconcile_info(struct store *st)
{
        char *drift = NULL, *at = NULL, *end = NULL;
        json_t *info = NULL;
        long long n;

        if (store_meta_get(st, "reconcile.drift", &drift) == 0 && drift &&
            store_meta_get(st, "reconcile.at", &at) == 0 && at) {
                n = strtoll(drift, &end, 10);
                if (end != drift && !*end && n >= 0 && strspn(at, "0123456789-:TZ") == strlen(at))
                        info = json_pack("{s:I, s:s}", "drift", (json_int_t)n, "at", at);
        }
        free(drift);
        free(at);
        return info;
}

/* A remote's words as a JSON string; words that are not UTF-8 (jansson refuses them) are
 * not dropped silently but said to be so. */
static json_t *words(const char *text)
{
        json_t *j = json_string(text ? text : "");

        return j ? j : json_string("(not UTF-8 text)");
}

static json_t *iso_or_null(int64_t ms)
{
        char buf[32];

        if (ms <= 0)
                return json_null();
        iso8601_format(ms / 1000, buf, sizeof(buf));
        return json_string(buf);
}

/* Whether process `pid` exists (EPERM: it does, under another user). */
static bool pid_alive(long pid)
{
        return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* The pause the serving daemon recorded for `sink`: {"pause":…,"since":…,"until":…,
 * "reason":…}, or NULL when it runs, nothing was recorded, or the recorder is gone. */
static json_t *pause_info(struct store *st, const char *sink)
{
        struct sinkstate_view v = {0};
        char key[64], *value = NULL;
        json_t *info = NULL;
        long pid = 0;

        sinkstate_meta_key(sink, key, sizeof(key));
        if (store_meta_get(st, key, &value) == 0 && value &&
            sinkstate_meta_parse(value, &v, &pid) == 0 && v.pause != SINK_RUNNING &&
            pid_alive(pid))
                info = json_pack("{s:s, s:o, s:o, s:o}", "pause", sinkstate_pause_name(v.pause),
                                 "since", iso_or_null(v.paused_at_ms), "until",
                                 iso_or_null(v.paused_until_ms), "reason", words(v.reason));
        free(value);
        return info;
}

/* 42s, 17m, 5h, 3d: the age of the oldest owed delivery, or "-". */
static void format_age(json_t *age_s, char *buf, size_t size)
{
        long long a = json_integer_value(age_s);

        if (!json_is_integer(age_s))
                snprintf(buf, size, "-");
        else if (a < 120)
                snprintf(buf, size, "%llds", a);
        else if (a < 7200)
                snprintf(buf, size, "%lldm", a / 60);
        else if (a < 172800)
                snprintf(buf, size, "%lldh", a / 3600);
        else
                snprintf(buf, size, "%lldd", a / 86400);
}

/* The queue of every sink kind (enabled or not: a disabled one may still hold work), or
 * of `only`: {"roistat":{"pending":…,…,"oldest_pending_age_s":N|null,"paused":{…}|null},
 * …[, "reconcile":{…}]}. */
static int add_role(void *arg, const char *name, const char *owner, int64_t since,
                    int64_t left_ms)
{
        json_object_set_new(arg, name,
                            json_pack("{s:s, s:o, s:I}", "owner", owner, "since",
                                      iso_or_null(since), "left_s",
                                      (json_int_t)(left_ms > 0 ? left_ms / 1000 : 0)));
        return 0;
}

/* A shared store's roles: which server delivers each sink, polls, reconciles. */
static json_t *roles_info(struct store *st)
{
        json_t *roles;

        if (!store_shared(st))
                return NULL;
        roles = json_object();
        if (store_claims(st, add_role, roles) < 0) {
                json_decref(roles);
                return NULL;
        }
        return roles;
}

static int queue_json(struct store *st, const char *only, json_t **ret)
{
        json_t *doc = json_object(), *rec;
        int64_t now = clock_wall_ms();
        int r = 0;

        for (size_t i = 0; i < sink_registry_count(); i++) {
                const char *name = sink_registry_get(i)->name;
                struct store_counts c;
                const char *state;
                json_t *sink, *paused;
                int64_t n;
                if (only && strcmp(only, name) != 0)
                        continue;
                if ((r = store_counts(st, name, &c)) < 0)
                        break;
                sink = json_object();
                for (size_t j = 0; (state = store_counts_nth(&c, j, &n)); j++)
                        json_object_set_new(sink, state, json_integer(n));
                json_object_set_new(sink, "oldest_pending_age_s",
                                    c.oldest_pending_at > 0
                                        ? json_integer((now - c.oldest_pending_at) / 1000)
                                        : json_null());
                paused = pause_info(st, name);
                json_object_set_new(sink, "paused", paused ? paused : json_null());
                json_object_set_new(doc, name, sink);
        }
        if (r == 0 && (rec = reconcile_info(st)))
                json_object_set_new(doc, "reconcile", rec);
        if (r == 0 && (rec = roles_info(st)))
                json_object_set_new(doc, "roles", rec);
        if (r < 0) {
                json_decref(doc);
                return r;
        }
        *ret = doc;
        return 0;
}

static void print_queue(json_t *doc)
{
        const struct store_counts none = {0}; /* for the states' names alone */
        const char *name, *state;
        json_t *c, *p;
        char age[32];
        int64_t n;

        printf("%-9s", "sink");
        for (size_t j = 0; (state = store_counts_nth(&none, j, &n)); j++)
                printf(" %8s", state);
        printf(" %7s\n", "oldest");
        json_object_foreach(doc, name, c)
        {
                if (strcmp(name, "reconcile") == 0 || strcmp(name, "roles") == 0)
                        continue;
                printf("%-9s", name);
                for (size_t j = 0; (state = store_counts_nth(&none, j, &n)); j++)
                        printf(" %8lld", (long long)json_integer_value(json_object_get(c, state)));
                format_age(json_object_get(c, "oldest_pending_age_s"), age, sizeof(age));
                printf(" %7s\n", age);
        }
        json_object_foreach(json_object_get(doc, "roles"), name, c)
        {
                int64_t left = json_integer_value(json_object_get(c, "left_s"));
                printf("role: %s played by %s since %s, %s\n", name,
                       json_string_value(json_object_get(c, "owner")),
                       json_is_string(json_object_get(c, "since"))
                           ? json_string_value(json_object_get(c, "since"))
                           : "-",
                       left > 0 ? "renewed" : "lapsed: the next server to ask takes it");
        }
        json_object_foreach(doc, name, c)
        {
                if (strcmp(name, "roles") == 0)
                        continue;
                if (!json_is_object(p = json_object_get(c, "paused")))
                        continue;
                printf("paused: %s %s since %s until %s: %s\n", name,
                       json_string_value(json_object_get(p, "pause")),
                       json_is_string(json_object_get(p, "since"))
                           ? json_string_value(json_object_get(p, "since"))
                           : "-",
                       json_is_string(json_object_get(p, "until"))
                           ? json_string_value(json_object_get(p, "until"))
                           : "-",
                       json_string_value(json_object_get(p, "reason")));
        }
        if ((c = json_object_get(doc, "reconcile")))
                printf("reconcile: %lld drift (at %s)\n",
                       (long long)json_integer_value(json_object_get(c, "drift")),
                       json_string_value(json_object_get(c, "at")));
}

static int add_dead(void *arg, const struct store_dead_view *d)
{
        json_array_append_new(
            arg, json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "order_id", d->order_id, "sink",
                           d->sink, "rev", (json_int_t)d->rev, "attempts",
                           (json_int_t)d->attempts, "at", iso_or_null(d->at), "reason",
                           words(d->reason)));
        return 0;
}

/* The dead letters, newest first: {"total":N,"dead":[{order_id, sink, rev, attempts, at,
 * reason}, …]}. */
static int dead_json(struct store *st, const char *only, int limit, json_t **ret)
{
        json_t *list = json_array();
        int64_t total = 0;
        int r;

        r = store_dead_list(st, only, (size_t)limit, add_dead, list, &total);
        if (r < 0) {
                json_decref(list);
                return r;
        }
        *ret = json_pack("{s:I, s:o}", "total", (json_int_t)total, "dead", list);
        return 0;
}

/* A remote's words on one line: control characters shown as spaces. */
static void print_words(const char *s)
{
        for (; *s; s++)
                putchar((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
}

static void print_dead(json_t *doc)
{
        json_t *row;
        size_t i;

        printf("%-20s %-9s %8s  %-20s  %s\n", "order", "sink", "attempts", "died", "last error");
        json_array_foreach(json_object_get(doc, "dead"), i, row)
        {
                printf("%-20s %-9s %8lld  %-20s  ",
                       json_string_value(json_object_get(row, "order_id")),
                       json_string_value(json_object_get(row, "sink")),
                       (long long)json_integer_value(json_object_get(row, "attempts")),
                       json_is_string(json_object_get(row, "at"))
                           ? json_string_value(json_object_get(row, "at"))
                           : "-");
                print_words(json_string_value(json_object_get(row, "reason")));
                printf("\n");
        }
        printf("%lld dead letter%s, %zu shown (`orderbridge retry` sends them again)\n",
               (long long)json_integer_value(json_object_get(doc, "total")),
               json_integer_value(json_object_get(doc, "total")) == 1 ? "" : "s",
               json_array_size(json_object_get(doc, "dead")));
}

/* Prints `doc` as JSON, or with `text`; takes `doc`. */
static void emit(json_t *doc, int as_json, void (*text)(json_t *doc))
{
        if (as_json) {
                char *out = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
                printf("%s\n", out);
                free(out);
        } else {
                text(doc);
        }
        json_decref(doc);
}

static int status(const struct config *cfg, const char *order_id, const struct cli_opts *o)
{
        struct store *st;
        json_t *doc = NULL;
        int r;

        r = store_open(cfg->store_path, &st);
        if (r < 0) {
                fprintf(stderr, "orderbridge status: store %s\n", store_open_error());
                return 1;
        }
        if (order_id) {
                char *json = NULL;
                r = store_order_report(st, order_id, &json);
                if (r == -ENOENT)
                        fprintf(stderr, "orderbridge status: no order %s\n", order_id);
                else if (r < 0)
                        fprintf(stderr, "orderbridge status: %s\n", store_errmsg(st));
                else if (o->json)
                        printf("%s\n", json);
                else {
                        doc = json_loads(json, 0, NULL);
                        print_order(doc);
                        json_decref(doc);
                }
                free(json);
        } else if (o->dead) {
                r = dead_json(st, o->sink, o->limit ? o->limit : DEAD_LIMIT_DEFAULT, &doc);
                if (r == 0)
                        emit(doc, o->json, print_dead);
        } else {
                r = queue_json(st, o->sink, &doc);
                if (r == 0)
                        emit(doc, o->json, print_queue);
        }
        if (r < 0 && r != -ENOENT && !order_id)
                fprintf(stderr, "orderbridge status: %s\n", store_errmsg(st));
        store_close(st);
        return r < 0 ? 1 : 0;
}

int cli_status(const struct config *cfg, const struct cli_opts *o, int argc, char **argv)
{
        if (argc > 1) {
                fprintf(stderr, "orderbridge status: at most one ORDER_ID\n");
                return 2;
        }
        if (argc == 1 && o->dead) {
                fprintf(stderr, "orderbridge status: --dead lists every order's dead letters; "
                        "give no ORDER_ID with it\n");
                return 2;
        }
        return status(cfg, argc == 1 ? argv[0] : NULL, o);
}
