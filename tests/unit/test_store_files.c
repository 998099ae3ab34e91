/*
 * The SQLite store's files on disk (issue #10): the store holds buyers' names, phones and
 * e-mails, so the database, its -wal and -shm, its lock and a directory orderbridge makes
 * for it are the owner's alone whatever the umask; an existing store keeps the mode its
 * operator gave it, and the server names it, with the chmod to run, when others can open
 * it. Each test runs in a fresh directory under /tmp, under the umask it names.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"

static const char *const files[] = {"ob.db", "ob.db-wal", "ob.db-shm", "ob.db-journal",
                                    "ob.db.lock"};
static const char *const subdirs[] = {"new", "a/b", "a"};

struct fixture {
        char dir[64];
        mode_t old_umask;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        snprintf(f->dir, sizeof(f->dir), "/tmp/orderbridge-files-XXXXXX");
        if (!f || !mkdtemp(f->dir))
                return -1;
        f->old_umask = umask(022);
        *state = f;
        return 0;
}

static void path_in(const struct fixture *f, const char *name, char *buf, size_t size)
{
        snprintf(buf, size, "%s/%s", f->dir, name);
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char p[256], sub[128];

        umask(f->old_umask);
        for (size_t d = 0; d <= sizeof(subdirs) / sizeof(subdirs[0]); d++) {
                snprintf(sub, sizeof(sub), "%s", d == 0 ? "." : subdirs[d - 1]);
                for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                        snprintf(p, sizeof(p), "%s/%s/%s", f->dir, sub, files[i]);
                        unlink(p);
                }
        }
        for (size_t d = 0; d < sizeof(subdirs) / sizeof(subdirs[0]); d++) {
                path_in(f, subdirs[d], p, sizeof(p));
                rmdir(p);
        }
        rmdir(f->dir);
        free(f);
        return 0;
}

static mode_t mode_of(const char *path)
{
        struct stat st;

        if (stat(path, &st) < 0)
                fail_msg("%s: %s", path, strerror(errno));
        return st.st_mode & 07777;
}

static void expect_mode(const char *path, mode_t want)
{
        mode_t got = mode_of(path);

        if (got != want)
                fail_msg("%s: mode %04o, want %04o", path, (unsigned)got, (unsigned)want);
}

/* Opens the store at dir/`name` under `mask`, writes to it (so that the -wal and -shm
 * exist), checks the three files' modes while it is open, and closes it. */
static void open_write_and_expect_0600(struct fixture *f, const char *name, mode_t mask)
{
        char db[256], wal[280], shm[280];
        struct store *s = NULL;
        long holder = 0;

        path_in(f, name, db, sizeof(db));
        snprintf(wal, sizeof(wal), "%s-wal", db);
        snprintf(shm, sizeof(shm), "%s-shm", db);
        umask(mask);
        assert_int_equal(store_open(db, &s), 0);
        assert_int_equal(store_lock(s, &holder), 0);
        assert_int_equal(store_meta_set(s, "test.key", "a value"), 0);
        expect_mode(db, 0600);
        expect_mode(wal, 0600);
        expect_mode(shm, 0600);
        snprintf(wal, sizeof(wal), "%s.lock", db);
        expect_mode(wal, 0600);
        store_close(s);
}

static void a_new_store_its_wal_shm_and_lock_are_0600_under_umask_0(void **state)
{
        open_write_and_expect_0600(*state, "ob.db", 0);
}

static void a_new_store_is_0600_under_umask_022(void **state)
{
        open_write_and_expect_0600(*state, "ob.db", 022);
}

/* a umask that takes the owner's own write bit: the files are still 0600, so that the
 * daemon can write its store */
static void a_new_store_is_0600_under_a_umask_that_takes_the_owners_write_bit(void **state)
{
        open_write_and_expect_0600(*state, "ob.db", 0277);
}

static void a_missing_store_directory_is_created_0700_whatever_the_umask(void **state)
{
        struct fixture *f = *state;
        char dir[256];

        open_write_and_expect_0600(f, "new/ob.db", 0);
        path_in(f, "new", dir, sizeof(dir));
        expect_mode(dir, 0700);
}

/* only the last component: a missing parent is more likely a typo than a wish */
static void a_store_whose_parent_directory_is_missing_is_not_created(void **state)
{
        struct fixture *f = *state;
        char db[256], a[256];
        struct store *s = NULL;

        path_in(f, "a/b/ob.db", db, sizeof(db));
        path_in(f, "a", a, sizeof(a));
        assert_int_equal(store_open(db, &s), -ENOENT);
        assert_null(s);
        assert_int_equal(access(a, F_OK), -1);
}

/* An operator's chmod is theirs: the store is not tightened behind their back. */
static void an_existing_store_keeps_its_mode(void **state)
{
        struct fixture *f = *state;
        char db[256];
        struct store *s = NULL;

        open_write_and_expect_0600(f, "ob.db", 022);
        path_in(f, "ob.db", db, sizeof(db));
        assert_int_equal(chmod(db, 0640), 0);
        assert_int_equal(store_open(db, &s), 0);
        store_close(s);
        expect_mode(db, 0640);
}

/* Runs store_open + store_lock on dir/ob.db with stderr captured; returns what the
 * process logged (caller frees). */
static char *lock_and_capture_log(struct fixture *f)
{
        char db[256], log[256], *text;
        struct store *s = NULL;
        long holder = 0;
        int fd, saved;
        FILE *in;
        long n;

        path_in(f, "ob.db", db, sizeof(db));
        path_in(f, "stderr.txt", log, sizeof(log));
        fd = open(log, O_RDWR | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        dup2(fd, STDERR_FILENO);
        assert_int_equal(store_open(db, &s), 0);
        assert_int_equal(store_lock(s, &holder), 0);
        store_close(s);
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(fd);
        in = fopen(log, "r");
        assert_non_null(in);
        fseek(in, 0, SEEK_END);
        n = ftell(in);
        rewind(in);
        text = calloc(1, (size_t)n + 1);
        assert_int_equal(fread(text, 1, (size_t)n, in), (size_t)n);
        fclose(in);
        unlink(log);
        return text;
}

static void the_server_names_a_store_open_to_others_with_the_chmod_to_run(void **state)
{
        struct fixture *f = *state;
        char db[256], want[400], *log;

        open_write_and_expect_0600(f, "ob.db", 022);
        path_in(f, "ob.db", db, sizeof(db));
        assert_int_equal(chmod(db, 0644), 0);
        log = lock_and_capture_log(f);
        snprintf(want, sizeof(want), "file=%s mode=0644 hint=\"chmod 600 %s\"", db, db);
        if (!strstr(log, "store.open_to_others") || !strstr(log, want))
                fail_msg("want a warning with\n%s\n--- got:\n%s", want, log);
        free(log);
}

static void the_server_says_nothing_of_a_private_store(void **state)
{
        struct fixture *f = *state;
        char *log;

        open_write_and_expect_0600(f, "ob.db", 022);
        log = lock_and_capture_log(f);
        assert_null(strstr(log, "store.open_to_others"));
        free(log);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(a_new_store_its_wal_shm_and_lock_are_0600_under_umask_0),
            T(a_new_store_is_0600_under_umask_022),
            T(a_new_store_is_0600_under_a_umask_that_takes_the_owners_write_bit),
            T(a_missing_store_directory_is_created_0700_whatever_the_umask),
            T(a_store_whose_parent_directory_is_missing_is_not_created),
            T(an_existing_store_keeps_its_mode),
            T(the_server_names_a_store_open_to_others_with_the_chmod_to_run),
            T(the_server_says_nothing_of_a_private_store),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
