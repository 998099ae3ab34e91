/*
 * The PostgreSQL store: the store suite (store_suite.c) against a PostgreSQL server, each
 * case in a database of its own, then what only this backend has — its refusals in words
 * an operator can act on (server down, wrong password, a newer schema), servers starting
 * together against an empty database, revs kept from another store, a connection that
 * breaks under a running server, and claims on the server's clock.
 *
 * The server comes from the environment: OB_TEST_PG_URL (a role that may create databases,
 * as scripts/pg.sh makes) and OB_TEST_PG_PASSWORD_FILE. Without them the test is skipped.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "store/store_backend.h"
#include "store_suite.h"

static char *xid(const char *s)
{
        char *d = strdup(s);

        assert_non_null(d);
        return d;
}

#define LATEST 1 /* the schema version this orderbridge writes */
#define WRONG_PASSWORD "Zebra-Wr0ng-Secret-4711"

static char base_url[256];
static char password[256];

/* ---- the server ---- */

/* A connection as the test role (not as the store: another application_name). */
static PGconn *connect_as_test(const char *url)
{
        const char *keys[] = {"dbname", "password", "application_name", "options", NULL};
        const char *vals[] = {url, password, "orderbridge-test", "-c client_min_messages=warning",
                              NULL};
        PGconn *c = PQconnectdbParams(keys, vals, 1);

        if (PQstatus(c) != CONNECTION_OK)
                fail_msg("connecting to the test server: %s", PQerrorMessage(c));
        return c;
}

/* Runs `sql` on the database at `url`; the first value of its answer as an integer. */
static long long sql_at(const char *url, const char *sql)
{
        PGconn *c = connect_as_test(url);
        PGresult *res = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(res);
        long long v = 0;

        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                char msg[512];
                snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
                PQclear(res);
                PQfinish(c);
                fail_msg("%s: %s", sql, msg);
        }
        if (st == PGRES_TUPLES_OK && PQntuples(res) > 0)
                v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        PQfinish(c);
        return v;
}

/* `base_url` with its database replaced by `db`. */
static void url_with_db(const char *db, char *buf, size_t size)
{
        const char *host = strstr(base_url, "://");
        const char *path = host ? strchr(host + 3, '/') : NULL;
        const char *query = path ? strchr(path, '?') : NULL;

        if (!path)
                fail_msg("OB_TEST_PG_URL has no database: %s", base_url);
        snprintf(buf, size, "%.*s/%s%s", (int)(path - base_url), base_url, db, query ? query : "");
}

/* The database a location names. */
static void db_of(const char *location, char *buf, size_t size)
{
        const char *host = strstr(location, "://");
        const char *path = strchr(host + 3, '/') + 1;

        snprintf(buf, size, "%.*s", (int)strcspn(path, "?"), path);
}

/* Each case gets an empty database. Making one costs about 0.3 s (PostgreSQL copies and
 * fsyncs a template of some 7 MiB), too long for ninety cases within meson's timeout, so a
 * database a case is done with is emptied (its connections ended, its schema dropped) and
 * handed to a later case; all of them are dropped at the end. An emptied database is, to the
 * store, a new one: nothing of orderbridge's is left in it. */
static char parked[8][64];
static int n_parked;

static void pg_location(const char *dir, char *buf, size_t size)
{
        static int n;
        char db[64], sql[128];

        (void)dir;
        if (n_parked > 0) {
                url_with_db(parked[--n_parked], buf, size);
                return;
        }
        snprintf(db, sizeof(db), "ob_%ld_%d", (long)getpid(), ++n);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
        sql_at(base_url, sql);
        url_with_db(db, buf, size);
}

static void drop_db(const char *db)
{
        char sql[160];

        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
        sql_at(base_url, sql);
}

static void pg_remove(const char *location)
{
        char db[64];

        db_of(location, db, sizeof(db));
        if (n_parked == (int)(sizeof(parked) / sizeof(parked[0]))) {
                drop_db(db);
                return;
        }
        /* the store's own connections only: an autovacuum worker may be in the database
         * too, and is the superuser's */
        sql_at(location, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE datname=current_database() AND pid<>pg_backend_pid() "
                         "AND backend_type='client backend' AND usename=current_user; "
                         "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        snprintf(parked[n_parked++], sizeof(parked[0]), "%s", db);
}

static void drop_parked(void)
{
        while (n_parked > 0)
                drop_db(parked[--n_parked]);
}

static const struct store_suite_backend pg_backend = {"postgresql", pg_location, pg_remove};

/* ---- refusals in the operator's words ---- */

static void an_unreachable_server_is_econnrefused_naming_host_and_port(void **state)
{
        struct store *s = NULL;

        (void)state;
        /* nothing listens on port 1 */
        assert_int_equal(store_open("postgresql://orderbridge@127.0.0.1:1/orderbridge", &s),
                         -ECONNREFUSED);
        assert_null(s);
        assert_non_null(strstr(store_open_error(), "127.0.0.1:1/orderbridge"));
}

static void a_wrong_password_is_eacces_and_is_never_shown(void **state)
{
        char url[320], with_pw[320];
        const char *at;
        struct store *s = NULL;

        (void)state;
        store_pg_set_password(WRONG_PASSWORD);
        assert_int_equal(store_open(base_url, &s), -EACCES);
        assert_null(strstr(store_open_error(), WRONG_PASSWORD));
        assert_non_null(strstr(store_open_error(), "orderbridge@"));
        /* a password in the location itself is not shown either, nor the location */
        store_pg_set_password(NULL);
        at = strchr(base_url, '@');
        assert_non_null(at);
        snprintf(url, sizeof(url), "%.*s", (int)(at - base_url), base_url);
        snprintf(with_pw, sizeof(with_pw), "%s:%s%s", url, WRONG_PASSWORD, at);
        assert_int_equal(store_open(with_pw, &s), -EACCES);
        assert_null(strstr(store_open_error(), WRONG_PASSWORD));
        store_pg_set_password(password);
}

static void a_schema_from_a_newer_orderbridge_is_eproto_naming_both_versions(void **state)
{
        struct store_fixture *f = *state;
        char want[128];

        f->s = store_close(f->s);
        sql_at(f->location, "UPDATE orderbridge_schema SET version = 99");
        assert_int_equal(store_open(f->location, &f->s), -EPROTO);
        assert_null(f->s);
        snprintf(want, sizeof(want), "schema version 99, this orderbridge knows up to %d", LATEST);
        assert_non_null(strstr(store_open_error(), want));
}

/* ---- servers starting together ---- */

struct opener {
        const char *location;
        pthread_t thread;
        int r;
        char err[256];
};

static void *open_and_close(void *arg)
{
        struct opener *o = arg;
        struct store *s = NULL;

        o->r = store_open(o->location, &s);
        if (o->r < 0)
                snprintf(o->err, sizeof(o->err), "%s", store_open_error());
        store_close(s);
        return NULL;
}

static void servers_opening_an_empty_database_together_make_the_schema_once(void **state)
{
        struct opener o[4];
        char location[192];

        (void)state;
        pg_location(NULL, location, sizeof(location));
        for (int i = 0; i < 4; i++) {
                o[i] = (struct opener){.location = location};
                assert_int_equal(pthread_create(&o[i].thread, NULL, open_and_close, &o[i]), 0);
        }
        for (int i = 0; i < 4; i++)
                pthread_join(o[i].thread, NULL);
        for (int i = 0; i < 4; i++)
                if (o[i].r != 0)
                        fail_msg("opener %d: %d (%s)", i, o[i].r, o[i].err);
        assert_int_equal(sql_at(location, "SELECT count(*) FROM orderbridge_schema"), 1);
        assert_int_equal(sql_at(location, "SELECT version FROM orderbridge_schema"), LATEST);
        pg_remove(location);
}

/* ---- revs ---- */

static int64_t add_history(struct store_backend *be, int64_t rev)
{
        struct store_history h = {.rev = rev,
                                  .order_id = "123",
                                  .has_version = true,
                                  .version = 1,
                                  .received_at = T0,
                                  .source = "import",
                                  .outcome = STORE_PUT_ACCEPTED,
                                  .json = "{}"};
        int64_t got = -1;

        assert_int_equal(store_pg_ops.begin(be), 0);
        assert_int_equal(store_pg_ops.history_add(be, &h, &got), 0);
        assert_int_equal(store_pg_ops.commit(be), 0);
        return got;
}

static void a_rev_kept_from_another_store_is_followed_by_later_revs(void **state)
{
        struct store_fixture *f = *state;
        struct store_backend *be = NULL;
        struct store_put p = {.order_id = "456",
                              .site = "s",
                              .json = "{\"v\":1}",
                              .has_version = true,
                              .version = 1,
                              .source = "ingest"};
        char err[256];

        assert_int_equal(store_pg_ops.open(f->location, &be, err, sizeof(err)), 0);
        assert_int_equal(add_history(be, 1000), 1000);
        assert_true(add_history(be, 0) > 1000);
        store_pg_ops.close(be);
        /* and through the store, for a new order */
        assert_int_equal(store_put(f->s, &p, 1, T0), 0);
        assert_int_equal(p.outcome, STORE_PUT_ACCEPTED);
        assert_true(p.rev > 1001);
}

/* ---- a connection that breaks ---- */

static void a_killed_connection_fails_one_call_and_the_next_reconnects(void **state)
{
        struct store_fixture *f = *state;
        char *v = NULL;
        long long left = 1;

        assert_int_equal(store_meta_set(f->s, "k", "v1"), 0);
        assert_int_equal(sql_at(f->location,
                                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname=current_database() "
                                "AND application_name='orderbridge'"),
                         1);
        for (int i = 0; i < 100 && left > 0; i++) {
                left = sql_at(f->location, "SELECT count(*) FROM pg_stat_activity "
                                           "WHERE datname=current_database() "
                                           "AND application_name='orderbridge'");
                usleep(50 * 1000);
        }
        assert_int_equal(left, 0);
        assert_true(store_meta_get(f->s, "k", &v) < 0);
        assert_null(v);
        assert_int_equal(store_meta_get(f->s, "k", &v), 0);
        assert_string_equal(v, "v1");
        free(v);
        /* writes too */
        assert_int_equal(store_meta_set(f->s, "k", "v2"), 0);
        assert_int_equal(store_meta_get(f->s, "k", &v), 0);
        assert_string_equal(v, "v2");
        free(v);
}

/* ---- claims and the server's clock ---- */

struct claims_seen {
        char names[4][32];
        char owners[4][32];
        int n;
};

static int note_claim(void *arg, const struct store_claim *c)
{
        struct claims_seen *seen = arg;

        if (seen->n < 4) {
                snprintf(seen->names[seen->n], sizeof(seen->names[0]), "%s", c->name);
                snprintf(seen->owners[seen->n], sizeof(seen->owners[0]), "%s", c->owner);
        }
        seen->n++;
        return 0;
}

static void claims_are_put_read_and_listed_by_name_on_the_servers_clock(void **state)
{
        struct store_fixture *f = *state;
        struct store_backend *be = NULL;
        struct store_claim c = {0}, got = {0};
        struct claims_seen seen = {0};
        struct timespec ts;
        int64_t now = 0, wall;
        char err[256];

        assert_int_equal(store_pg_ops.open(f->location, &be, err, sizeof(err)), 0);
        assert_int_equal(store_pg_ops.now(be, &now), 0);
        clock_gettime(CLOCK_REALTIME, &ts);
        wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        assert_true(now > wall - 5000 && now < wall + 5000);

        assert_int_equal(store_pg_ops.claim_get(be, "roistat", &got), -ENOENT);
        assert_int_equal(store_pg_ops.begin(be), 0);
        c = (struct store_claim){"roistat", "server-b", now, now + 15000};
        assert_int_equal(store_pg_ops.claim_put(be, &c), 0);
        c = (struct store_claim){"b24.poll", "server-a", now, now + 15000};
        assert_int_equal(store_pg_ops.claim_put(be, &c), 0);
        assert_int_equal(store_pg_ops.commit(be), 0);

        assert_int_equal(store_pg_ops.claim_get(be, "roistat", &got), 0);
        assert_string_equal(got.name, "roistat");
        assert_string_equal(got.owner, "server-b");
        assert_int_equal(got.since, now);
        assert_int_equal(got.until, now + 15000);

        /* a put of an existing name replaces all of it */
        assert_int_equal(store_pg_ops.begin(be), 0);
        c = (struct store_claim){"roistat", "server-a", now + 1, now + 30000};
        assert_int_equal(store_pg_ops.claim_put(be, &c), 0);
        assert_int_equal(store_pg_ops.commit(be), 0);
        assert_int_equal(store_pg_ops.claim_get(be, "roistat", &got), 0);
        assert_string_equal(got.owner, "server-a");
        assert_int_equal(got.since, now + 1);
        assert_int_equal(got.until, now + 30000);

        assert_int_equal(store_pg_ops.claim_list(be, note_claim, &seen), 0);
        assert_int_equal(seen.n, 2);
        assert_string_equal(seen.names[0], "b24.poll");
        assert_string_equal(seen.names[1], "roistat");
        assert_string_equal(seen.owners[1], "server-a");
        store_pg_ops.close(be);
}

/* ---- the claim rule (store.c's store_claim, on this backend's clock) ---- */

static void a_claim_is_taken_kept_refused_to_others_and_free_once_it_lapses(void **state)
{
        struct store_fixture *f = *state;
        struct store *other = NULL;
        int64_t left = 0;

        assert_true(store_shared(f->s));
        assert_int_equal(store_open(f->location, &other), 0);
        /* free: taken (2); asked again by its holder: kept (1) */
        assert_int_equal(store_claim(f->s, "roistat", "server-a", 800, &left), 2);
        assert_int_equal(store_claim(f->s, "roistat", "server-a", 800, &left), 1);
        /* another server is refused while it lives, told how long it has left */
        assert_int_equal(store_claim(other, "roistat", "server-b", 800, &left), 0);
        assert_true(left > 0 && left <= 800);
        /* another role is free for it */
        assert_int_equal(store_claim(other, "bitrix24", "server-b", 800, &left), 2);
        /* not renewed: it lapses, and the other server takes it (2: what the last
         * holder left in flight is ownerless now) */
        usleep(900 * 1000);
        assert_int_equal(store_claim(other, "roistat", "server-b", 800, &left), 2);
        /* the first holder, back, finds it taken, and taking it back is a take too */
        assert_int_equal(store_claim(f->s, "roistat", "server-a", 800, &left), 0);
        store_close(other);
}

static int count_claim(void *arg, const char *name, const char *owner, int64_t since,
                       int64_t left_ms)
{
        (void)name, (void)since;
        if (left_ms > 0 && strcmp(owner, "server-a") == 0)
                (*(int *)arg)++;
        return 0;
}

static void a_released_claim_is_free_at_once_and_only_its_holder_releases_it(void **state)
{
        struct store_fixture *f = *state;
        int64_t left = 0;
        int live = 0;

        assert_int_equal(store_claim(f->s, "roistat", "server-a", 60000, &left), 2);
        assert_int_equal(store_claims(f->s, count_claim, &live), 0);
        assert_int_equal(live, 1);
        /* another server cannot release it */
        assert_int_equal(store_unclaim(f->s, "roistat", "server-b"), 0);
        assert_int_equal(store_claim(f->s, "roistat", "server-b", 60000, &left), 0);
        /* its holder can, and then the next server to ask has it, without the wait */
        assert_int_equal(store_unclaim(f->s, "roistat", "server-a"), 0);
        live = 0;
        assert_int_equal(store_claims(f->s, count_claim, &live), 0);
        assert_int_equal(live, 0);
        assert_int_equal(store_claim(f->s, "roistat", "server-b", 60000, &left), 2);
}

/* ---- store_copy: an SQLite store moved in ---- */

static void a_copied_store_reports_every_order_as_the_original_did(void **state)
{
        struct store_fixture *f = *state;
        struct store *src = NULL;
        char path[256], *a = NULL, *b = NULL;
        struct store_counts ca, cb;
        static const char *const sinks[] = {"roistat"};
        struct store_put put[3];

        snprintf(path, sizeof(path), "%s/source.db", f->dir);
        assert_int_equal(store_open(path, &src), 0);
        store_set_sinks(src, sinks, 1);
        for (int i = 0; i < 3; i++) {
                char id[8], json[256];
                snprintf(id, sizeof(id), "C%d", i);
                snprintf(json, sizeof(json), "{\"id\":\"%s\",\"version\":1}", id);
                put[i] = (struct store_put){.order_id = xid(id), .site = "shop",
                                            .has_version = true, .version = 1,
                                            .json = xid(json), .source = "http"};
        }
        assert_int_equal(store_put(src, put, 3, T0), 0);
        store_fixture_take(src, T0, 1, 1);
        store_fixture_record(src, "C0", put[0].rev, STORE_PERMFAIL, 0, "refused", T0 + 1);
        assert_int_equal(store_link_set(src, "C1", "b24.deal", "42"), 0);
        assert_int_equal(store_meta_set(src, "reconcile.since", "123"), 0);

        assert_int_equal(store_copy(src, f->s, NULL, NULL), 3);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(store_order_report(src, put[i].order_id, &a), 0);
                assert_int_equal(store_order_report(f->s, put[i].order_id, &b), 0);
                assert_string_equal(a, b);
                free(a);
                free(b);
        }
        assert_int_equal(store_counts(src, "roistat", &ca), 0);
        assert_int_equal(store_counts(f->s, "roistat", &cb), 0);
        assert_memory_equal(&ca, &cb, sizeof(ca));
        assert_int_equal(cb.dead, 1);
        assert_int_equal(store_meta_get(f->s, "reconcile.since", &a), 0);
        assert_string_equal(a, "123");
        free(a);
        /* a target that holds orders is refused */
        assert_int_equal(store_copy(src, f->s, NULL, NULL), -EEXIST);
        for (int i = 0; i < 3; i++) {
                free((char *)put[i].order_id);
                free((char *)put[i].json);
        }
        store_close(src);
}

/* ---- the program ---- */

static int read_password(const char *path)
{
        FILE *fp = fopen(path, "r");
        size_t n;

        if (!fp)
                return -errno;
        n = fread(password, 1, sizeof(password) - 1, fp);
        fclose(fp);
        password[n] = '\0';
        password[strcspn(password, "\r\n")] = '\0';
        return 0;
}

#define T(name) cmocka_unit_test_setup_teardown(name, store_fixture_setup, store_fixture_teardown)

int main(void)
{
        const struct CMUnitTest pg_only[] = {
            cmocka_unit_test(an_unreachable_server_is_econnrefused_naming_host_and_port),
            cmocka_unit_test(a_wrong_password_is_eacces_and_is_never_shown),
            T(a_schema_from_a_newer_orderbridge_is_eproto_naming_both_versions),
            cmocka_unit_test(servers_opening_an_empty_database_together_make_the_schema_once),
            T(a_rev_kept_from_another_store_is_followed_by_later_revs),
            T(a_killed_connection_fails_one_call_and_the_next_reconnects),
            T(claims_are_put_read_and_listed_by_name_on_the_servers_clock),
            T(a_claim_is_taken_kept_refused_to_others_and_free_once_it_lapses),
            T(a_released_claim_is_free_at_once_and_only_its_holder_releases_it),
            T(a_copied_store_reports_every_order_as_the_original_did),
        };
        const char *url = getenv("OB_TEST_PG_URL");
        const char *pw_file = getenv("OB_TEST_PG_PASSWORD_FILE");
        int failed;

        if (!url || !*url) {
                printf("OB_TEST_PG_URL is not set (sh scripts/pg.sh start DIR gives one): "
                       "skipped\n");
                return 77;
        }
        snprintf(base_url, sizeof(base_url), "%s", url);
        if (pw_file && read_password(pw_file) < 0) {
                fprintf(stderr, "%s: %s\n", pw_file, strerror(errno));
                return 1;
        }
        store_pg_set_password(password);
        failed = store_suite_run(&pg_backend);
        store_suite_use(&pg_backend);
        failed += cmocka_run_group_tests_name("postgresql only", pg_only, NULL, NULL);
        drop_parked();
        store_pg_set_password(NULL);
        return failed;
}
