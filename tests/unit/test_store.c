/*
 * The SQLite store: the store suite (store_suite.c) against SQLite files, then what only
 * this backend has — its schema and journal, its migrations from earlier versions (a
 * database written by the previous orderbridge must open and keep working), and its lock
 * file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <jansson.h>
#include <sqlite3.h>

#include "sqlite_peek.h"
#include "store_suite.h"

#define LATEST 7 /* the schema version this orderbridge writes */

static void sqlite_location(const char *dir, char *buf, size_t size)
{
        snprintf(buf, size, "%s/orderbridge.db", dir);
}

static void sqlite_remove(const char *location)
{
        static const char *const suffixes[] = {"", "-wal", "-shm", "-journal", ".lock"};
        char p[256];

        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                snprintf(p, sizeof(p), "%s%s", location, suffixes[i]);
                unlink(p);
        }
}

static const struct store_suite_backend sqlite_backend = {"sqlite", sqlite_location, sqlite_remove};

/* ---- opening ---- */

static void opening_a_new_file_creates_the_schema_at_the_latest_user_version(void **state)
{
        struct store_fixture *f = *state;
        sqlite3 *db;
        sqlite3_stmt *st;

        assert_int_equal(sqlite3_open(f->location, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), LATEST); /* 7: deliveries_order */
        sqlite3_finalize(st);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT uncertain_at, lease_owner FROM deliveries",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_finalize(st);
        assert_int_equal(
            sqlite3_prepare_v2(db,
                               "SELECT count(*) FROM sqlite_master WHERE type='table' "
                               "AND name IN ('orders','snapshots','webhook_ids',"
                               "'deliveries','attempts','dead_letters','links','meta')",
                               -1, &st, NULL),
            SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 8);
        sqlite3_finalize(st);
        sqlite3_close(db);
}

static void opening_uses_the_wal_journal(void **state)
{
        struct store_fixture *f = *state;
        sqlite3 *db;
        sqlite3_stmt *st;

        assert_int_equal(sqlite3_open(f->location, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        sqlite3_close(db);
}

/* synchronous is a setting of each connection, not of the file, so it can only be read on
 * the store's own connection. No accessor gives that away: every sqlite3_open_v2 of this
 * process goes through the one below, which notes the handle and calls SQLite's. */
static sqlite3 *opened[8]; /* the last 8, by n_opened % 8 */
static size_t n_opened;

int sqlite3_open_v2(const char *filename, sqlite3 **ppDb, int flags, const char *zVfs)
{
        static int (*real)(const char *, sqlite3 **, int, const char *);
        int r;

        if (!real)
                *(void **)&real = dlsym(RTLD_NEXT, "sqlite3_open_v2");
        r = real(filename, ppDb, flags, zVfs);
        if (r == SQLITE_OK)
                opened[n_opened++ % 8] = *ppDb;
        return r;
}

static int pragma_int(sqlite3 *db, const char *pragma)
{
        sqlite3_stmt *st;
        int v;

        assert_int_equal(sqlite3_prepare_v2(db, pragma, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return v;
}

/* "Accepted means durable": a commit is on disk before store_put returns. In WAL mode
 * synchronous=NORMAL syncs only at checkpoints, so a power cut after a 202 could lose the
 * order; FULL (2) syncs the WAL on every commit. Every connection the store opens — the
 * intake's, each dispatcher's, the keeper's — is opened here, by store_open. */
static void every_connection_the_store_opens_syncs_every_commit(void **state)
{
        struct store_fixture *f = *state;
        struct store *a, *b;
        size_t first = n_opened;

        assert_int_equal(store_open(f->location, &a), 0);
        assert_int_equal(store_open(f->location, &b), 0);
        assert_int_equal(n_opened - first, 2);
        for (size_t i = first; i < n_opened; i++) {
                assert_int_equal(pragma_int(opened[i % 8], "PRAGMA synchronous"), 2 /* FULL */);
                assert_int_equal(pragma_int(opened[i % 8], "PRAGMA foreign_keys"), 1);
        }
        store_close(a);
        store_close(b);
}

static void opening_a_file_from_a_newer_orderbridge_is_refused(void **state)
{
        struct store_fixture *f = *state;
        struct store *other = (struct store *)0x1;
        char path[160];
        sqlite3 *db;

        snprintf(path, sizeof(path), "%s/newer.db", f->dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(db, "PRAGMA user_version=8" /* LATEST + 1 */, NULL, NULL, NULL),
            SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_open(path, &other), -EPROTO);
        assert_true(other == (struct store *)0x1);
        unlink(path);
}

static void opening_in_a_missing_directory_fails_with_an_errno(void **state)
{
        struct store *other = (struct store *)0x1;

        assert_true(store_open("/nonexistent/orderbridge/store.db", &other) < 0);
        assert_true(other == (struct store *)0x1);
}

/* ---- migrations ---- */

/* The schema of the previous orderbridge (user_version 3), as it created it. */
static const char schema_v3[] =
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
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "ALTER TABLE deliveries ADD COLUMN uncertain_at INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX webhook_ids_received ON webhook_ids(received_at);"
    "PRAGMA user_version=3;";

/* What the previous orderbridge left: one order in each delivery state (T0 = 1773385200000),
 * "i" in flight when it stopped, "r" backing off until T0+5000. */
static const char rows_v3[] =
    "INSERT INTO orders VALUES"
    " ('p','s',1,1,1,0,NULL,'{\"order\":{\"id\":\"p\"}}',1773385100000,1773385100000),"
    " ('i','s',2,1,1,0,NULL,'{\"order\":{\"id\":\"i\"}}',1773385100000,1773385100000),"
    " ('r','s',3,1,1,0,NULL,'{\"order\":{\"id\":\"r\"}}',1773385100000,1773385100000),"
    " ('d','s',4,1,1,0,NULL,'{\"order\":{\"id\":\"d\"}}',1773385100000,1773385100000),"
    " ('x','s',5,1,1,0,NULL,'{\"order\":{\"id\":\"x\"}}',1773385100000,1773385100000);"
    "INSERT INTO snapshots(order_id, version, received_at, source, outcome, snapshot) VALUES"
    " ('p',1,1773385100000,'ingest','accepted','{}'),"
    " ('i',1,1773385100000,'ingest','accepted','{}'),"
    " ('r',1,1773385100000,'ingest','accepted','{}'),"
    " ('d',1,1773385100000,'ingest','accepted','{}'),"
    " ('x',1,1773385100000,'ingest','accepted','{}');"
    "INSERT INTO deliveries(sink, order_id, want_rev, sent_rev, done_rev, state, attempts,"
    " waits, next_at, first_failed_at, last_error, updated_at, uncertain_at) VALUES"
    " ('roistat','p',1,0,0,'pending',0,0,1773385200000,0,NULL,1773385100000,0),"
    " ('roistat','i',2,2,0,'inflight',0,0,1773385100000,0,NULL,1773385100000,0),"
    " ('roistat','r',3,3,0,'retrying',2,0,1773385205000,1773385199000,'HTTP 503',"
    "  1773385199000,0),"
    " ('roistat','d',4,4,4,'done',0,0,1773385100000,0,NULL,1773385100000,0),"
    " ('roistat','x',5,5,0,'dead',1,0,1773385100000,1773385100000,'HTTP 400',"
    "  1773385100000,0);"
    "INSERT INTO links VALUES ('d','b24.deal','9001');"
    "INSERT INTO meta VALUES ('roistat.statuses_sha256','abc');";

static void a_store_written_by_the_previous_version_opens_and_keeps_working(void **state)
{
        static const char *const sinks[] = {SINK};
        struct store_fixture *f = *state;
        struct store *s = NULL;
        struct store_work *w;
        struct store_counts c;
        struct store_put p;
        char path[160], *v = NULL;
        json_t *doc;
        sqlite3 *db;
        long pid;

        snprintf(path, sizeof(path), "%s/previous.db", f->dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, schema_v3, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, rows_v3, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(sqlite_peek_int(path, "PRAGMA user_version"), 3);

        assert_int_equal(store_open(path, &s), 0);
        store_set_sinks(s, sinks, 1);
        assert_int_equal(sqlite_peek_int(path, "PRAGMA user_version"), LATEST);
        c = store_fixture_counts(s);
        assert_int_equal(c.pending + c.inflight + c.retrying + c.done + c.dead, 5);
        assert_int_equal(c.inflight, 1);
        /* due now: the pending one; not the retrying one before its time, nor done, dead */
        w = store_fixture_take(s, T0, 10, 1);
        assert_string_equal(w[0].order_id, "p");
        assert_int_equal(w[0].rev, 1);
        store_fixture_record(s, "p", 1, STORE_OK, 0, NULL, T0 + 1);
        /* left in flight by a run without leases: its lease has ended */
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 2), 1);
        w = store_fixture_take(s, T0 + 2, 10, 1);
        assert_string_equal(w[0].order_id, "i");
        assert_int_equal(w[0].uncertain_at, T0 + 2);
        /* the backoff is kept, with its attempts and first failure */
        store_fixture_take(s, T0 + 4999, 10, 0);
        w = store_fixture_take(s, T0 + 5000, 10, 1);
        assert_string_equal(w[0].order_id, "r");
        assert_int_equal(w[0].attempts, 2);
        assert_int_equal(w[0].first_failed_at, T0 - 1000);
        /* a finished delivery is never due, and a dead one comes back with a newer snapshot */
        doc = store_fixture_report(s, "d");
        assert_string_equal(store_fixture_state(doc), "done");
        assert_true(json_is_null(store_fixture_delivery(doc, "next_at")));
        store_fixture_take(s, T0 + 3600000, 10, 0);
        memset(&p, 0, sizeof(p));
        p = (struct store_put){.order_id = "x",
                               .site = "s",
                               .json = "{\"order\":{\"id\":\"x\"}}",
                               .has_version = true,
                               .version = 2,
                               .source = "ingest"};
        assert_int_equal(store_put(s, &p, 1, T0 + 10), 0);
        assert_int_equal(p.outcome, STORE_PUT_ACCEPTED);
        assert_true(p.rev > 5);
        w = store_fixture_take(s, T0 + 10, 10, 1);
        assert_string_equal(w[0].order_id, "x");
        assert_int_equal(w[0].rev, p.rev);
        /* links, metadata, the lock and recovery */
        assert_int_equal(store_link_get(s, "d", "b24.deal", &v), 0);
        assert_string_equal(v, "9001");
        free(v);
        assert_int_equal(store_meta_get(s, "roistat.statuses_sha256", &v), 0);
        assert_string_equal(v, "abc");
        free(v);
        assert_int_equal(store_lock(s, &pid), 0);
        assert_int_equal(store_recover(s, SINK, T0 + 20), 3);
        store_close(s);
        sqlite_remove(path);
}

/* ---- retention: freeing pages ---- */

static void a_new_file_gives_pruned_pages_back_when_compacted(void **state)
{
        struct store_fixture *f = *state;
        struct store_prune p = {0};
        char json[2200], id[32];
        int64_t before = 0, after = 0, freed = 0;
        int r;

        assert_int_equal(sqlite_peek_int(f->location, "PRAGMA auto_vacuum"), 2); /* INCREMENTAL */
        store_set_sinks(f->s, NULL, 0);
        memset(json, 'x', sizeof(json) - 1);
        json[sizeof(json) - 1] = '\0';
        for (int v = 1; v <= 2; v++)
                for (int i = 0; i < 200; i++) {
                        struct store_put put = {.site = "s", .json = json, .has_version = true,
                                                .version = v, .source = "import"};
                        snprintf(id, sizeof(id), "o%d", i);
                        put.order_id = id;
                        assert_int_equal(store_put(f->s, &put, 1, T0 + v), 0);
                        assert_int_equal(put.outcome, STORE_PUT_ACCEPTED);
                }
        do
                r = store_prune_step(f->s, &p, T0 + 10, 1000);
        while (r > 0);
        assert_int_equal(r, 0);
        assert_int_equal(p.versions, 200);
        /* 200 versions of 2 KiB: at least 100 pages are free, and the file still holds them */
        assert_true(sqlite_peek_int(f->location, "PRAGMA freelist_count") >= 100);
        assert_int_equal(store_size(f->s, &before), 0);
        assert_int_equal(store_compact(f->s, 10, &freed), 0);
        assert_int_equal(freed, 10 * 4096); /* no more than asked */
        do
                assert_int_equal(store_compact(f->s, 1000, &freed), 0);
        while (freed > 0);
        assert_int_equal(sqlite_peek_int(f->location, "PRAGMA freelist_count"), 0);
        assert_int_equal(store_size(f->s, &after), 0);
        assert_true(before - after >= 100 * 4096);
}

static void a_file_made_without_incremental_vacuum_is_converted_once_under_the_lock(
    void **state)
{
        struct store_fixture *f = *state;
        sqlite3 *db;
        long pid;

        f->s = store_close(f->s);
        assert_int_equal(sqlite3_open(f->location, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA auto_vacuum=NONE; VACUUM;", NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(sqlite_peek_int(f->location, "PRAGMA auto_vacuum"), 0);
        store_fixture_reopen(f);
        /* opening alone changes nothing; converting needs the server lock */
        assert_int_equal(sqlite_peek_int(f->location, "PRAGMA auto_vacuum"), 0);
        assert_int_equal(store_compact_enable(f->s), -ENOLCK);
        assert_int_equal(store_lock(f->s, &pid), 0);
        assert_int_equal(store_compact_enable(f->s), 1);
        assert_int_equal(sqlite_peek_int(f->location, "PRAGMA auto_vacuum"), 2);
        assert_int_equal(store_compact_enable(f->s), 0);
}

/* ---- the lock file ---- */

static void the_lock_is_a_file_beside_the_store_naming_its_holder(void **state)
{
        struct store_fixture *f = *state;
        char path[256], text[32] = "";
        long pid = 0;
        FILE *fp;

        assert_int_equal(store_lock(f->s, &pid), 0);
        snprintf(path, sizeof(path), "%s.lock", f->location);
        fp = fopen(path, "r");
        assert_non_null(fp);
        assert_non_null(fgets(text, sizeof(text), fp));
        fclose(fp);
        assert_int_equal(strtol(text, NULL, 10), (long)getpid());
}

#define T(name) cmocka_unit_test_setup_teardown(name, store_fixture_setup, store_fixture_teardown)

int main(void)
{
        const struct CMUnitTest sqlite_only[] = {
            T(opening_a_new_file_creates_the_schema_at_the_latest_user_version),
            T(opening_uses_the_wal_journal),
            T(every_connection_the_store_opens_syncs_every_commit),
            T(opening_a_file_from_a_newer_orderbridge_is_refused),
            T(opening_in_a_missing_directory_fails_with_an_errno),
            T(a_store_written_by_the_previous_version_opens_and_keeps_working),
            T(the_lock_is_a_file_beside_the_store_naming_its_holder),
            T(a_new_file_gives_pruned_pages_back_when_compacted),
            T(a_file_made_without_incremental_vacuum_is_converted_once_under_the_lock),
        };
        int failed;

        failed = store_suite_run(&sqlite_backend);
        store_suite_use(&sqlite_backend);
        failed += cmocka_run_group_tests_name("sqlite only", sqlite_only, NULL, NULL);
        return failed;
}
