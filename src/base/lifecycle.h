/*
 * Where the daemon is in its life, for /readyz and the watchdog: starting (the store and
 * listeners are being set up), ready (serve's steps are done: the store is open and
 * recovered, the sinks and the listener run), stopping (a signal came: no new work). One
 * process-wide value; serve sets it, anything reads it. Each change is also sent to
 * systemd (sd_notify: READY=1, STOPPING=1, with a STATUS= line) when $NOTIFY_SOCKET is set.
 */
#pragma once

enum lifecycle { LIFECYCLE_STARTING, LIFECYCLE_READY, LIFECYCLE_STOPPING };

void lifecycle_set(enum lifecycle state);
enum lifecycle lifecycle_get(void);
const char *lifecycle_name(enum lifecycle state); /* "starting", "ready", "stopping" */
