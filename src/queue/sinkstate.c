/*
 * The sinks' running state (sinkstate.h): a small fixed table under one mutex. Readers
 * get copies, so a view never changes under a reader and no pointer into the table
 * leaves this file.
 */
#include "queue/sinkstate.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/clock.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sinkstate_view table[SINKSTATE_MAX];
static size_t n_table;

static const char *const pause_names[] = {
    [SINK_RUNNING] = "running",
    [SINK_PAUSED_REMOTE] = "paused_remote",
    [SINK_PAUSED_AUTH] = "paused_auth",
    [SINK_PAUSED_STORE] = "paused_store",
};

/* The row of `name`, or NULL; under `lock`. */
static struct sinkstate_view *find(const char *name)
{
        for (size_t i = 0; i < n_table; i++)
                if (strcmp(table[i].name, name) == 0)
                        return &table[i];
        return NULL;
}

void sinkstate_register(const char *name)
{
        pthread_mutex_lock(&lock);
        if (!find(name) && n_table < SINKSTATE_MAX) {
                struct sinkstate_view *v = &table[n_table++];
                memset(v, 0, sizeof(*v));
                snprintf(v->name, sizeof(v->name), "%s", name);
                v->beat_ms = clock_mono_ms();
        }
        pthread_mutex_unlock(&lock);
}

void sinkstate_beat(const char *name)
{
        struct sinkstate_view *v;

        pthread_mutex_lock(&lock);
        if ((v = find(name)))
                v->beat_ms = clock_mono_ms();
        pthread_mutex_unlock(&lock);
}

void sinkstate_pass_begin(const char *name)
{
        struct sinkstate_view *v;

        pthread_mutex_lock(&lock);
        if ((v = find(name)))
                v->beat_ms = v->pass_started_ms = clock_mono_ms();
        pthread_mutex_unlock(&lock);
}

void sinkstate_pass_end(const char *name)
{
        struct sinkstate_view *v;

        pthread_mutex_lock(&lock);
        if ((v = find(name))) {
                v->pass_started_ms = 0;
                v->beat_ms = clock_mono_ms();
        }
        pthread_mutex_unlock(&lock);
}

static enum sink_pause pause_of(int status)
{
        switch (status) {
        case 0:
                return SINK_RUNNING;
        case -EACCES:
                return SINK_PAUSED_AUTH;
        case -EIO:
                return SINK_PAUSED_STORE;
        }
        return SINK_PAUSED_REMOTE;
}

bool sinkstate_pass_result(const char *name, int status, int64_t until_ms, const char *reason)
{
        struct sinkstate_view *v;
        enum sink_pause p = pause_of(status);
        bool changed = false;

        if (status == -ECANCELED)
                return false;
        pthread_mutex_lock(&lock);
        if ((v = find(name))) {
                int64_t now = clock_wall_ms();
                changed = v->pause != p;
                if (p == SINK_RUNNING) {
                        v->failures = 0;
                        v->last_ok_ms = now;
                        v->paused_at_ms = v->paused_until_ms = 0;
                        v->reason[0] = '\0';
                } else {
                        v->failures++;
                        if (changed)
                                v->paused_at_ms = now;
                        v->paused_until_ms = until_ms;
                        snprintf(v->reason, sizeof(v->reason), "%s", reason ? reason : "");
                }
                v->pause = p;
        }
        pthread_mutex_unlock(&lock);
        return changed;
}

size_t sinkstate_list(struct sinkstate_view *out, size_t max)
{
        size_t n;

        pthread_mutex_lock(&lock);
        n = n_table < max ? n_table : max;
        memcpy(out, table, n * sizeof(*out));
        pthread_mutex_unlock(&lock);
        return n;
}

int sinkstate_get(const char *name, struct sinkstate_view *ret)
{
        struct sinkstate_view *v;
        int r = -ENOENT;

        pthread_mutex_lock(&lock);
        if ((v = find(name))) {
                *ret = *v;
                r = 0;
        }
        pthread_mutex_unlock(&lock);
        return r;
}

enum sink_stall sinkstate_stall(const struct sinkstate_view *v, int64_t mono_ms, int64_t wall_ms,
                                int64_t limit_ms)
{
        if (v->pass_started_ms > 0)
                return mono_ms - v->pass_started_ms > limit_ms ? SINK_STALL_PASS : SINK_STALL_NONE;
        if (mono_ms - v->beat_ms > limit_ms &&
            (v->pause == SINK_RUNNING || wall_ms - v->paused_until_ms > limit_ms))
                return SINK_STALL_LOOP;
        return SINK_STALL_NONE;
}

const char *sinkstate_pause_name(enum sink_pause p)
{
        return (unsigned)p < sizeof(pause_names) / sizeof(pause_names[0]) ? pause_names[p]
                                                                           : "unknown";
}

int sinkstate_pause_parse(const char *text, enum sink_pause *ret)
{
        for (size_t i = 0; i < sizeof(pause_names) / sizeof(pause_names[0]); i++)
                if (text && strcmp(text, pause_names[i]) == 0) {
                        *ret = (enum sink_pause)i;
                        return 0;
                }
        return -EINVAL;
}

void sinkstate_meta_key(const char *name, char *buf, size_t size)
{
        snprintf(buf, size, "sink.%s.state", name);
}

char *sinkstate_meta_json(const struct sinkstate_view *v)
{
        json_t *o = json_pack("{s:s, s:I, s:I, s:s, s:I}", "pause", sinkstate_pause_name(v->pause),
                              "since", (json_int_t)v->paused_at_ms, "until",
                              (json_int_t)v->paused_until_ms, "reason", v->reason, "pid",
                              (json_int_t)getpid());
        char *text = json_dumps(o, JSON_COMPACT);

        json_decref(o);
        return text;
}

int sinkstate_meta_parse(const char *json, struct sinkstate_view *ret, long *ret_pid)
{
        json_t *o = json_loads(json, 0, NULL);
        json_t *since = json_object_get(o, "since"), *until = json_object_get(o, "until");
        json_t *reason = json_object_get(o, "reason"), *pid = json_object_get(o, "pid");
        enum sink_pause p;
        int r = -EINVAL;

        if (json_is_object(o) &&
            sinkstate_pause_parse(json_string_value(json_object_get(o, "pause")), &p) == 0 &&
            json_is_integer(since) && json_is_integer(until) && json_is_string(reason) &&
            json_is_integer(pid)) {
                ret->pause = p;
                ret->paused_at_ms = json_integer_value(since);
                ret->paused_until_ms = json_integer_value(until);
                snprintf(ret->reason, sizeof(ret->reason), "%s", json_string_value(reason));
                if (ret_pid)
                        *ret_pid = (long)json_integer_value(pid);
                r = 0;
        }
        json_decref(o);
        return r;
}

void sinkstate_reset(void)
{
        pthread_mutex_lock(&lock);
        n_table = 0;
        pthread_mutex_unlock(&lock);
}
