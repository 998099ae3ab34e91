/*
 * What each sink's delivery loop is doing now: running, or paused (why, and until
 * when), its last good pass, whether it is inside a pass. The dispatcher writes it; the
 * operator's views read it — /healthz and /readyz, /metrics, the status page, the
 * watchdog. It lives in memory (one table per process, a mutex), and the dispatcher
 * also records each change of pause in the store's meta ("sink.NAME.state", see
 * sinkstate_meta_json) so that `orderbridge status`, another process, can show it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SINKSTATE_MAX 8

enum sink_pause {
        SINK_RUNNING,
        SINK_PAUSED_REMOTE, /* the remote failed as a whole (down, 429, 5xx): backing off */
        SINK_PAUSED_AUTH,   /* the remote refused our credentials: an operator must act */
        SINK_PAUSED_STORE,  /* the store failed a read or a mark that had to come first */
};

struct sinkstate_view {
        char name[32];
        enum sink_pause pause;
        int64_t paused_at_ms;    /* wall clock, when this pause began (0 when running) */
        int64_t paused_until_ms; /* wall clock, when the loop tries again */
        char reason[256];        /* the failed pass's words (never a secret) */
        int64_t failures;        /* failed passes in a row */
        int64_t last_ok_ms;      /* wall clock, the last pass that returned 0 (0: none yet) */
        int64_t pass_started_ms; /* monotonic, when the pass in progress began (0: idle) */
        int64_t beat_ms;         /* monotonic, the last time the loop went round */
};

/* Adds a sink to the table (serve, before its loop starts); again is harmless. */
void sinkstate_register(const char *name);

/* The loop went round (it is alive): before a take, after a wait. */
void sinkstate_beat(const char *name);

/* A pass begins (the sink has work) and ends. */
void sinkstate_pass_begin(const char *name);
void sinkstate_pass_end(const char *name);

/* A pass returned `status` (sink_ops.deliver's: 0, -EAGAIN, -EACCES, -EIO, -ECANCELED).
 * 0 ends a pause; -ECANCELED (stopping) changes nothing; any other pauses the sink until
 * `until_ms` (wall) with `reason`. Returns true when the pause state changed (a new pause,
 * another kind, or the end of one): the caller records it in the store then. */
bool sinkstate_pass_result(const char *name, int status, int64_t until_ms, const char *reason);

/* Copies every registered sink's state, in registration order; returns how many. */
size_t sinkstate_list(struct sinkstate_view *out, size_t max);

/* One sink's state: 0, or -ENOENT when it is not registered. */
int sinkstate_get(const char *name, struct sinkstate_view *ret);

/* Whether a loop is wedged by `limit_ms`, at `mono_ms` / `wall_ms` (the view's two
 * clocks): a pass that has run longer (SINK_STALL_PASS), or a loop that has not gone round
 * for longer (SINK_STALL_LOOP) — a paused loop sleeps until paused_until, so only when it
 * is that late past it. /healthz's stuck_pass/stuck_loop and the watchdog ask this. */
enum sink_stall {
        SINK_STALL_NONE,
        SINK_STALL_PASS,
        SINK_STALL_LOOP,
};
enum sink_stall sinkstate_stall(const struct sinkstate_view *v, int64_t mono_ms, int64_t wall_ms,
                                int64_t limit_ms);

/* "running", "paused_remote", "paused_auth", "paused_store"; sinkstate_pause_parse is its
 * inverse (-EINVAL). */
const char *sinkstate_pause_name(enum sink_pause p);
int sinkstate_pause_parse(const char *text, enum sink_pause *ret);

/* The store meta key and value that record a sink's pause for other processes:
 * "sink.NAME.state" and {"pause":"paused_auth","since":MS,"until":MS,"reason":"…",
 * "pid":N} (caller frees the value). */
void sinkstate_meta_key(const char *name, char *buf, size_t size);
char *sinkstate_meta_json(const struct sinkstate_view *v);

/* Reads such a value back (the CLI): 0, or -EINVAL when it is not one; `ret->name` is
 * left as it was. */
int sinkstate_meta_parse(const char *json, struct sinkstate_view *ret, long *ret_pid);

/* Forgets every sink (tests; serve at its end). */
void sinkstate_reset(void);
