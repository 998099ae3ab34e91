/*
 * The verbs of the command line, one file each (cli/VERB.c). Each takes the loaded
 * configuration and the arguments left after the options, and returns the process exit
 * status: 0 ok, 1 failure, 2 usage.
 */
#pragma once

#include "config/config.h"

struct cli_opts {
        int json;          /* --json */
        const char *sink;  /* --sink NAME */
        int repair;        /* --repair */
        const char *since; /* --since DATE */
        int dead;          /* --dead */
        int limit;         /* --limit N (0: not given) */
        const char *from;  /* --from PATH */
};

int cli_serve(const struct config *cfg, const struct cli_opts *o, int argc, char **argv);
int cli_check(const struct config *cfg, const struct cli_opts *o, int argc, char **argv);
int cli_import(const struct config *cfg, const struct cli_opts *o, int argc, char **argv);
int cli_status(const struct config *cfg, const struct cli_opts *o, int argc, char **argv);
int cli_retry(const struct config *cfg, const struct cli_opts *o, int argc, char **argv);
int cli_stages(const struct config *cfg, const struct cli_opts *o, int argc, char **argv);
int cli_migrate(const struct config *cfg, const struct cli_opts *o, int argc, char **argv);
int cli_reconcile(const struct config *cfg, const struct cli_opts *o, int argc, char **argv);
