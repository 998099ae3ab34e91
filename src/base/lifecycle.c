/*
 * The daemon's stage of life (lifecycle.h): one atomic int, and systemd told of each
 * change. sd_notify is a no-op without $NOTIFY_SOCKET, so outside systemd (a terminal, the
 * tests' plain runs, the CLI verbs) nothing is sent. A change is sent once: serve sets
 * STOPPING both when a signal comes and on its way out, and systemd needs one.
 */
#include "base/lifecycle.h"

#include <stdatomic.h>

#include <systemd/sd-daemon.h>

static _Atomic int current = LIFECYCLE_STARTING;

void lifecycle_set(enum lifecycle state)
{
        int was = atomic_exchange(&current, (int)state);

        if (was == (int)state)
                return;
        /* READY=1 is what makes `systemctl start` return (Type=notify): serve sets it only
         * once the store, the sinks, the intake, the sources, the listener and the
         * reconciler run, so a client that connects on READY is answered */
        if (state == LIFECYCLE_READY)
                (void)sd_notify(0, "READY=1\nSTATUS=ready: accepting orders, delivering");
        else if (state == LIFECYCLE_STOPPING)
                (void)sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing what was accepted");
}

enum lifecycle lifecycle_get(void)
{
        return (enum lifecycle)atomic_load(&current);
}

const char *lifecycle_name(enum lifecycle state)
{
        switch (state) {
        case LIFECYCLE_STARTING:
                return "starting";
        case LIFECYCLE_READY:
                return "ready";
        case LIFECYCLE_STOPPING:
                return "stopping";
        }
        return "unknown";
}
