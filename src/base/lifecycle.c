/* The daemon's stage of life (lifecycle.h): one atomic int. */
#include "base/lifecycle.h"

#include <stdatomic.h>

static _Atomic int current = LIFECYCLE_STARTING;

void lifecycle_set(enum lifecycle state)
{
        atomic_store(&current, (int)state);
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
