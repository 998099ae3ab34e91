/*
 * The SQLite store. WAL journal with synchronous=FULL: a commit is on disk before the
 * caller hears about it, so "accepted" means durable. Schema changes are numbered
 * migrations recorded in PRAGMA user_version. Every state change is one transaction.
 *
 * Deliveries move through: pending → inflight → done | retrying | waiting | dead, and back
 * to pending whenever a newer snapshot arrives (except that a retrying row keeps its
 * backoff, so new snapshots never make a sink hammer a remote that is down).
 */
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "base/xalloc.h"

struct store {
        sqlite3 *db;
        char **sinks;
        size_t n_sinks;
};

static const char *const migrations[] = {
        /* 1: the first schema */
        "CREATE TABLE orders("
        "  order_id TEXT PRIMARY KEY, site TEXT NOT NULL, rev INTEGER NOT NULL,"
        "  has_version INTEGER NOT NULL, version INTEGER, has_updated_at INTEGER NOT NULL,"
        "  updated_at INTEGER, snapshot TEXT NOT NULL, received_at INTEGER NOT NULL,"
        "  first_received_at INTEGER NOT NULL);"
        "CREATE TABLE snapshots("
        "  rev INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, version INTEGER,"
        "  received_at INTEGER NOT NULL, source TEXT NOT NULL, outcome TEXT NOT NULL,"
        "  snapshot TEXT NOT NULL);"
        "CREATE INDEX snapshots_order ON snapshots(order_id, rev);"
        "CREATE TABLE webhook_ids("
        "  webhook_id TEXT PRIMARY KEY, body_sha256 BLOB NOT NULL, order_id TEXT NOT NULL,"
        "  outcome TEXT NOT NULL, received_at INTEGER NOT NULL);"
        "CREATE TABLE deliveries("
        "  sink TEXT NOT NULL, order_id TEXT NOT NULL, want_rev INTEGER NOT NULL,"
        "  sent_rev INTEGER NOT NULL DEFAULT 0, done_rev INTEGER NOT NULL DEFAULT 0,"
        "  state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
        "  waits INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL,"
        "  first_failed_at INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
        "  updated_at INTEGER NOT NULL, PRIMARY KEY(sink, order_id)) WITHOUT ROWID;"
        "CREATE INDEX deliveries_due ON deliveries(sink, state, next_at);"
        "CREATE TABLE attempts("
        "  id INTEGER PRIMARY KEY, sink TEXT NOT NULL, order_id TEXT NOT NULL,"
        "  rev INTEGER NOT NULL, at INTEGER NOT NULL, outcome TEXT NOT NULL, detail TEXT);"
        "CREATE INDEX attempts_order ON attempts(order_id, id);"
        "CREATE TABLE dead_letters("
        "  id INTEGER PRIMARY KEY, sink TEXT NOT NULL, order_id TEXT NOT NULL,"
        "  rev INTEGER NOT NULL, at INTEGER NOT NULL, reason TEXT NOT NULL);"
        "CREATE TABLE links("
        "  order_id TEXT NOT NULL, kind TEXT NOT NULL, remote_id TEXT NOT NULL,"
        "  PRIMARY KEY(order_id, kind)) WITHOUT ROWID;"
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
        /* 2: when a delivery's last attempt had an unknown outcome */
        "ALTER TABLE deliveries ADD COLUMN uncertain_at INTEGER NOT NULL DEFAULT 0;",
        /* 3: webhook ids are pruned by age */
        "CREATE INDEX webhook_ids_received ON webhook_ids(received_at);",
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

static const char *const outcome_names[] = {"accepted", "stale", "duplicate", "conflict",
                                            "failed"};

const char *store_errmsg(struct store *s)
{
        return sqlite3_errmsg(s->db);
}

static int sql_errno(int rc)
{
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_READONLY:
        case SQLITE_PERM:
                return -EROFS;
        case SQLITE_NOMEM:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

static int exec(struct store *s, const char *sql)
{
        return sql_errno(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

static int prepare(struct store *s, const char *sql, sqlite3_stmt **ret)
{
        return sql_errno(sqlite3_prepare_v2(s->db, sql, -1, ret, NULL));
}

static int64_t query_int(struct store *s, const char *sql)
{
        sqlite3_stmt *st;
        int64_t v = -1;

        if (prepare(s, sql, &st) < 0)
                return -1;
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

static int migrate(struct store *s)
{
        int64_t version = query_int(s, "PRAGMA user_version");
        char sql[64];
        int r;

        if (version < 0)
                return -EIO;
        if (version > N_MIGRATIONS)
                return -EPROTO; /* written by a newer orderbridge */
        for (int64_t v = version; v < N_MIGRATIONS; v++) {
                if ((r = exec(s, "BEGIN IMMEDIATE")) < 0)
                        return r;
                snprintf(sql, sizeof(sql), "PRAGMA user_version=%lld", (long long)v + 1);
                if ((r = exec(s, migrations[v])) < 0 || (r = exec(s, sql)) < 0 ||
                    (r = exec(s, "COMMIT")) < 0) {
                        exec(s, "ROLLBACK");
                        return r;
                }
        }
        return 0;
}

int store_open(const char *path, struct store **ret)
{
        struct store *s = xcalloc(1, sizeof(*s));
        int r;

        r = sql_errno(sqlite3_open_v2(path, &s->db,
                                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                              SQLITE_OPEN_NOMUTEX,
                                      NULL));
        if (r == 0) {
                sqlite3_busy_timeout(s->db, 10000);
                if ((r = exec(s, "PRAGMA journal_mode=WAL")) == 0 &&
                    (r = exec(s, "PRAGMA synchronous=FULL")) == 0 &&
                    (r = exec(s, "PRAGMA foreign_keys=ON")) == 0)
                        r = migrate(s);
        }
        if (r < 0) {
                store_close(s);
                return r ? r : -EIO;
        }
        *ret = s;
        return 0;
}

struct store *store_close(struct store *s)
{
        if (!s)
                return NULL;
        sqlite3_close(s->db);
        for (size_t i = 0; i < s->n_sinks; i++)
                free(s->sinks[i]);
        free(s->sinks);
        free(s);
        return NULL;
}

void store_set_sinks(struct store *s, const char *const *sinks, size_t n)
{
        for (size_t i = 0; i < s->n_sinks; i++)
                free(s->sinks[i]);
        free(s->sinks);
        s->sinks = xcalloc(n, sizeof(*s->sinks));
        for (size_t i = 0; i < n; i++)
                s->sinks[i] = xstrdup(sinks[i]);
        s->n_sinks = n;
}

/* Is `p` newer than the stored row? by version when both have one, else updated_at. */
static bool newer(const struct store_put *p, sqlite3_stmt *row)
{
        bool hv = sqlite3_column_int(row, 1), hu = sqlite3_column_int(row, 3);
        int64_t v = sqlite3_column_int64(row, 2), u = sqlite3_column_int64(row, 4);

        if (p->has_version && hv)
                return p->version > v;
        if (p->has_updated_at && hu)
                return p->updated_at > u;
        /* one carries a version and the other only a time: nothing to compare with */
        return false;
}

static int put_one(struct store *s, struct store_put *p, int64_t now, sqlite3_stmt **st)
{
        enum { Q_WEBHOOK, Q_CURRENT, Q_HISTORY, Q_UPSERT, Q_DELIVERY, Q_WEBHOOK_ADD };
        int rc;

        p->rev = 0;
        if (p->webhook_id) {
                sqlite3_reset(st[Q_WEBHOOK]);
                sqlite3_bind_text(st[Q_WEBHOOK], 1, p->webhook_id, -1, SQLITE_STATIC);
                rc = sqlite3_step(st[Q_WEBHOOK]);
                if (rc == SQLITE_ROW) {
                        const void *h = sqlite3_column_blob(st[Q_WEBHOOK], 0);
                        const char *o = (const char *)sqlite3_column_text(st[Q_WEBHOOK], 1);
                        if (!h || sqlite3_column_bytes(st[Q_WEBHOOK], 0) != 32 ||
                            memcmp(h, p->body_sha256, 32) != 0) {
                                p->outcome = STORE_PUT_CONFLICT;
                                return 0;
                        }
                        p->outcome = STORE_PUT_DUPLICATE;
                        p->first_outcome = o && strcmp(o, "stale") == 0 ? STORE_PUT_STALE
                                                                        : STORE_PUT_ACCEPTED;
                        return 0;
                }
                if (rc != SQLITE_DONE)
                        return sql_errno(rc);
        }

        sqlite3_reset(st[Q_CURRENT]);
        sqlite3_bind_text(st[Q_CURRENT], 1, p->order_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st[Q_CURRENT]);
        if (rc == SQLITE_ROW)
                p->outcome = newer(p, st[Q_CURRENT]) ? STORE_PUT_ACCEPTED : STORE_PUT_STALE;
        else if (rc == SQLITE_DONE)
                p->outcome = STORE_PUT_ACCEPTED;
        else
                return sql_errno(rc);

        /* history: every snapshot, accepted or stale, for `status ORDER_ID` */
        sqlite3_reset(st[Q_HISTORY]);
        sqlite3_bind_text(st[Q_HISTORY], 1, p->order_id, -1, SQLITE_STATIC);
        if (p->has_version)
                sqlite3_bind_int64(st[Q_HISTORY], 2, p->version);
        else
                sqlite3_bind_null(st[Q_HISTORY], 2);
        sqlite3_bind_int64(st[Q_HISTORY], 3, now);
        sqlite3_bind_text(st[Q_HISTORY], 4, p->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[Q_HISTORY], 5, outcome_names[p->outcome], -1, SQLITE_STATIC);
        sqlite3_bind_text(st[Q_HISTORY], 6, p->json, -1, SQLITE_STATIC);
        if ((rc = sqlite3_step(st[Q_HISTORY])) != SQLITE_DONE)
                return sql_errno(rc);

        if (p->outcome == STORE_PUT_ACCEPTED) {
                p->rev = sqlite3_last_insert_rowid(s->db);
                sqlite3_reset(st[Q_UPSERT]);
                sqlite3_bind_text(st[Q_UPSERT], 1, p->order_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st[Q_UPSERT], 2, p->site, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st[Q_UPSERT], 3, p->rev);
                sqlite3_bind_int(st[Q_UPSERT], 4, p->has_version);
                sqlite3_bind_int64(st[Q_UPSERT], 5, p->version);
                sqlite3_bind_int(st[Q_UPSERT], 6, p->has_updated_at);
                sqlite3_bind_int64(st[Q_UPSERT], 7, p->updated_at);
                sqlite3_bind_text(st[Q_UPSERT], 8, p->json, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st[Q_UPSERT], 9, now);
                if ((rc = sqlite3_step(st[Q_UPSERT])) != SQLITE_DONE)
                        return sql_errno(rc);
                for (size_t i = 0; i < s->n_sinks; i++) {
                        sqlite3_reset(st[Q_DELIVERY]);
                        sqlite3_bind_text(st[Q_DELIVERY], 1, s->sinks[i], -1, SQLITE_STATIC);
                        sqlite3_bind_text(st[Q_DELIVERY], 2, p->order_id, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(st[Q_DELIVERY], 3, p->rev);
                        sqlite3_bind_int64(st[Q_DELIVERY], 4, now);
                        if ((rc = sqlite3_step(st[Q_DELIVERY])) != SQLITE_DONE)
                                return sql_errno(rc);
                }
        }
        if (p->webhook_id) {
                sqlite3_reset(st[Q_WEBHOOK_ADD]);
                sqlite3_bind_text(st[Q_WEBHOOK_ADD], 1, p->webhook_id, -1, SQLITE_STATIC);
                sqlite3_bind_blob(st[Q_WEBHOOK_ADD], 2, p->body_sha256, 32, SQLITE_STATIC);
                sqlite3_bind_text(st[Q_WEBHOOK_ADD], 3, p->order_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st[Q_WEBHOOK_ADD], 4, outcome_names[p->outcome], -1,
                                  SQLITE_STATIC);
                sqlite3_bind_int64(st[Q_WEBHOOK_ADD], 5, now);
                if ((rc = sqlite3_step(st[Q_WEBHOOK_ADD])) != SQLITE_DONE)
                        return sql_errno(rc);
        }
        return 0;
}

int store_put(struct store *s, struct store_put *puts, size_t n, int64_t now_ms)
{
        static const char *const sql[] = {
                "SELECT body_sha256, outcome FROM webhook_ids WHERE webhook_id=?1",
                "SELECT rev, has_version, version, has_updated_at, updated_at FROM orders "
                "WHERE order_id=?1",
                "INSERT INTO snapshots(order_id, version, received_at, source, outcome, "
                "snapshot) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                "INSERT INTO orders(order_id, site, rev, has_version, version, has_updated_at,"
                " updated_at, snapshot, received_at, first_received_at) "
                "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT(order_id) DO "
                "UPDATE SET site=excluded.site, rev=excluded.rev, "
                "has_version=excluded.has_version, version=excluded.version, "
                "has_updated_at=excluded.has_updated_at, updated_at=excluded.updated_at, "
                "snapshot=excluded.snapshot, received_at=excluded.received_at",
                /* A new revision wakes the delivery now, unless it is backing off from a
                 * failing remote (retrying keeps its next_at) or is in flight (it will be
                 * picked up again when the in-flight attempt is recorded). */
                "INSERT INTO deliveries(sink, order_id, want_rev, state, next_at, updated_at) "
                "VALUES(?1, ?2, ?3, 'pending', ?4, ?4) ON CONFLICT(sink, order_id) DO UPDATE "
                "SET want_rev=excluded.want_rev, updated_at=excluded.updated_at, "
                "state=CASE state WHEN 'inflight' THEN 'inflight' WHEN 'retrying' THEN "
                "'retrying' ELSE 'pending' END, "
                "next_at=CASE state WHEN 'retrying' THEN next_at ELSE excluded.next_at END, "
                "attempts=CASE state WHEN 'dead' THEN 0 ELSE attempts END, "
                "first_failed_at=CASE state WHEN 'dead' THEN 0 ELSE first_failed_at END",
                "INSERT INTO webhook_ids(webhook_id, body_sha256, order_id, outcome, "
                "received_at) VALUES(?1, ?2, ?3, ?4, ?5)",
        };
        sqlite3_stmt *st[6] = {0};
        int r;

        r = exec(s, "BEGIN IMMEDIATE");
        for (size_t i = 0; r == 0 && i < 6; i++)
                r = prepare(s, sql[i], &st[i]);
        for (size_t i = 0; r == 0 && i < n; i++)
                r = put_one(s, &puts[i], now_ms, st);
        for (size_t i = 0; i < 6; i++)
                sqlite3_finalize(st[i]);
        if (r == 0)
                r = exec(s, "COMMIT");
        if (r < 0) {
                exec(s, "ROLLBACK");
                for (size_t i = 0; i < n; i++) {
                        puts[i].outcome = STORE_PUT_FAILED;
                        puts[i].rev = 0;
                }
        }
        return r;
}

int store_prune_webhook_ids(struct store *s, int64_t before_ms)
{
        char sql[128];
        int r;

        snprintf(sql, sizeof(sql), "DELETE FROM webhook_ids WHERE received_at < %lld",
                 (long long)before_ms);
        r = exec(s, sql);
        return r < 0 ? r : sqlite3_changes(s->db);
}

int store_take_due(struct store *s, const char *sink, int64_t now_ms, size_t limit,
                   struct store_work **ret, size_t *ret_n)
{
        sqlite3_stmt *sel = NULL, *upd = NULL;
        struct store_work *w = NULL;
        size_t n = 0;
        int r, rc;

        *ret = NULL;
        *ret_n = 0;
        r = exec(s, "BEGIN IMMEDIATE");
        if (r == 0)
                r = prepare(s,
                            "SELECT d.order_id, o.rev, o.snapshot, d.attempts, d.waits, "
                            "d.first_failed_at, d.uncertain_at FROM deliveries d "
                            "JOIN orders o USING(order_id) "
                            "WHERE d.sink=?1 AND d.state IN ('pending','retrying','waiting') "
                            "AND d.next_at<=?2 ORDER BY d.next_at, o.rev LIMIT ?3",
                            &sel);
        if (r == 0)
                r = prepare(s,
                            "UPDATE deliveries SET state='inflight', sent_rev=?3, updated_at=?4 "
                            "WHERE sink=?1 AND order_id=?2",
                            &upd);
        if (r == 0) {
                sqlite3_bind_text(sel, 1, sink, -1, SQLITE_STATIC);
                sqlite3_bind_int64(sel, 2, now_ms);
                sqlite3_bind_int64(sel, 3, (sqlite3_int64)limit);
                w = xcalloc(limit, sizeof(*w));
                while ((rc = sqlite3_step(sel)) == SQLITE_ROW && n < limit) {
                        w[n].order_id = xstrdup((const char *)sqlite3_column_text(sel, 0));
                        w[n].rev = sqlite3_column_int64(sel, 1);
                        w[n].json = xstrdup((const char *)sqlite3_column_text(sel, 2));
                        w[n].attempts = sqlite3_column_int64(sel, 3);
                        w[n].waits = sqlite3_column_int64(sel, 4);
                        w[n].first_failed_at = sqlite3_column_int64(sel, 5);
                        w[n].uncertain_at = sqlite3_column_int64(sel, 6);
                        n++;
                }
                if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                        r = sql_errno(rc);
        }
        for (size_t i = 0; r == 0 && i < n; i++) {
                sqlite3_reset(upd);
                sqlite3_bind_text(upd, 1, sink, -1, SQLITE_STATIC);
                sqlite3_bind_text(upd, 2, w[i].order_id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(upd, 3, w[i].rev);
                sqlite3_bind_int64(upd, 4, now_ms);
                if ((rc = sqlite3_step(upd)) != SQLITE_DONE)
                        r = sql_errno(rc);
        }
        sqlite3_finalize(sel);
        sqlite3_finalize(upd);
        if (r == 0)
                r = exec(s, "COMMIT");
        if (r < 0) {
                exec(s, "ROLLBACK");
                store_work_free(w, n);
                return r;
        }
        if (n == 0) {
                free(w);
                w = NULL;
        }
        *ret = w;
        *ret_n = n;
        return 0;
}

void store_work_free(struct store_work *w, size_t n)
{
        if (!w)
                return;
        for (size_t i = 0; i < n; i++) {
                free(w[i].order_id);
                free(w[i].json);
        }
        free(w);
}

static int apply_writes(struct store *s, const struct store_writes *w)
{
        static const char *const sql[] = {
                [STORE_WRITE_LINK] = "INSERT INTO links(order_id, kind, remote_id) "
                                     "VALUES(?1, ?2, ?3) ON CONFLICT(order_id, kind) DO "
                                     "UPDATE SET remote_id=excluded.remote_id",
                [STORE_WRITE_META] = "INSERT INTO meta(key, value) VALUES(?2, ?3) ON "
                                     "CONFLICT(key) DO UPDATE SET value=excluded.value",
                [STORE_WRITE_META_IF_ABSENT] = "INSERT INTO meta(key, value) VALUES(?2, ?3) "
                                               "ON CONFLICT(key) DO NOTHING",
        };
        sqlite3_stmt *st[3] = {0};
        int r = 0, rc;

        for (size_t k = 0; r == 0 && k < 3; k++)
                r = prepare(s, sql[k], &st[k]);
        for (size_t i = 0; r == 0 && i < w->n; i++) {
                const struct store_write *x = &w->items[i];
                sqlite3_stmt *q = st[x->kind];
                sqlite3_reset(q);
                sqlite3_clear_bindings(q);
                if (x->kind == STORE_WRITE_LINK)
                        sqlite3_bind_text(q, 1, x->order_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, x->key, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 3, x->value, -1, SQLITE_STATIC);
                if ((rc = sqlite3_step(q)) != SQLITE_DONE)
                        r = sql_errno(rc);
        }
        for (size_t k = 0; k < 3; k++)
                sqlite3_finalize(st[k]);
        return r;
}

int store_record(struct store *s, const char *sink, const struct store_result *results,
                 size_t n, const struct store_writes *writes, int64_t now_ms,
                 int64_t lifetime_ms)
{
        static const char *const kind_names[] = {"ok", "tempfail", "permfail", "waiting"};
        sqlite3_stmt *upd = NULL, *att = NULL, *dead = NULL, *cur = NULL;
        int r, rc;

        r = exec(s, "BEGIN IMMEDIATE");
        if (r == 0)
                r = prepare(s, "SELECT first_failed_at FROM deliveries WHERE sink=?1 AND "
                               "order_id=?2", &cur);
        if (r == 0)
                /* ?3 state after this result, ?4 done_rev, ?5 next_at, ?6 error,
                 * ?7 attempts delta, ?8 waits delta, ?9 first_failed_at, ?10 now,
                 * ?11 the rev this result is about: a newer snapshot that arrived while
                 * it was in flight sends the row back to pending, even after a dead
                 * letter, because the newer snapshot may well be deliverable */
                r = prepare(s,
                            "UPDATE deliveries SET done_rev=max(done_rev, ?4), "
                            "state=CASE WHEN ?3 IN ('done','dead') AND want_rev>?11 THEN "
                            "'pending' ELSE ?3 END, "
                            "next_at=CASE WHEN ?3 IN ('done','dead') AND want_rev>?11 THEN ?10 "
                            "ELSE ?5 END, last_error=?6, "
                            "attempts=CASE WHEN ?7<0 THEN 0 ELSE attempts+?7 END, "
                            "waits=CASE WHEN ?8<0 THEN 0 ELSE waits+?8 END, "
                            "first_failed_at=?9, updated_at=?10, "
                            "uncertain_at=CASE WHEN ?12 THEN ?10 ELSE uncertain_at END "
                            "WHERE sink=?1 AND order_id=?2",
                            &upd);
        if (r == 0)
                r = prepare(s,
                            "INSERT INTO attempts(sink, order_id, rev, at, outcome, detail) "
                            "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                            &att);
        if (r == 0)
                r = prepare(s,
                            "INSERT INTO dead_letters(sink, order_id, rev, at, reason) "
                            "VALUES(?1, ?2, ?3, ?4, ?5)",
                            &dead);
        for (size_t i = 0; r == 0 && i < n; i++) {
                const struct store_result *res = &results[i];
                const char *state = "done", *detail = res->detail;
                int64_t done_rev = 0, next_at = now_ms, first_failed = 0;
                int attempts_delta = -1, waits_delta = -1;
                enum store_result_kind kind = res->kind;

                sqlite3_reset(cur);
                sqlite3_bind_text(cur, 1, sink, -1, SQLITE_STATIC);
                sqlite3_bind_text(cur, 2, res->order_id, -1, SQLITE_STATIC);
                if (sqlite3_step(cur) == SQLITE_ROW)
                        first_failed = sqlite3_column_int64(cur, 0);

                switch (kind) {
                case STORE_OK:
                        done_rev = res->rev;
                        first_failed = 0;
                        detail = NULL;
                        break;
                case STORE_WAITING:
                        state = "waiting";
                        next_at = res->next_at;
                        waits_delta = 1;
                        attempts_delta = -1;
                        first_failed = 0;
                        break;
                case STORE_TEMPFAIL:
                        if (!first_failed)
                                first_failed = now_ms;
                        if (now_ms - first_failed >= lifetime_ms) {
                                kind = STORE_PERMFAIL;
                                detail = "gave up: still failing after the delivery lifetime";
                                state = "dead";
                                attempts_delta = 1;
                                waits_delta = 0;
                                break;
                        }
                        state = "retrying";
                        next_at = res->next_at;
                        attempts_delta = 1;
                        waits_delta = 0;
                        break;
                case STORE_PERMFAIL:
                        state = "dead";
                        attempts_delta = 1;
                        waits_delta = 0;
                        break;
                }
                sqlite3_reset(upd);
                sqlite3_bind_text(upd, 1, sink, -1, SQLITE_STATIC);
                sqlite3_bind_text(upd, 2, res->order_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(upd, 3, state, -1, SQLITE_STATIC);
                sqlite3_bind_int64(upd, 4, done_rev);
                sqlite3_bind_int64(upd, 5, next_at);
                if (kind == STORE_OK)
                        sqlite3_bind_null(upd, 6);
                else
                        sqlite3_bind_text(upd, 6, detail ? detail : "", -1, SQLITE_STATIC);
                sqlite3_bind_int(upd, 7, attempts_delta);
                sqlite3_bind_int(upd, 8, waits_delta);
                sqlite3_bind_int64(upd, 9, first_failed);
                sqlite3_bind_int64(upd, 10, now_ms);
                sqlite3_bind_int64(upd, 11, res->rev);
                sqlite3_bind_int(upd, 12, res->uncertain);
                if ((rc = sqlite3_step(upd)) != SQLITE_DONE) {
                        r = sql_errno(rc);
                        break;
                }
                sqlite3_reset(att);
                sqlite3_bind_text(att, 1, sink, -1, SQLITE_STATIC);
                sqlite3_bind_text(att, 2, res->order_id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(att, 3, res->rev);
                sqlite3_bind_int64(att, 4, now_ms);
                sqlite3_bind_text(att, 5, kind_names[kind], -1, SQLITE_STATIC);
                if (detail)
                        sqlite3_bind_text(att, 6, detail, -1, SQLITE_STATIC);
                else
                        sqlite3_bind_null(att, 6);
                if ((rc = sqlite3_step(att)) != SQLITE_DONE) {
                        r = sql_errno(rc);
                        break;
                }
                if (kind == STORE_PERMFAIL) {
                        sqlite3_reset(dead);
                        sqlite3_bind_text(dead, 1, sink, -1, SQLITE_STATIC);
                        sqlite3_bind_text(dead, 2, res->order_id, -1, SQLITE_STATIC);
                        sqlite3_bind_int64(dead, 3, res->rev);
                        sqlite3_bind_int64(dead, 4, now_ms);
                        sqlite3_bind_text(dead, 5, detail ? detail : "", -1, SQLITE_STATIC);
                        if ((rc = sqlite3_step(dead)) != SQLITE_DONE)
                                r = sql_errno(rc);
                }
        }
        sqlite3_finalize(cur);
        sqlite3_finalize(upd);
        sqlite3_finalize(att);
        sqlite3_finalize(dead);
        if (r == 0 && writes)
                r = apply_writes(s, writes);
        if (r == 0)
                r = exec(s, "COMMIT");
        if (r < 0)
                exec(s, "ROLLBACK");
        return r;
}

int store_requeue_inflight(struct store *s, int64_t now_ms)
{
        char sql[200];
        int r;

        snprintf(sql, sizeof(sql),
                 "UPDATE deliveries SET state='pending', next_at=%lld, uncertain_at=%lld "
                 "WHERE state='inflight'",
                 (long long)now_ms, (long long)now_ms);
        r = exec(s, sql);
        return r < 0 ? r : sqlite3_changes(s->db);
}

int64_t store_next_due(struct store *s, const char *sink)
{
        sqlite3_stmt *st;
        int64_t v = INT64_MAX;

        if (prepare(s,
                    "SELECT min(next_at) FROM deliveries WHERE sink=?1 AND state IN "
                    "('pending','retrying','waiting')",
                    &st) < 0)
                return INT64_MAX;
        sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

int store_counts(struct store *s, const char *sink, struct store_counts *ret)
{
        sqlite3_stmt *st;
        struct store_counts c = {0};
        int r, rc;

        r = prepare(s, "SELECT state, count(*) FROM deliveries WHERE sink=?1 GROUP BY state",
                    &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *state = (const char *)sqlite3_column_text(st, 0);
                int64_t k = sqlite3_column_int64(st, 1);
                if (!strcmp(state, "pending"))
                        c.pending = k;
                else if (!strcmp(state, "inflight"))
                        c.inflight = k;
                else if (!strcmp(state, "retrying"))
                        c.retrying = k;
                else if (!strcmp(state, "waiting"))
                        c.waiting = k;
                else if (!strcmp(state, "done"))
                        c.done = k;
                else if (!strcmp(state, "dead"))
                        c.dead = k;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return sql_errno(rc);
        *ret = c;
        return 0;
}

int store_retry(struct store *s, const char *sink, const char *order_id, int64_t now_ms)
{
        sqlite3_stmt *st;
        int r, rc;

        r = prepare(s,
                    "UPDATE deliveries SET state='pending', next_at=?3, attempts=0, "
                    "first_failed_at=0 WHERE state IN ('dead','retrying','waiting') AND "
                    "(?1 IS NULL OR sink=?1) AND (?2 IS NULL OR order_id=?2)",
                    &st);
        if (r < 0)
                return r;
        if (sink)
                sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
        if (order_id)
                sqlite3_bind_text(st, 2, order_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now_ms);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? sqlite3_changes(s->db) : sql_errno(rc);
}

/* Runs `sql` with ?1 = order_id and returns the rows as an array of objects. */
static json_t *rows_json(struct store *s, const char *sql, const char *order_id)
{
        sqlite3_stmt *st;
        json_t *arr = json_array();

        if (prepare(s, sql, &st) < 0)
                return arr;
        sqlite3_bind_text(st, 1, order_id, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
                json_t *row = json_object();
                for (int i = 0; i < sqlite3_column_count(st); i++) {
                        const char *name = sqlite3_column_name(st, i);
                        json_t *v;
                        switch (sqlite3_column_type(st, i)) {
                        case SQLITE_INTEGER:
                                v = json_integer(sqlite3_column_int64(st, i));
                                break;
                        case SQLITE_NULL:
                                v = json_null();
                                break;
                        default:
                                v = json_string((const char *)sqlite3_column_text(st, i));
                                if (!v)
                                        v = json_null();
                        }
                        json_object_set_new(row, name, v);
                }
                json_array_append_new(arr, row);
        }
        sqlite3_finalize(st);
        return arr;
}

int store_order_report(struct store *s, const char *order_id, char **ret_json)
{
        json_t *orders, *doc, *snap;
        json_error_t jerr;

        orders = rows_json(s, "SELECT order_id, rev, received_at, first_received_at, snapshot "
                              "FROM orders WHERE order_id=?1",
                           order_id);
        if (json_array_size(orders) == 0) {
                json_decref(orders);
                return -ENOENT;
        }
        doc = json_object();
        snap = json_loads(json_string_value(json_object_get(json_array_get(orders, 0),
                                                            "snapshot")),
                          0, &jerr);
        json_object_set_new(doc, "order_id", json_string(order_id));
        json_object_set(doc, "rev", json_object_get(json_array_get(orders, 0), "rev"));
        json_object_set(doc, "received_at",
                        json_object_get(json_array_get(orders, 0), "received_at"));
        json_object_set_new(doc, "snapshot", snap ? snap : json_null());
        json_decref(orders);
        json_object_set_new(doc, "deliveries",
                            rows_json(s, "SELECT sink, state, want_rev, done_rev, attempts, "
                                         "waits, next_at, first_failed_at, last_error, "
                                         "updated_at FROM deliveries WHERE order_id=?1 "
                                         "ORDER BY sink",
                                      order_id));
        json_object_set_new(doc, "history",
                            rows_json(s, "SELECT rev, version, received_at, source, outcome "
                                         "FROM snapshots WHERE order_id=?1 ORDER BY rev DESC "
                                         "LIMIT 50",
                                      order_id));
        json_object_set_new(doc, "attempts",
                            rows_json(s, "SELECT sink, rev, at, outcome, detail FROM attempts "
                                         "WHERE order_id=?1 ORDER BY id DESC LIMIT 50",
                                      order_id));
        json_object_set_new(doc, "dead_letters",
                            rows_json(s, "SELECT sink, rev, at, reason FROM dead_letters "
                                         "WHERE order_id=?1 ORDER BY id DESC LIMIT 20",
                                      order_id));
        json_object_set_new(doc, "links",
                            rows_json(s, "SELECT kind, remote_id FROM links WHERE order_id=?1 "
                                         "ORDER BY kind",
                                      order_id));
        *ret_json = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(doc);
        return *ret_json ? 0 : -ENOMEM;
}

static int kv_get(struct store *s, const char *sql, const char *a, const char *b, char **ret)
{
        sqlite3_stmt *st;
        int r, rc;

        *ret = NULL;
        if ((r = prepare(s, sql, &st)) < 0)
                return r;
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
        if (b)
                sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *ret = xstrdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        return rc == SQLITE_ROW ? 0 : sql_errno(rc);
}

static int kv_set(struct store *s, const char *sql, const char *a, const char *b, const char *c)
{
        sqlite3_stmt *st;
        int r, rc;

        if ((r = prepare(s, sql, &st)) < 0)
                return r;
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
        if (c)
                sqlite3_bind_text(st, 3, c, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return sql_errno(rc);
}

int store_meta_get(struct store *s, const char *key, char **ret_value)
{
        return kv_get(s, "SELECT value FROM meta WHERE key=?1", key, NULL, ret_value);
}

int store_meta_set(struct store *s, const char *key, const char *value)
{
        return kv_set(s, "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO "
                         "UPDATE SET value=excluded.value",
                      key, value, NULL);
}

int store_link_get(struct store *s, const char *order_id, const char *kind, char **ret_remote)
{
        return kv_get(s, "SELECT remote_id FROM links WHERE order_id=?1 AND kind=?2", order_id,
                      kind, ret_remote);
}

int store_link_set(struct store *s, const char *order_id, const char *kind, const char *remote)
{
        return kv_set(s, "INSERT INTO links(order_id, kind, remote_id) VALUES(?1, ?2, ?3) "
                         "ON CONFLICT(order_id, kind) DO UPDATE SET remote_id=excluded.remote_id",
                      order_id, kind, remote);
}

static void writes_add(struct store_writes *w, enum store_write_kind kind, const char *order_id,
                       const char *key, const char *value)
{
        if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 16;
                w->items = xrealloc(w->items, w->cap * sizeof(*w->items));
        }
        w->items[w->n++] = (struct store_write){kind, order_id ? xstrdup(order_id) : NULL,
                                                xstrdup(key), xstrdup(value)};
}

void store_writes_link(struct store_writes *w, const char *order_id, const char *kind,
                       const char *remote)
{
        writes_add(w, STORE_WRITE_LINK, order_id, kind, remote);
}

void store_writes_meta(struct store_writes *w, const char *key, const char *value,
                       bool only_if_absent)
{
        writes_add(w, only_if_absent ? STORE_WRITE_META_IF_ABSENT : STORE_WRITE_META, NULL, key,
                   value);
}

const char *store_writes_find_meta(const struct store_writes *w, const char *key)
{
        const char *v = NULL;

        /* in order, as they will be applied: a set replaces, an if-absent only fills */
        for (size_t i = 0; i < w->n; i++) {
                const struct store_write *x = &w->items[i];
                if (x->kind == STORE_WRITE_LINK || strcmp(x->key, key) != 0)
                        continue;
                if (x->kind == STORE_WRITE_META || !v)
                        v = x->value;
        }
        return v;
}

const char *store_writes_find_link(const struct store_writes *w, const char *order_id,
                                   const char *kind)
{
        const char *v = NULL;

        for (size_t i = 0; i < w->n; i++) {
                const struct store_write *x = &w->items[i];
                if (x->kind == STORE_WRITE_LINK && strcmp(x->order_id, order_id) == 0 &&
                    strcmp(x->key, kind) == 0)
                        v = x->value;
        }
        return v;
}

void store_writes_clear(struct store_writes *w)
{
        for (size_t i = 0; i < w->n; i++) {
                free(w->items[i].order_id);
                free(w->items[i].key);
                free(w->items[i].value);
        }
        free(w->items);
        memset(w, 0, sizeof(*w));
}
