/*
 * Moving a store to another backend (`orderbridge migrate --from PATH`): every order with
 * its history, deliveries, attempts, dead letters and links, and the meta, copied row by
 * row through the backends' ops, so that the queue goes on where it stopped. A pending
 * delivery stays pending, a retrying one keeps its attempts and its time, a dead letter
 * stays dead with its reason, and one left in flight stays so: the first server to claim
 * its sink puts it back, marked uncertain, as a restart would. Revs are kept, because
 * deliveries name them.
 *
 * Webhook ids are not copied: they only keep a resent request from counting twice for a
 * day, and a resent snapshot is found duplicate or stale by its version anyway.
 *
 * Orders go in pages, one transaction each: a copy cut short leaves whole orders, and is
 * started again on an emptied target (the target must hold no order).
 */
#include "store/store_backend.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define COPY_PAGE 200

struct side {
        const struct store_backend_ops *ops;
        struct store_backend *be;
};

static json_t *text(const char *s)
{
        return s ? json_string(s) : json_null();
}

static const char *get_text(const json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static int64_t get_int(const json_t *o, const char *key)
{
        return json_integer_value(json_object_get(o, key));
}

static int order_row(void *arg, const struct store_order *o)
{
        json_array_append_new(arg, json_pack("{s:s, s:s, s:I, s:b, s:I, s:b, s:I, s:s, s:I, s:I}",
                                             "order_id", o->order_id, "site", o->site, "rev",
                                             (json_int_t)o->rev, "has_version", o->has_version,
                                             "version", (json_int_t)o->version, "has_updated_at",
                                             o->has_updated_at, "updated_at",
                                             (json_int_t)o->updated_at, "json", o->json,
                                             "received_at", (json_int_t)o->received_at,
                                             "first_received_at",
                                             (json_int_t)o->first_received_at));
        return 0;
}

static int history_row(void *arg, const struct store_history *h)
{
        json_array_append_new(arg, json_pack("{s:I, s:b, s:I, s:I, s:s, s:i, s:o}", "rev",
                                             (json_int_t)h->rev, "has_version", h->has_version,
                                             "version", (json_int_t)h->version, "received_at",
                                             (json_int_t)h->received_at, "source", h->source,
                                             "outcome", (int)h->outcome, "json", text(h->json)));
        return 0;
}

static int delivery_row(void *arg, const struct store_delivery *d)
{
        json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, "
                              "s:b, s:I}",
                              "sink", d->sink, "state", (int)d->state, "want_rev",
                              (json_int_t)d->want_rev, "sent_rev", (json_int_t)d->sent_rev,
                              "done_rev", (json_int_t)d->done_rev, "attempts",
                              (json_int_t)d->attempts, "waits", (json_int_t)d->waits, "next_at",
                              (json_int_t)d->next_at, "first_failed_at",
                              (json_int_t)d->first_failed_at, "uncertain_at",
                              (json_int_t)d->uncertain_at, "updated_at", (json_int_t)d->updated_at,
                              "last_error", text(d->last_error), "lease_owner",
                              text(d->lease_owner), "requested", d->requested, "pending_since",
                              (json_int_t)d->pending_since);

        json_array_append_new(arg, o);
        return 0;
}

static int attempt_row(void *arg, const struct store_attempt *a)
{
        json_array_append_new(arg, json_pack("{s:s, s:I, s:I, s:i, s:o}", "sink", a->sink, "rev",
                                             (json_int_t)a->rev, "at", (json_int_t)a->at, "kind",
                                             (int)a->kind, "text", text(a->text)));
        return 0;
}

static int link_row(void *arg, const char *kind, const char *remote)
{
        json_object_set_new(arg, kind, json_string(remote));
        return 0;
}

/* One order's rows other than the order itself, into `o`. */
static int read_rows(const struct side *from, json_t *o)
{
        const char *id = get_text(o, "order_id");
        struct store_filter f = {.order_id = id, .next_at_max = STORE_NEVER};
        json_t *h = json_array(), *d = json_array(), *a = json_array(), *dl = json_array(),
               *l = json_object();
        int r;

        json_object_set_new(o, "history", h);
        json_object_set_new(o, "deliveries", d);
        json_object_set_new(o, "attempts", a);
        json_object_set_new(o, "dead", dl);
        json_object_set_new(o, "links", l);
        if ((r = from->ops->history_list(from->be, id, SIZE_MAX, history_row, h)) < 0 ||
            (r = from->ops->delivery_walk(from->be, &f, delivery_row, d)) < 0 ||
            (r = from->ops->attempt_list(from->be, id, SIZE_MAX, attempt_row, a)) < 0 ||
            (r = from->ops->dead_letter_list(from->be, id, SIZE_MAX, attempt_row, dl)) < 0 ||
            (r = from->ops->link_list(from->be, id, link_row, l)) < 0)
                return r;
        return 0;
}

/* Attempts and dead letters come newest first: written oldest first, as they were made. */
static int write_attempts(const struct side *to, const char *id, json_t *list, bool dead)
{
        for (size_t i = json_array_size(list); i-- > 0;) {
                json_t *e = json_array_get(list, i);
                struct store_attempt a = {
                    .sink = get_text(e, "sink"),
                    .order_id = id,
                    .rev = get_int(e, "rev"),
                    .at = get_int(e, "at"),
                    .kind = (enum store_result_kind)get_int(e, "kind"),
                    .text = get_text(e, "text"),
                };
                int r = dead ? to->ops->dead_letter_add(to->be, &a)
                             : to->ops->attempt_add(to->be, &a);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int write_order(const struct side *to, json_t *o)
{
        const char *id = get_text(o, "order_id"), *kind;
        json_t *e, *list, *remote;
        size_t i;
        int64_t rev;
        int r;

        list = json_object_get(o, "history");
        for (i = json_array_size(list); i-- > 0;) {
                e = json_array_get(list, i);
                struct store_history h = {
                    .rev = get_int(e, "rev"),
                    .order_id = id,
                    .has_version = json_is_true(json_object_get(e, "has_version")),
                    .version = get_int(e, "version"),
                    .received_at = get_int(e, "received_at"),
                    .source = get_text(e, "source"),
                    .outcome = (enum store_put_outcome)get_int(e, "outcome"),
                    .json = get_text(e, "json"),
                };
                if ((r = to->ops->history_add(to->be, &h, &rev)) < 0)
                        return r;
                if (rev != h.rev)
                        return -EPROTO; /* the target did not keep the rev */
        }
        struct store_order ord = {
            .order_id = id,
            .site = get_text(o, "site"),
            .rev = get_int(o, "rev"),
            .has_version = json_is_true(json_object_get(o, "has_version")),
            .version = get_int(o, "version"),
            .has_updated_at = json_is_true(json_object_get(o, "has_updated_at")),
            .updated_at = get_int(o, "updated_at"),
            .json = get_text(o, "json"),
            .received_at = get_int(o, "received_at"),
            .first_received_at = get_int(o, "first_received_at"),
        };
        if ((r = to->ops->order_put(to->be, &ord)) < 0)
                return r;
        json_array_foreach(json_object_get(o, "deliveries"), i, e) {
                struct store_delivery d = {
                    .sink = get_text(e, "sink"),
                    .order_id = id,
                    .state = (enum store_state)get_int(e, "state"),
                    .want_rev = get_int(e, "want_rev"),
                    .sent_rev = get_int(e, "sent_rev"),
                    .done_rev = get_int(e, "done_rev"),
                    .attempts = get_int(e, "attempts"),
                    .waits = get_int(e, "waits"),
                    .next_at = get_int(e, "next_at"),
                    .first_failed_at = get_int(e, "first_failed_at"),
                    .uncertain_at = get_int(e, "uncertain_at"),
                    .updated_at = get_int(e, "updated_at"),
                    .last_error = get_text(e, "last_error"),
                    .lease_owner = get_text(e, "lease_owner"),
                    .requested = json_is_true(json_object_get(e, "requested")),
                    .pending_since = get_int(e, "pending_since"),
                };
                if ((r = to->ops->delivery_put(to->be, &d)) < 0)
                        return r;
        }
        if ((r = write_attempts(to, id, json_object_get(o, "attempts"), false)) < 0 ||
            (r = write_attempts(to, id, json_object_get(o, "dead"), true)) < 0)
                return r;
        json_object_foreach(json_object_get(o, "links"), kind, remote)
                if ((r = to->ops->link_set(to->be, id, kind, json_string_value(remote))) < 0)
                        return r;
        return 0;
}

static int write_page(const struct side *to, json_t *page)
{
        size_t i;
        json_t *o;
        int r;

        if ((r = to->ops->begin(to->be)) < 0)
                return r;
        json_array_foreach(page, i, o)
                if ((r = write_order(to, o)) < 0)
                        break;
        if (r == 0 && (r = to->ops->commit(to->be)) == 0)
                return 0;
        to->ops->rollback(to->be);
        return r;
}

static int meta_row(void *arg, const char *key, const char *value)
{
        json_object_set_new(arg, key, json_string(value));
        return 0;
}

static int copy_meta(const struct side *from, const struct side *to)
{
        json_t *meta = json_object(), *v;
        const char *key;
        int r;

        if ((r = from->ops->meta_list(from->be, meta_row, meta)) == 0 &&
            (r = to->ops->begin(to->be)) == 0) {
                json_object_foreach(meta, key, v)
                        if ((r = to->ops->meta_set(to->be, key, json_string_value(v), false)) < 0)
                                break;
                if (r == 0)
                        r = to->ops->commit(to->be);
                if (r < 0)
                        to->ops->rollback(to->be);
        }
        json_decref(meta);
        return r;
}

static int count_row(void *arg, const struct store_order *o)
{
        (void)arg, (void)o;
        return 0;
}

int store_copy(struct store *src, struct store *dst,
               void (*progress)(void *arg, int64_t done, int64_t total), void *arg)
{
        struct side from, to;
        int64_t total = 0, done = 0, target = 0;
        int r;

        from.ops = store_backend_of(src, &from.be);
        to.ops = store_backend_of(dst, &to.be);
        if ((r = to.ops->order_walk(to.be, INT64_MIN, false, 0, 0, count_row, NULL, &target)) < 0)
                return r;
        if (target > 0)
                return -EEXIST;
        do {
                json_t *page = json_array(), *o;
                size_t i;

                r = from.ops->order_walk(from.be, INT64_MIN, false, (size_t)done, COPY_PAGE,
                                         order_row, page, &total);
                json_array_foreach(page, i, o)
                        if (r >= 0)
                                r = read_rows(&from, o);
                if (r >= 0 && json_array_size(page) > 0)
                        r = write_page(&to, page);
                done += (int64_t)json_array_size(page);
                if (r >= 0 && json_array_size(page) > 0 && progress)
                        progress(arg, done, total);
                if (json_array_size(page) == 0)
                        done = total; /* nothing more: the walk has ended */
                json_decref(page);
        } while (r >= 0 && done < total);
        if (r >= 0)
                r = copy_meta(&from, &to);
        return r < 0 ? r : (int)(done > INT32_MAX ? INT32_MAX : done);
}
