/*
 * POST /v1/orders: verify the signature, validate the snapshot, store it, answer. The
 * answer goes out only after the snapshot is committed. Requests that arrive together
 * are committed together (group commit): a committer thread takes everything queued,
 * writes it in one transaction with one fsync, then resumes the suspended connections.
 */
#pragma once

#include <stddef.h>

#include <microhttpd.h>

#include "config/config.h"
#include "queue/dispatch.h"

struct ingest;

/* What the HTTP layer hands over once a request body is complete. */
struct ingest_request {
        const char *body;
        size_t len;
        const char *webhook_id, *webhook_timestamp, *webhook_signature;
};

/* The verdict, filled either at once (a refusal) or after the commit. */
struct ingest_answer {
        unsigned status;
        char *json; /* response body, owned */
        unsigned retry_after_s; /* 0 = no Retry-After header */
};

/* Opens its own store connection. `wake` (n of them) are told when work is committed. */
int ingest_new(const struct config *cfg, struct dispatch *const *wake, size_t n_wake,
               struct ingest **ret);
struct ingest *ingest_free(struct ingest *in);

/* Checks the request and queues it for the committer. Returns 1 when `ret` is filled now
 * (a refusal); 0 when `conn` was suspended: the committer fills *ret_job and resumes the
 * connection, and the HTTP layer then calls ingest_job_finish. */
struct ingest_job;
int ingest_submit(struct ingest *in, struct MHD_Connection *conn, const struct ingest_request *req,
                  struct ingest_job **ret_job, struct ingest_answer *ret);

/* After resume: the job's answer (moved into `ret`); frees the job. */
void ingest_job_finish(struct ingest_job *job, struct ingest_answer *ret);

/* Quiesce: commit whatever is queued, resume everything. */
void ingest_drain(struct ingest *in);

/* Whether the last commit failed (for /healthz). */
int ingest_store_healthy(struct ingest *in);

void ingest_answer_clear(struct ingest_answer *a);
