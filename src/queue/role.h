/*
 * A role one server at a time plays in a store several servers share: a sink's
 * deliveries, the Bitrix24 poll, the scheduled reconcile. It is a claim in the store
 * (store_claim) that its holder renews; when the holder dies, or loses the database for
 * longer than [store] claim_ttl_s, the claim lapses and the next server to ask takes the
 * role. With a store that is not shared (SQLite), the server lock holds every role and
 * role_hold always says so.
 *
 * The holder counts its claim as ending a fifth of the ttl before the store does, by its
 * own monotonic clock from before it asked: a server whose renewals fail stops playing
 * the role before another may start it.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct role {
        char name[64];
        char owner[128];
        int64_t ttl_ms;
        pthread_mutex_t lock;
        int64_t until; /* monotonic ms; 0: not held */
        bool taken;    /* taken (not renewed) since role_taken last asked */
};

void role_init(struct role *r, const char *name, int64_t ttl_ms);
void role_destroy(struct role *r);

/* "host:pid:start": this process, the same for every role it plays. */
const char *role_owner(void);

/* Takes or renews the role through `st`: true while this server plays it. When another
 * holds it, *ret_wait_ms says when to ask again. A store failure keeps what was held
 * until it runs out. */
bool role_hold(struct role *r, struct store *st, int64_t *ret_wait_ms);
/* Renews the role only when held and due for renewal (another thread's keeper). */
void role_renew(struct role *r, struct store *st);
/* True once after the role was taken rather than kept: the last holder's work in flight
 * is ownerless, and the remote may still count its last requests. */
bool role_taken(struct role *r);
/* Gives the role up (stopping), so that another server takes it at once. */
void role_release(struct role *r, struct store *st);
