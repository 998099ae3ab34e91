/* The portal's deal pipelines and stages: for `stages` and `check`, and a pipeline's stage
 * order for the sink (a configured @paid); see b24_stages.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "sinks/b24_client.h"

struct b24_stage {
        char *id;     /* STATUS_ID, with its "C<category>:" prefix outside the default pipeline */
        int64_t sort; /* SORT, or -1 when the portal gave none that reads as a number */
};

struct b24_pipeline {
        int64_t category_id;
        struct b24_stage *stages;
        size_t n;
};

/* `orderbridge stages`: print pipelines and stages; returns an exit status. */
int b24_print_stages(const struct config *cfg);

/* `orderbridge check`: every [bitrix24.map] stage exists in the configured pipeline.
 * Returns 0, 1 when a stage is missing (each one reported on stderr), or 2 when the
 * portal could not be asked. */
int b24_check_stages(const struct config *cfg);

/* Reads the stages of pipeline `category_id` from the portal (crm.status.list, as
 * `stages` does). 0 with *ret filled, or a b24_call code (-EAGAIN/-EACCES/-EINVAL) with
 * `err` filled and *ret untouched. A pipeline the portal does not have has no stages. */
int b24_pipeline_fetch(struct b24_client *c, int64_t category_id, struct b24_pipeline *ret,
                       struct b24_error *err);

/* Frees the stages; `p` is empty afterwards. */
void b24_pipeline_clear(struct b24_pipeline *p);

/* The stage's SORT, or -1 when the pipeline has no such stage (or `p` is NULL). */
int64_t b24_pipeline_sort(const struct b24_pipeline *p, const char *stage_id);
