/*
 * The store suite: what every store backend must do, as seen through store.h. A backend's
 * test program names how to make a fresh store location and runs the suite against it
 * (test_store.c for SQLite), then adds the cases only that backend has (its files, its
 * migrations). The fixture and a few helpers are shared with those cases.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/store.h"

#define T0 1773385200000LL
#define LIFETIME_MS (5LL * 24 * 3600 * 1000)
#define SINK "roistat"
#define OWNER "test-owner"
#define LEASE_MS 60000LL

struct store_suite_backend {
        const char *name;
        /* A fresh store's location inside the directory `dir` (a new one for each case). */
        void (*location)(const char *dir, char *buf, size_t size);
        /* Removes whatever the store at `location` left behind. */
        void (*remove)(const char *location);
};

/* Runs every case of the suite against `b`. Returns the number of failed cases. */
int store_suite_run(const struct store_suite_backend *b);

/* The per-case fixture: a temporary directory and an open store whose only sink is SINK. */
struct store_fixture {
        char dir[64];
        char location[192];
        struct store *s;
};

/* For a backend's own cases: the backend the fixture uses, then setup/teardown. */
void store_suite_use(const struct store_suite_backend *b);
int store_fixture_setup(void **state);
int store_fixture_teardown(void **state);
/* Closes and opens the fixture's store again (the sink list is set again). */
void store_fixture_reopen(struct store_fixture *f);

/* Takes due work of SINK for OWNER and checks how many came back (freed in teardown). */
struct store_work *store_fixture_take(struct store *s, int64_t now, size_t limit, size_t want_n);
/* One verdict of OWNER; fails the case unless it is recorded. */
void store_fixture_record(struct store *s, const char *order_id, int64_t rev,
                          enum store_result_kind kind, int64_t next_at, const char *detail,
                          int64_t now);
struct store_counts store_fixture_counts(struct store *s);
/* store_order_report as JSON (freed in teardown), and its SINK delivery's fields. */
json_t *store_fixture_report(struct store *s, const char *order_id);
const char *store_fixture_state(json_t *report);
json_t *store_fixture_delivery(json_t *report, const char *key);
