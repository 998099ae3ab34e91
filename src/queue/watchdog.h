/*
 * systemd's watchdog (WatchdogSec= in the unit, $WATCHDOG_USEC here): WATCHDOG=1 is sent
 * every half interval while every sink's delivery loop is alive, and withheld while one
 * is wedged, so that systemd restarts the daemon (Restart=on-failure) instead of keeping
 * a process that accepts orders and never delivers them.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "queue/sinkstate.h"

struct watchdog;

/* Starts the pinging thread when systemd asked for a watchdog (sd_watchdog_enabled);
 * otherwise sets *ret to NULL and returns 0. `poll_interval_ms` is [delivery]'s: an idle
 * loop goes round at least that often. Negative errno when the thread cannot start. */
int watchdog_start(int64_t poll_interval_ms, struct watchdog **ret);

/* Stops and joins the thread; NULL is fine. Returns NULL. */
struct watchdog *watchdog_stop(struct watchdog *w);

