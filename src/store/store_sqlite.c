/*
 * The SQLite store backend: rows in and out, no rules (those are in store.c). WAL
 * journal with synchronous=FULL: a commit is on disk before the caller hears about it,
 * so "accepted" means durable. Schema changes are numbered migrations recorded in PRAGMA
 * user_version; a file from an older orderbridge is brought forward on open, one from a
 * newer one is refused. Statements are prepared once per connection and kept.
 * A new file is made with auto_vacuum=INCREMENTAL, so that what retention prunes can leave
 * the file (sq_compact); an older file takes it by one VACUUM (sq_compact_enable).
 *
 * The server lock is an flock on "<path>.lock" holding the holder's pid: the kernel drops
 * it when the process ends, however it ends, so a crash never leaves a stale lock. The
 * file is never removed (removing it would let two processes lock two different files).
 *
 * The store holds buyers' names, phones and e-mails: what it creates is its owner's alone,
 * whatever the umask — the file 0600 (SQLite gives -wal and -shm the database file's
 * mode), a missing directory 0700. An existing file keeps the mode its operator gave it;
 * the server says so at start when others can open it.
 */
#include "store/store_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/log.h"
#include "base/xalloc.h"

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
    /* 4: leases. Work in flight has an owner, and next_at becomes the one time the
     * store watches a row by: its lease's end when in flight (rows left in flight by
     * an earlier version have no lease: it ended long ago), never when done or dead.
     * One index on (sink, next_at) then serves "due", "lease ended" and "next". */
    "ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;"
    "UPDATE deliveries SET next_at=9223372036854775807 WHERE state IN ('done','dead');"
    "UPDATE deliveries SET next_at=0 WHERE state='inflight';"
    "DROP INDEX deliveries_due;"
    "CREATE INDEX deliveries_next ON deliveries(sink, next_at);",
    /* 5: a delivery asked to look again while in flight (store_request); orders listed
     * by when they last changed (Roistat's pull export, reconcile) */
    ("ALTER TABLE deliveries ADD COLUMN requested INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX orders_received ON orders(received_at, order_id);"),
    /* 6: since when a delivery has been owed (the operator's "oldest pending"): set when
     * it leaves done or dead (or is made), kept through retries, 0 once done or dead */
    ("ALTER TABLE deliveries ADD COLUMN pending_since INTEGER NOT NULL DEFAULT 0;"
     "UPDATE deliveries SET pending_since=updated_at WHERE state NOT IN ('done','dead');"),
    /* 7: retention asks, for each old snapshot version, whether a delivery of its order
     * still needs it: one order's deliveries, across sinks */
    "CREATE INDEX deliveries_order ON deliveries(order_id);",
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

#define DELIVERY_COLS                                                                              \
        "d.sink, d.order_id, d.state, d.want_rev, d.sent_rev, d.done_rev, d.attempts, "            \
        "d.waits, d.next_at, d.first_failed_at, d.uncertain_at, d.updated_at, d.last_error, "      \
        "d.lease_owner, d.requested, d.pending_since"
#define N_DELIVERY_COLS 16

enum query {
        Q_BEGIN,
        Q_COMMIT,
        Q_ROLLBACK,
        Q_WEBHOOK_GET,
        Q_WEBHOOK_ADD,
        Q_WEBHOOK_PRUNE,
        Q_ORDER_GET,
        Q_ORDER_GET_JSON,
        Q_ORDER_PUT,
        Q_ORDER_WALK,
        Q_ORDER_WALK_FIRST,
        Q_ORDER_COUNT,
        Q_HISTORY_ADD,
        Q_HISTORY_LIST,
        Q_DELIVERY_GET,
        Q_DELIVERY_PUT,
        Q_DELIVERY_WALK,
        Q_DELIVERY_WALK_SINK,
        Q_DELIVERY_WALK_ORDER,
        Q_DELIVERY_DUE,
        Q_DELIVERY_NEXT,
        Q_DELIVERY_COUNT,
        Q_DELIVERY_OLDEST,
        Q_DELIVERY_SINKS,
        Q_SIZE,
        Q_ATTEMPT_ADD,
        Q_ATTEMPT_LIST,
        Q_DEAD_ADD,
        Q_DEAD_LIST,
        Q_LINK_GET,
        Q_LINK_SET,
        Q_LINK_LIST,
        Q_META_GET,
        Q_META_SET,
        Q_META_ADD,
        Q_META_LIST,
        Q_HISTORY_LAST,
        Q_HISTORY_PRUNE,
        Q_ATTEMPT_LAST,
        Q_ATTEMPT_PRUNE,
        Q_AUTO_VACUUM,
        N_QUERIES,
};

static const char *const queries[N_QUERIES] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_WEBHOOK_GET] = "SELECT body_sha256, order_id, outcome, received_at FROM webhook_ids "
                      "WHERE webhook_id=?1",
    [Q_WEBHOOK_ADD] = "INSERT INTO webhook_ids(webhook_id, body_sha256, order_id, outcome, "
                      "received_at) VALUES(?1, ?2, ?3, ?4, ?5)",
    [Q_WEBHOOK_PRUNE] = "DELETE FROM webhook_ids WHERE received_at < ?1",
    [Q_ORDER_GET] = "SELECT site, rev, has_version, version, has_updated_at, updated_at, "
                    "received_at, first_received_at, NULL FROM orders WHERE order_id=?1",
    [Q_ORDER_GET_JSON] = "SELECT site, rev, has_version, version, has_updated_at, "
                         "updated_at, received_at, first_received_at, snapshot FROM orders "
                         "WHERE order_id=?1",
    [Q_ORDER_PUT] = "INSERT INTO orders(order_id, site, rev, has_version, version, "
                    "has_updated_at, updated_at, snapshot, received_at, first_received_at) "
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(order_id) "
                    "DO UPDATE SET site=excluded.site, rev=excluded.rev, "
                    "has_version=excluded.has_version, version=excluded.version, "
                    "has_updated_at=excluded.has_updated_at, "
                    "updated_at=excluded.updated_at, snapshot=excluded.snapshot, "
                    "received_at=excluded.received_at, "
                    "first_received_at=excluded.first_received_at",
    [Q_ORDER_WALK] = "SELECT order_id, site, rev, has_version, version, has_updated_at, "
                     "updated_at, received_at, first_received_at, snapshot FROM orders "
                     "WHERE received_at>?1 ORDER BY received_at, order_id LIMIT ?2 OFFSET ?3",
    [Q_ORDER_WALK_FIRST] = "SELECT order_id, site, rev, has_version, version, has_updated_at, "
                           "updated_at, received_at, first_received_at, snapshot FROM orders "
                           "WHERE received_at>?1 ORDER BY first_received_at, order_id "
                           "LIMIT ?2 OFFSET ?3",
    [Q_ORDER_COUNT] = "SELECT count(*) FROM orders WHERE received_at>?1",
    [Q_HISTORY_ADD] = "INSERT INTO snapshots(rev, order_id, version, received_at, source, "
                      "outcome, snapshot) VALUES(?7, ?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_HISTORY_LIST] = "SELECT rev, version, received_at, source, outcome, snapshot FROM snapshots "
                       "WHERE order_id=?1 ORDER BY rev DESC LIMIT ?2",
    [Q_DELIVERY_GET] = "SELECT " DELIVERY_COLS " FROM deliveries d "
                       "WHERE sink=?1 AND order_id=?2",
    [Q_DELIVERY_PUT] = "INSERT INTO deliveries(sink, order_id, state, want_rev, sent_rev, "
                       "done_rev, attempts, waits, next_at, first_failed_at, uncertain_at, "
                       "updated_at, last_error, lease_owner, requested, pending_since) "
                       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
                       "?15, ?16) "
                       "ON CONFLICT(sink, order_id) DO UPDATE SET state=excluded.state, "
                       "want_rev=excluded.want_rev, sent_rev=excluded.sent_rev, "
                       "done_rev=excluded.done_rev, attempts=excluded.attempts, "
                       "waits=excluded.waits, next_at=excluded.next_at, "
                       "first_failed_at=excluded.first_failed_at, "
                       "uncertain_at=excluded.uncertain_at, "
                       "updated_at=excluded.updated_at, last_error=excluded.last_error, "
                       "lease_owner=excluded.lease_owner, requested=excluded.requested, "
                       "pending_since=excluded.pending_since",
    /* three shapes of one walk, so that each can use its index */
    [Q_DELIVERY_WALK] = "SELECT " DELIVERY_COLS " FROM deliveries d WHERE next_at<=?3 "
                        "ORDER BY sink, order_id",
    [Q_DELIVERY_WALK_SINK] = "SELECT " DELIVERY_COLS " FROM deliveries d WHERE sink=?1 "
                             "AND (?2 IS NULL OR order_id=?2) AND next_at<=?3",
    [Q_DELIVERY_WALK_ORDER] = "SELECT " DELIVERY_COLS " FROM deliveries d "
                              "WHERE order_id=?2 AND next_at<=?3 ORDER BY sink",
    [Q_DELIVERY_DUE] = "SELECT " DELIVERY_COLS ", o.rev, o.snapshot, o.received_at "
                       "FROM deliveries d "
                       "JOIN orders o USING(order_id) WHERE d.sink=?1 AND d.next_at<=?2 "
                       "ORDER BY d.next_at, o.rev",
    [Q_DELIVERY_NEXT] = "SELECT min(next_at) FROM deliveries WHERE sink=?1",
    [Q_DELIVERY_COUNT] = "SELECT state, count(*) FROM deliveries WHERE sink=?1 "
                         "GROUP BY state",
    [Q_DELIVERY_OLDEST] = "SELECT min(pending_since) FROM deliveries WHERE sink=?1 AND "
                          "state IN ('pending','inflight','retrying') AND pending_since>0",
    [Q_SIZE] = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
    [Q_DELIVERY_SINKS] = "SELECT DISTINCT sink FROM deliveries ORDER BY sink",
    [Q_ATTEMPT_ADD] = "INSERT INTO attempts(sink, order_id, rev, at, outcome, detail) "
                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_ATTEMPT_LIST] = "SELECT sink, rev, at, outcome, detail FROM attempts "
                       "WHERE order_id=?1 ORDER BY id DESC LIMIT ?2",
    [Q_DEAD_ADD] = "INSERT INTO dead_letters(sink, order_id, rev, at, reason) "
                   "VALUES(?1, ?2, ?3, ?4, ?5)",
    [Q_DEAD_LIST] = "SELECT sink, rev, at, NULL, reason FROM dead_letters "
                    "WHERE order_id=?1 ORDER BY id DESC LIMIT ?2",
    [Q_LINK_GET] = "SELECT remote_id FROM links WHERE order_id=?1 AND kind=?2",
    [Q_LINK_SET] = "INSERT INTO links(order_id, kind, remote_id) VALUES(?1, ?2, ?3) "
                   "ON CONFLICT(order_id, kind) DO UPDATE SET remote_id=excluded.remote_id",
    [Q_LINK_LIST] = "SELECT kind, remote_id FROM links WHERE order_id=?1 ORDER BY kind",
    [Q_META_GET] = "SELECT value FROM meta WHERE key=?1",
    [Q_META_SET] = "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO "
                   "UPDATE SET value=excluded.value",
    [Q_META_ADD] = "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) "
                   "DO NOTHING",
    [Q_META_LIST] = "SELECT key, value FROM meta ORDER BY key",
    /* retention: the last row of the next window, then what the window may lose (see
     * store_backend.h for the rules) */
    [Q_HISTORY_LAST] = "SELECT max(rev) FROM (SELECT rev FROM snapshots WHERE rev>?1 "
                       "ORDER BY rev LIMIT ?2)",
    [Q_HISTORY_PRUNE] = "DELETE FROM snapshots WHERE rev>?2 AND rev<=?3 AND received_at<?1 "
                        "AND rev<>coalesce((SELECT o.rev FROM orders o "
                        "WHERE o.order_id=snapshots.order_id), 0) "
                        "AND NOT EXISTS(SELECT 1 FROM deliveries d "
                        "WHERE d.order_id=snapshots.order_id AND d.state<>'done' "
                        "AND d.done_rev<=snapshots.rev)",
    [Q_ATTEMPT_LAST] = "SELECT max(id) FROM (SELECT id FROM attempts WHERE id>?1 "
                       "ORDER BY id LIMIT ?2)",
    [Q_ATTEMPT_PRUNE] = "DELETE FROM attempts WHERE id>?2 AND id<=?3 AND at<?1 "
                        "AND EXISTS(SELECT 1 FROM attempts b WHERE b.order_id=attempts.order_id "
                        "AND b.sink=attempts.sink AND b.id>attempts.id)",
    [Q_AUTO_VACUUM] = "SELECT auto_vacuum FROM pragma_auto_vacuum()",
};

/* Strings handed back by a get: kept until the next call of the same get. */
enum keep_slot {
        K_WEBHOOK,
        K_ORDER_SITE,
        K_ORDER_JSON,
        K_LAST_ERROR,
        K_LEASE_OWNER,
        K_VALUE,
        N_KEEP
};

struct store_backend {
        sqlite3 *db;
        char *path;
        int lock_fd;
        sqlite3_stmt *st[N_QUERIES];
        char *keep[N_KEEP];
};

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

static const char *kept(struct store_backend *be, enum keep_slot slot, const unsigned char *text)
{
        free(be->keep[slot]);
        be->keep[slot] = text ? xstrdup((const char *)text) : NULL;
        return be->keep[slot];
}

/* The statement for `q`, reset and unbound, prepared on first use. NULL on failure. */
static sqlite3_stmt *stmt(struct store_backend *be, enum query q)
{
        sqlite3_stmt *st = be->st[q];

        if (!st) {
                if (sqlite3_prepare_v3(be->db, queries[q], -1, SQLITE_PREPARE_PERSISTENT,
                                       &be->st[q], NULL) != SQLITE_OK)
                        return NULL;
                return be->st[q];
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
}

/* Runs a statement that returns no rows. */
static int run(struct store_backend *be, sqlite3_stmt *st)
{
        int rc = sqlite3_step(st);

        sqlite3_reset(st);
        if (rc == SQLITE_DONE)
                return 0;
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
}

static void bind_text(sqlite3_stmt *st, int i, const char *text)
{
        if (text)
                sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
        return (const char *)sqlite3_column_text(st, i);
}

/* The one integer a bound statement answers (no row or NULL: `none`); resets it. */
static int one_int(sqlite3_stmt *st, int64_t none, int64_t *ret)
{
        int rc = sqlite3_step(st);

        if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
                *ret = sqlite3_column_int64(st, 0);
        else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
                *ret = none;
        sqlite3_reset(st);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
                return 0;
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
}

/* The one integer a query answers (NULL: `none`). */
static int get_int(struct store_backend *be, enum query q, int64_t a, int64_t b, int64_t none,
                   int64_t *ret)
{
        sqlite3_stmt *st = stmt(be, q);

        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, a);
        sqlite3_bind_int64(st, 2, b);
        return one_int(st, none, ret);
}

static int sq_size(struct store_backend *be, int64_t *ret_bytes)
{
        sqlite3_stmt *st = stmt(be, Q_SIZE);

        return st ? one_int(st, 0, ret_bytes) : -EIO;
}

static int exec(struct store_backend *be, const char *sql)
{
        return sql_errno(sqlite3_exec(be->db, sql, NULL, NULL, NULL));
}

static int migrate(struct store_backend *be)
{
        sqlite3_stmt *st;
        int64_t version = -1;
        char sql[64];
        int r;

        if (sqlite3_prepare_v2(be->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW)
                version = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (version < 0)
                return -EIO;
        if (version > N_MIGRATIONS)
                return -EPROTO; /* written by a newer orderbridge */
        for (int64_t v = version; v < N_MIGRATIONS; v++) {
                if ((r = exec(be, "BEGIN IMMEDIATE")) < 0)
                        return r;
                snprintf(sql, sizeof(sql), "PRAGMA user_version=%lld", (long long)v + 1);
                if ((r = exec(be, migrations[v])) < 0 || (r = exec(be, sql)) < 0 ||
                    (r = exec(be, "COMMIT")) < 0) {
                        exec(be, "ROLLBACK");
                        return r;
                }
        }
        return 0;
}

static void sq_close(struct store_backend *be)
{
        if (!be)
                return;
        for (size_t i = 0; i < N_QUERIES; i++)
                sqlite3_finalize(be->st[i]);
        sqlite3_close(be->db);
        if (be->lock_fd >= 0)
                close(be->lock_fd); /* drops the lock */
        for (size_t i = 0; i < N_KEEP; i++)
                free(be->keep[i]);
        free(be->path);
        free(be);
}

/* The store's directory when it is missing: only the last component (a missing parent
 * is more likely a typo than a wish), 0700 whatever the umask. */
static int make_private_dir(const char *path)
{
        const char *slash = strrchr(path, '/');
        char *dir;
        int r = 0;

        if (!slash || slash == path)
                return -ENOENT; /* the working directory or / itself: not ours to make */
        dir = xstrndup(path, (size_t)(slash - path));
        if (mkdir(dir, 0700) < 0)
                r = errno == EEXIST ? 0 : -errno;
        else if (chmod(dir, 0700) < 0)
                r = -errno;
        free(dir);
        return r;
}

/* Creates `path` read-write, 0600 exactly (open's mode goes through the umask, so it is
 * set again): an fd, or -errno (-EEXIST when it exists: its mode is its operator's). */
static int create_0600(const char *path)
{
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

        if (fd < 0)
                return -errno;
        if (fchmod(fd, 0600) < 0) {
                int e = -errno;
                close(fd);
                return e;
        }
        return fd;
}

/* Creates the database file 0600 (not SQLite's 0644 less the umask; -wal and -shm copy
 * the database's mode), and its directory when that alone is missing; an existing file is
 * left as it is. */
static int create_private(const char *path)
{
        int fd = create_0600(path);

        if (fd == -ENOENT && (fd = make_private_dir(path)) == 0)
                fd = create_0600(path);
        if (fd < 0)
                return fd == -EEXIST ? 0 : fd;
        close(fd);
        return 0;
}

static int sq_open(const char *location, struct store_backend **ret, char *err, size_t err_size)
{
        struct store_backend *be;
        int r;

        /* ":memory:" and "file:" URIs are SQLite's to interpret */
        if (location[0] != ':' && strncmp(location, "file:", 5) != 0 &&
            (r = create_private(location)) < 0) {
                snprintf(err, err_size, "%s: %s", location, strerror(-r));
                return r;
        }
        be = xcalloc(1, sizeof(*be));
        be->lock_fd = -1;
        be->path = xstrdup(location);
        r = sql_errno(sqlite3_open_v2(
            location, &be->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
            NULL));
        if (r == 0) {
                sqlite3_busy_timeout(be->db, 10000);
                /* a new (empty) file frees pages on request (store_compact); this must come
                 * before its first table. Not on an existing one: there the pragma may write
                 * the header, and a reader must not wait for the write lock to open */
                int64_t bytes = -1;
                if ((r = sq_size(be, &bytes)) == 0 && bytes == 0)
                        r = exec(be, "PRAGMA auto_vacuum=INCREMENTAL");
                if (r == 0 && (r = exec(be, "PRAGMA journal_mode=WAL")) == 0 &&
                    (r = exec(be, "PRAGMA synchronous=FULL")) == 0 &&
                    (r = exec(be, "PRAGMA foreign_keys=ON")) == 0)
                        r = migrate(be);
        }
        if (r < 0) {
                snprintf(err, err_size, "%s: %s", location,
                         r == -EPROTO ? "written by a newer orderbridge (its schema is newer "
                                        "than this program knows)"
                         : be->db     ? sqlite3_errmsg(be->db)
                                      : strerror(-r));
                sq_close(be);
                return r;
        }
        *ret = be;
        return 0;
}

static const char *sq_errmsg(struct store_backend *be)
{
        return sqlite3_errmsg(be->db);
}

/* Once, when the server takes the lock: a store that others can read (made by an older
 * orderbridge, or chmod-ed) is named with the command that closes it. A warning, not a
 * refusal and not a chmod behind the operator's back: the mode may be on purpose (a
 * backup user), and refusing would stop the intake of orders over it. */
static void warn_if_open_to_others(const char *path)
{
        static const char *const suffixes[] = {"", "-wal", "-shm"};
        char name[4096];
        struct stat st;

        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
                if ((size_t)snprintf(name, sizeof(name), "%s%s", path, suffixes[i]) <
                            sizeof(name) &&
                    stat(name, &st) == 0 && (st.st_mode & S_IRWXO))
                        log_warn("store.open_to_others",
                                 "file=%s mode=%04o hint=\"chmod 600 %s\"", name,
                                 (unsigned)(st.st_mode & 07777), name);
}

static int sq_lock(struct store_backend *be, long *ret_holder_pid)
{
        char path[4096], pid[32];
        ssize_t len;
        int fd;

        if (be->lock_fd >= 0)
                return 0;
        if ((size_t)snprintf(path, sizeof(path), "%s.lock", be->path) >= sizeof(path))
                return -ENAMETOOLONG;
        fd = create_0600(path);
        if (fd == -EEXIST && (fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
                fd = -errno;
        if (fd < 0)
                return fd;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
                len = pread(fd, pid, sizeof(pid) - 1, 0);
                pid[len > 0 ? len : 0] = '\0';
                *ret_holder_pid = strtol(pid, NULL, 10);
                close(fd);
                return e;
        }
        /* the pid is only for the refusal message: a failure to write it is no failure */
        len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)len, 0) != len &&
            ftruncate(fd, 0) != 0)
                log_debug("store.lock_pid", "path=%s error=\"%s\"", be->path, strerror(errno));
        be->lock_fd = fd;
        warn_if_open_to_others(be->path);
        return 0;
}

static int sq_begin(struct store_backend *be)
{
        sqlite3_stmt *st = stmt(be, Q_BEGIN);

        return st ? run(be, st) : -EIO;
}

static int sq_commit(struct store_backend *be)
{
        sqlite3_stmt *st = stmt(be, Q_COMMIT);

        return st ? run(be, st) : -EIO;
}

static void sq_rollback(struct store_backend *be)
{
        sqlite3_stmt *st = stmt(be, Q_ROLLBACK);

        /* after some errors SQLite has already rolled back: then there is nothing to do */
        if (st && sqlite3_get_autocommit(be->db) == 0)
                run(be, st);
}

static int sq_webhook_get(struct store_backend *be, const char *webhook_id,
                          struct store_webhook *ret)
{
        sqlite3_stmt *st = stmt(be, Q_WEBHOOK_GET);
        int rc, r = 0;

        if (!st)
                return -EIO;
        bind_text(st, 1, webhook_id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const void *h = sqlite3_column_blob(st, 0);
                memset(ret, 0, sizeof(*ret));
                ret->webhook_id = webhook_id;
                /* a damaged hash matches nothing: the id is then a conflict, never a replay */
                if (h && sqlite3_column_bytes(st, 0) == 32)
                        memcpy(ret->body_sha256, h, 32);
                ret->order_id = kept(be, K_WEBHOOK, sqlite3_column_text(st, 1));
                if (store_outcome_parse(col_text(st, 2), &ret->outcome) < 0)
                        ret->outcome = STORE_PUT_ACCEPTED;
                ret->received_at = sqlite3_column_int64(st, 3);
        } else {
                r = rc == SQLITE_DONE ? -ENOENT : sql_errno(rc);
        }
        sqlite3_reset(st);
        return r;
}

static int sq_webhook_add(struct store_backend *be, const struct store_webhook *w)
{
        sqlite3_stmt *st = stmt(be, Q_WEBHOOK_ADD);

        if (!st)
                return -EIO;
        bind_text(st, 1, w->webhook_id);
        sqlite3_bind_blob(st, 2, w->body_sha256, 32, SQLITE_STATIC);
        bind_text(st, 3, w->order_id);
        bind_text(st, 4, store_outcome_name(w->outcome));
        sqlite3_bind_int64(st, 5, w->received_at);
        return run(be, st);
}

static int sq_webhook_prune(struct store_backend *be, int64_t before_ms)
{
        sqlite3_stmt *st = stmt(be, Q_WEBHOOK_PRUNE);
        int r;

        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, before_ms);
        r = run(be, st);
        return r < 0 ? r : sqlite3_changes(be->db);
}

static int sq_order_get(struct store_backend *be, const char *order_id, bool with_json,
                        struct store_order *ret)
{
        sqlite3_stmt *st = stmt(be, with_json ? Q_ORDER_GET_JSON : Q_ORDER_GET);
        int rc, r = 0;

        if (!st)
                return -EIO;
        bind_text(st, 1, order_id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                ret->order_id = order_id;
                ret->site = kept(be, K_ORDER_SITE, sqlite3_column_text(st, 0));
                ret->rev = sqlite3_column_int64(st, 1);
                ret->has_version = sqlite3_column_int(st, 2);
                ret->version = sqlite3_column_int64(st, 3);
                ret->has_updated_at = sqlite3_column_int(st, 4);
                ret->updated_at = sqlite3_column_int64(st, 5);
                ret->received_at = sqlite3_column_int64(st, 6);
                ret->first_received_at = sqlite3_column_int64(st, 7);
                ret->json = with_json ? kept(be, K_ORDER_JSON, sqlite3_column_text(st, 8)) : NULL;
        } else {
                r = rc == SQLITE_DONE ? -ENOENT : sql_errno(rc);
        }
        sqlite3_reset(st);
        return r;
}

static int sq_order_put(struct store_backend *be, const struct store_order *o)
{
        sqlite3_stmt *st = stmt(be, Q_ORDER_PUT);

        if (!st)
                return -EIO;
        bind_text(st, 1, o->order_id);
        bind_text(st, 2, o->site);
        sqlite3_bind_int64(st, 3, o->rev);
        sqlite3_bind_int(st, 4, o->has_version);
        sqlite3_bind_int64(st, 5, o->version);
        sqlite3_bind_int(st, 6, o->has_updated_at);
        sqlite3_bind_int64(st, 7, o->updated_at);
        bind_text(st, 8, o->json);
        sqlite3_bind_int64(st, 9, o->received_at);
        sqlite3_bind_int64(st, 10, o->first_received_at);
        return run(be, st);
}

static int sq_history_add(struct store_backend *be, const struct store_history *h, int64_t *ret_rev)
{
        sqlite3_stmt *st = stmt(be, Q_HISTORY_ADD);
        int r;

        if (!st)
                return -EIO;
        bind_text(st, 1, h->order_id);
        if (h->has_version)
                sqlite3_bind_int64(st, 2, h->version);
        sqlite3_bind_int64(st, 3, h->received_at);
        bind_text(st, 4, h->source);
        bind_text(st, 5, store_outcome_name(h->outcome));
        bind_text(st, 6, h->json);
        if (h->rev > 0) /* else NULL: the next rev */
                sqlite3_bind_int64(st, 7, h->rev);
        if ((r = run(be, st)) == 0)
                *ret_rev = sqlite3_last_insert_rowid(be->db);
        return r;
}

/* Steps `st` to its end, handing each row to `row`; resets it in every case. */
static int walk(sqlite3_stmt *st, int (*row)(sqlite3_stmt *st, void *ctx), void *ctx)
{
        int rc, r = 0;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                if ((r = row(st, ctx)) != 0)
                        break;
        if (r == 0 && rc != SQLITE_DONE)
                r = sql_errno(rc);
        sqlite3_reset(st);
        return r < 0 ? r : 0;
}

struct walk_ctx {
        void *cb;
        void *arg;
        const char *order_id;
};

static int history_row(sqlite3_stmt *st, void *ctx)
{
        struct walk_ctx *w = ctx;
        int (*cb)(void *, const struct store_history *) = w->cb;
        struct store_history h = {
            .rev = sqlite3_column_int64(st, 0),
            .order_id = w->order_id,
            .has_version = sqlite3_column_type(st, 1) != SQLITE_NULL,
            .version = sqlite3_column_int64(st, 1),
            .received_at = sqlite3_column_int64(st, 2),
            .source = col_text(st, 3),
            .json = col_text(st, 5),
        };

        if (store_outcome_parse(col_text(st, 4), &h.outcome) < 0)
                return -EIO;
        return cb(w->arg, &h);
}

static int sq_history_list(struct store_backend *be, const char *order_id, size_t limit,
                           int (*cb)(void *arg, const struct store_history *h), void *arg)
{
        sqlite3_stmt *st = stmt(be, Q_HISTORY_LIST);
        struct walk_ctx w = {(void *)cb, arg, order_id};

        if (!st)
                return -EIO;
        bind_text(st, 1, order_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
        return walk(st, history_row, &w);
}

struct order_walk_ctx {
        int (*cb)(void *arg, const struct store_order *o);
        void *arg;
};

static int order_row(sqlite3_stmt *st, void *ctx)
{
        struct order_walk_ctx *w = ctx;
        struct store_order o = {
            .order_id = col_text(st, 0),
            .site = col_text(st, 1),
            .rev = sqlite3_column_int64(st, 2),
            .has_version = sqlite3_column_int(st, 3),
            .version = sqlite3_column_int64(st, 4),
            .has_updated_at = sqlite3_column_int(st, 5),
            .updated_at = sqlite3_column_int64(st, 6),
            .received_at = sqlite3_column_int64(st, 7),
            .first_received_at = sqlite3_column_int64(st, 8),
            .json = col_text(st, 9),
        };

        return w->cb(w->arg, &o);
}

static int sq_order_walk(struct store_backend *be, int64_t after_ms, bool by_first, size_t offset,
                         size_t limit,
                         int (*cb)(void *arg, const struct store_order *o), void *arg,
                         int64_t *ret_total)
{
        sqlite3_stmt *st = stmt(be, Q_ORDER_COUNT);
        struct order_walk_ctx w = {cb, arg};
        int rc;

        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, after_ms);
        rc = sqlite3_step(st);
        *ret_total = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
                return sql_errno(rc);
        if (!(st = stmt(be, by_first ? Q_ORDER_WALK_FIRST : Q_ORDER_WALK)))
                return -EIO;
        sqlite3_bind_int64(st, 1, after_ms);
        sqlite3_bind_int64(st, 2, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
        sqlite3_bind_int64(st, 3, offset > INT64_MAX ? INT64_MAX : (sqlite3_int64)offset);
        return walk(st, order_row, &w);
}

/* A delivery row from DELIVERY_COLS; its strings live as long as the statement's row. */
static int read_delivery(sqlite3_stmt *st, struct store_delivery *d)
{
        d->sink = col_text(st, 0);
        d->order_id = col_text(st, 1);
        if (store_state_parse(col_text(st, 2), &d->state) < 0)
                return -EIO;
        d->want_rev = sqlite3_column_int64(st, 3);
        d->sent_rev = sqlite3_column_int64(st, 4);
        d->done_rev = sqlite3_column_int64(st, 5);
        d->attempts = sqlite3_column_int64(st, 6);
        d->waits = sqlite3_column_int64(st, 7);
        d->next_at = sqlite3_column_int64(st, 8);
        d->first_failed_at = sqlite3_column_int64(st, 9);
        d->uncertain_at = sqlite3_column_int64(st, 10);
        d->updated_at = sqlite3_column_int64(st, 11);
        d->last_error = col_text(st, 12);
        d->lease_owner = col_text(st, 13);
        d->requested = sqlite3_column_int(st, 14) != 0;
        d->pending_since = sqlite3_column_int64(st, 15);
        return 0;
}

static int sq_delivery_get(struct store_backend *be, const char *sink, const char *order_id,
                           struct store_delivery *ret)
{
        sqlite3_stmt *st = stmt(be, Q_DELIVERY_GET);
        int rc, r;

        if (!st)
                return -EIO;
        bind_text(st, 1, sink);
        bind_text(st, 2, order_id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && (r = read_delivery(st, ret)) == 0) {
                ret->sink = sink;
                ret->order_id = order_id;
                ret->last_error = kept(be, K_LAST_ERROR, sqlite3_column_text(st, 12));
                ret->lease_owner = kept(be, K_LEASE_OWNER, sqlite3_column_text(st, 13));
        } else if (rc != SQLITE_ROW) {
                r = rc == SQLITE_DONE ? -ENOENT : sql_errno(rc);
        }
        sqlite3_reset(st);
        return r;
}

static int sq_delivery_put(struct store_backend *be, const struct store_delivery *d)
{
        sqlite3_stmt *st = stmt(be, Q_DELIVERY_PUT);

        if (!st)
                return -EIO;
        bind_text(st, 1, d->sink);
        bind_text(st, 2, d->order_id);
        bind_text(st, 3, store_state_name(d->state));
        sqlite3_bind_int64(st, 4, d->want_rev);
        sqlite3_bind_int64(st, 5, d->sent_rev);
        sqlite3_bind_int64(st, 6, d->done_rev);
        sqlite3_bind_int64(st, 7, d->attempts);
        sqlite3_bind_int64(st, 8, d->waits);
        sqlite3_bind_int64(st, 9, d->next_at);
        sqlite3_bind_int64(st, 10, d->first_failed_at);
        sqlite3_bind_int64(st, 11, d->uncertain_at);
        sqlite3_bind_int64(st, 12, d->updated_at);
        bind_text(st, 13, d->last_error);
        bind_text(st, 14, d->lease_owner);
        sqlite3_bind_int(st, 15, d->requested);
        sqlite3_bind_int64(st, 16, d->pending_since);
        return run(be, st);
}

struct delivery_walk_ctx {
        int (*cb)(void *arg, const struct store_delivery *d);
        void *arg;
        unsigned states;
};

static int delivery_row(sqlite3_stmt *st, void *ctx)
{
        struct delivery_walk_ctx *w = ctx;
        struct store_delivery d;

        if (read_delivery(st, &d) < 0)
                return -EIO;
        if (w->states && !(w->states & (1u << d.state)))
                return 0;
        return w->cb(w->arg, &d);
}

static int sq_delivery_walk(struct store_backend *be, const struct store_filter *f,
                            int (*cb)(void *arg, const struct store_delivery *d), void *arg)
{
        sqlite3_stmt *st = stmt(be, f->sink       ? Q_DELIVERY_WALK_SINK
                                    : f->order_id ? Q_DELIVERY_WALK_ORDER
                                                  : Q_DELIVERY_WALK);
        struct delivery_walk_ctx w = {cb, arg, f->states};

        if (!st)
                return -EIO;
        bind_text(st, 1, f->sink);
        bind_text(st, 2, f->order_id);
        sqlite3_bind_int64(st, 3, f->next_at_max);
        return walk(st, delivery_row, &w);
}

struct due_ctx {
        int (*cb)(void *arg, const struct store_delivery *d, const struct store_order *o);
        void *arg;
};

static int due_row(sqlite3_stmt *st, void *ctx)
{
        struct due_ctx *w = ctx;
        struct store_delivery d;
        struct store_order o = {0};

        if (read_delivery(st, &d) < 0)
                return -EIO;
        o.order_id = d.order_id;
        o.rev = sqlite3_column_int64(st, N_DELIVERY_COLS);
        o.json = col_text(st, N_DELIVERY_COLS + 1);
        o.received_at = sqlite3_column_int64(st, N_DELIVERY_COLS + 2);
        return w->cb(w->arg, &d, &o);
}

static int sq_delivery_due(struct store_backend *be, const char *sink, int64_t now_ms,
                           int (*cb)(void *arg, const struct store_delivery *d,
                                     const struct store_order *o),
                           void *arg)
{
        sqlite3_stmt *st = stmt(be, Q_DELIVERY_DUE);
        struct due_ctx w = {cb, arg};

        if (!st)
                return -EIO;
        bind_text(st, 1, sink);
        sqlite3_bind_int64(st, 2, now_ms);
        return walk(st, due_row, &w);
}

static int sq_delivery_next(struct store_backend *be, const char *sink, int64_t *ret_min)
{
        sqlite3_stmt *st = stmt(be, Q_DELIVERY_NEXT);

        if (!st)
                return -EIO;
        bind_text(st, 1, sink);
        return one_int(st, STORE_NEVER, ret_min);
}

static int count_row(sqlite3_stmt *st, void *ctx)
{
        int64_t *c = ctx;
        enum store_state s;

        if (store_state_parse(col_text(st, 0), &s) == 0)
                c[s] = sqlite3_column_int64(st, 1);
        return 0;
}

static int sq_delivery_count(struct store_backend *be, const char *sink,
                             int64_t ret[STORE_N_STATES])
{
        sqlite3_stmt *st = stmt(be, Q_DELIVERY_COUNT);
        int64_t c[STORE_N_STATES] = {0};
        int r;

        if (!st)
                return -EIO;
        bind_text(st, 1, sink);
        if ((r = walk(st, count_row, c)) == 0)
                memcpy(ret, c, sizeof(c));
        return r;
}

static int sq_delivery_oldest(struct store_backend *be, const char *sink, int64_t *ret_min)
{
        sqlite3_stmt *st = stmt(be, Q_DELIVERY_OLDEST);

        if (!st)
                return -EIO;
        bind_text(st, 1, sink);
        return one_int(st, 0, ret_min);
}

static int name_row(sqlite3_stmt *st, void *ctx)
{
        struct walk_ctx *w = ctx;
        int (*cb)(void *, const char *) = w->cb;

        return cb(w->arg, col_text(st, 0));
}

static int sq_delivery_sinks(struct store_backend *be, int (*cb)(void *arg, const char *name),
                             void *arg)
{
        sqlite3_stmt *st = stmt(be, Q_DELIVERY_SINKS);
        struct walk_ctx w = {(void *)cb, arg, NULL};

        return st ? walk(st, name_row, &w) : -EIO;
}

static int add_attempt(struct store_backend *be, enum query q, const struct store_attempt *a)
{
        sqlite3_stmt *st = stmt(be, q);
        int i = 1;

        if (!st)
                return -EIO;
        bind_text(st, i++, a->sink);
        bind_text(st, i++, a->order_id);
        sqlite3_bind_int64(st, i++, a->rev);
        sqlite3_bind_int64(st, i++, a->at);
        if (q == Q_ATTEMPT_ADD)
                bind_text(st, i++, store_kind_name(a->kind));
        bind_text(st, i, a->text ? a->text : q == Q_DEAD_ADD ? "" : NULL);
        return run(be, st);
}

static int sq_attempt_add(struct store_backend *be, const struct store_attempt *a)
{
        return add_attempt(be, Q_ATTEMPT_ADD, a);
}

static int sq_dead_letter_add(struct store_backend *be, const struct store_attempt *a)
{
        return add_attempt(be, Q_DEAD_ADD, a);
}

static int attempt_row(sqlite3_stmt *st, void *ctx)
{
        struct walk_ctx *w = ctx;
        int (*cb)(void *, const struct store_attempt *) = w->cb;
        struct store_attempt a = {
            .sink = col_text(st, 0),
            .order_id = w->order_id,
            .rev = sqlite3_column_int64(st, 1),
            .at = sqlite3_column_int64(st, 2),
            .text = col_text(st, 4),
        };

        /* a dead letter has no outcome column: it is a PERMFAIL */
        if (store_kind_parse(col_text(st, 3), &a.kind) < 0)
                a.kind = STORE_PERMFAIL;
        return cb(w->arg, &a);
}

static int list_attempts(struct store_backend *be, enum query q, const char *order_id, size_t limit,
                         int (*cb)(void *arg, const struct store_attempt *a), void *arg)
{
        sqlite3_stmt *st = stmt(be, q);
        struct walk_ctx w = {(void *)cb, arg, order_id};

        if (!st)
                return -EIO;
        bind_text(st, 1, order_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
        return walk(st, attempt_row, &w);
}

static int sq_attempt_list(struct store_backend *be, const char *order_id, size_t limit,
                           int (*cb)(void *arg, const struct store_attempt *a), void *arg)
{
        return list_attempts(be, Q_ATTEMPT_LIST, order_id, limit, cb, arg);
}

static int sq_dead_letter_list(struct store_backend *be, const char *order_id, size_t limit,
                               int (*cb)(void *arg, const struct store_attempt *a), void *arg)
{
        return list_attempts(be, Q_DEAD_LIST, order_id, limit, cb, arg);
}

static int get_value(struct store_backend *be, enum query q, const char *a, const char *b,
                     const char **ret)
{
        sqlite3_stmt *st = stmt(be, q);
        int rc, r = 0;

        if (!st)
                return -EIO;
        bind_text(st, 1, a);
        bind_text(st, 2, b);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *ret = kept(be, K_VALUE, sqlite3_column_text(st, 0));
        else
                r = rc == SQLITE_DONE ? -ENOENT : sql_errno(rc);
        sqlite3_reset(st);
        return r;
}

static int sq_link_get(struct store_backend *be, const char *order_id, const char *kind,
                       const char **ret_remote)
{
        return get_value(be, Q_LINK_GET, order_id, kind, ret_remote);
}

static int sq_link_set(struct store_backend *be, const char *order_id, const char *kind,
                       const char *remote)
{
        sqlite3_stmt *st = stmt(be, Q_LINK_SET);

        if (!st)
                return -EIO;
        bind_text(st, 1, order_id);
        bind_text(st, 2, kind);
        bind_text(st, 3, remote);
        return run(be, st);
}

static int link_row(sqlite3_stmt *st, void *ctx)
{
        struct walk_ctx *w = ctx;
        int (*cb)(void *, const char *, const char *) = w->cb;

        return cb(w->arg, col_text(st, 0), col_text(st, 1));
}

static int sq_link_list(struct store_backend *be, const char *order_id,
                        int (*cb)(void *arg, const char *kind, const char *remote), void *arg)
{
        sqlite3_stmt *st = stmt(be, Q_LINK_LIST);
        struct walk_ctx w = {(void *)cb, arg, order_id};

        if (!st)
                return -EIO;
        bind_text(st, 1, order_id);
        return walk(st, link_row, &w);
}

static int sq_meta_get(struct store_backend *be, const char *key, const char **ret_value)
{
        return get_value(be, Q_META_GET, key, NULL, ret_value);
}

static int sq_meta_set(struct store_backend *be, const char *key, const char *value,
                       bool only_if_absent)
{
        sqlite3_stmt *st = stmt(be, only_if_absent ? Q_META_ADD : Q_META_SET);

        if (!st)
                return -EIO;
        bind_text(st, 1, key);
        bind_text(st, 2, value);
        return run(be, st);
}

static int meta_row(sqlite3_stmt *st, void *ctx)
{
        struct walk_ctx *w = ctx;
        int (*cb)(void *, const char *, const char *) = w->cb;

        return cb(w->arg, col_text(st, 0), col_text(st, 1));
}

static int sq_meta_list(struct store_backend *be,
                        int (*cb)(void *arg, const char *key, const char *value), void *arg)
{
        sqlite3_stmt *st = stmt(be, Q_META_LIST);
        struct walk_ctx w = {(void *)cb, arg, NULL};

        return st ? walk(st, meta_row, &w) : -EIO;
}

/* One window of a retention walk: the rows after `after`, at most `limit`, by id. */
static int prune_window(struct store_backend *be, enum query last_q, enum query prune_q,
                        int64_t before_ms, int64_t after, size_t limit, int64_t *ret_last)
{
        sqlite3_stmt *st;
        int64_t last;
        int r;

        if ((r = get_int(be, last_q, after, limit > INT64_MAX ? INT64_MAX : (int64_t)limit,
                         after, &last)) < 0)
                return r;
        if (last == after) {
                *ret_last = after;
                return 0;
        }
        if (!(st = stmt(be, prune_q)))
                return -EIO;
        sqlite3_bind_int64(st, 1, before_ms);
        sqlite3_bind_int64(st, 2, after);
        sqlite3_bind_int64(st, 3, last);
        if ((r = run(be, st)) < 0)
                return r;
        *ret_last = last;
        return sqlite3_changes(be->db);
}

static int sq_history_prune(struct store_backend *be, int64_t before_ms, int64_t after,
                            size_t limit, int64_t *ret_last)
{
        return prune_window(be, Q_HISTORY_LAST, Q_HISTORY_PRUNE, before_ms, after, limit,
                            ret_last);
}

static int sq_attempt_prune(struct store_backend *be, int64_t before_ms, int64_t after,
                            size_t limit, int64_t *ret_last)
{
        return prune_window(be, Q_ATTEMPT_LAST, Q_ATTEMPT_PRUNE, before_ms, after, limit,
                            ret_last);
}

static int sq_compact(struct store_backend *be, int64_t pages, int64_t *ret_bytes)
{
        int64_t before, after;
        char sql[64];
        int r;

        if ((r = sq_size(be, &before)) < 0)
                return r;
        snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%lld)", (long long)pages);
        if ((r = exec(be, sql)) < 0 || (r = sq_size(be, &after)) < 0)
                return r;
        *ret_bytes = before > after ? before - after : 0;
        return 0;
}

static int sq_compact_enable(struct store_backend *be)
{
        int64_t mode = -1;
        int r;

        if ((r = get_int(be, Q_AUTO_VACUUM, 0, 0, -1, &mode)) < 0)
                return r;
        if (mode == 2) /* INCREMENTAL */
                return 0;
        /* auto_vacuum is in the file's header: an existing file takes a new mode only by
         * being rewritten (VACUUM, which in WAL mode passes every page through the WAL;
         * the checkpoint gives that space back) */
        if ((r = exec(be, "PRAGMA auto_vacuum=INCREMENTAL")) < 0 || (r = exec(be, "VACUUM")) < 0)
                return r;
        exec(be, "PRAGMA wal_checkpoint(TRUNCATE)"); /* only space: a failure is no failure */
        if ((r = get_int(be, Q_AUTO_VACUUM, 0, 0, -1, &mode)) < 0)
                return r;
        return mode == 2 ? 1 : -EIO;
}

const struct store_backend_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .errmsg = sq_errmsg,
    .lock = sq_lock,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .webhook_get = sq_webhook_get,
    .webhook_add = sq_webhook_add,
    .webhook_prune = sq_webhook_prune,
    .order_get = sq_order_get,
    .order_put = sq_order_put,
    .order_walk = sq_order_walk,
    .history_add = sq_history_add,
    .history_list = sq_history_list,
    .delivery_get = sq_delivery_get,
    .delivery_put = sq_delivery_put,
    .delivery_walk = sq_delivery_walk,
    .delivery_due = sq_delivery_due,
    .delivery_next = sq_delivery_next,
    .delivery_count = sq_delivery_count,
    .delivery_oldest = sq_delivery_oldest,
    .size = sq_size,
    .delivery_sinks = sq_delivery_sinks,
    .attempt_add = sq_attempt_add,
    .attempt_list = sq_attempt_list,
    .dead_letter_add = sq_dead_letter_add,
    .dead_letter_list = sq_dead_letter_list,
    .link_get = sq_link_get,
    .link_set = sq_link_set,
    .link_list = sq_link_list,
    .meta_get = sq_meta_get,
    .meta_set = sq_meta_set,
    .meta_list = sq_meta_list,
    .history_prune = sq_history_prune,
    .attempt_prune = sq_attempt_prune,
    .compact = sq_compact,
    .compact_enable = sq_compact_enable,
};
