/*
 * Roles in a shared store: see role.h.
 */
#include "queue/role.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"

static pthread_once_t owner_once = PTHREAD_ONCE_INIT;
static char owner[128];

static void owner_init(void)
{
        char host[64] = "localhost";

        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(owner, sizeof(owner), "%s:%ld:%lld", host, (long)getpid(),
                 (long long)clock_wall_ms());
}

const char *role_owner(void)
{
        pthread_once(&owner_once, owner_init);
        return owner;
}

void role_init(struct role *r, const char *name, int64_t ttl_ms)
{
        memset(r, 0, sizeof(*r));
        snprintf(r->name, sizeof(r->name), "%s", name);
        snprintf(r->owner, sizeof(r->owner), "%s", role_owner());
        r->ttl_ms = ttl_ms;
        pthread_mutex_init(&r->lock, NULL);
}

void role_destroy(struct role *r)
{
        pthread_mutex_destroy(&r->lock);
}

/* Asks the store; updates what is held. Returns store_claim's answer. */
static int ask(struct role *r, struct store *st, int64_t *ret_left)
{
        int64_t asked = clock_mono_ms();
        bool had;
        int c = store_claim(st, r->name, r->owner, r->ttl_ms, ret_left);

        pthread_mutex_lock(&r->lock);
        had = r->until > clock_mono_ms();
        if (c > 0)
                r->until = asked + r->ttl_ms - r->ttl_ms / 5;
        else if (c == 0)
                r->until = 0;
        if (c == 2)
                r->taken = true;
        pthread_mutex_unlock(&r->lock);
        if (c == 2) /* store_claim says "taken" in a shared store only */
                log_info("role.taken", "role=%s owner=%s ttl_ms=%lld", r->name, r->owner,
                         (long long)r->ttl_ms);
        else if (c == 0 && had)
                log_warn("role.lost", "role=%s owner=%s hint=\"another server took it: this "
                         "one's renewals did not reach the store in time\"",
                         r->name, r->owner);
        else if (c < 0)
                log_warn("role.renew_failed", "role=%s error=\"%s\"", r->name, store_errmsg(st));
        return c;
}

bool role_hold(struct role *r, struct store *st, int64_t *ret_wait_ms)
{
        int64_t now = clock_mono_ms(), left = r->ttl_ms, until;
        bool held;

        pthread_mutex_lock(&r->lock);
        until = r->until;
        pthread_mutex_unlock(&r->lock);
        /* renewed once a third of the ttl has gone, not at every call */
        if (until - now < r->ttl_ms * 2 / 3)
                ask(r, st, &left);
        pthread_mutex_lock(&r->lock);
        held = r->until > clock_mono_ms();
        pthread_mutex_unlock(&r->lock);
        *ret_wait_ms = held ? 0 : left < 100 ? 100 : left > r->ttl_ms ? r->ttl_ms : left;
        return held;
}

void role_renew(struct role *r, struct store *st)
{
        int64_t until, left;

        pthread_mutex_lock(&r->lock);
        until = r->until;
        pthread_mutex_unlock(&r->lock);
        if (until > clock_mono_ms() && until - clock_mono_ms() < r->ttl_ms * 2 / 3)
                ask(r, st, &left);
}

bool role_taken(struct role *r)
{
        bool t;

        pthread_mutex_lock(&r->lock);
        t = r->taken;
        r->taken = false;
        pthread_mutex_unlock(&r->lock);
        return t;
}

void role_release(struct role *r, struct store *st)
{
        pthread_mutex_lock(&r->lock);
        r->until = 0;
        pthread_mutex_unlock(&r->lock);
        if (store_shared(st) && store_unclaim(st, r->name, r->owner) < 0)
                log_warn("role.release_failed", "role=%s error=\"%s\"", r->name,
                         store_errmsg(st));
}
