/*
 * Bitrix24's answers: the success envelope {"result":…,"time":{…}}, the error envelope
 * {"error":"CODE","error_description":…} (CRM's HTTP 400 with an empty code), and batch
 * answers whose result / result_error sections are objects, or [] when empty. The first
 * byte picks the HTTP status the body came with; the rest is the body. Oracles: only an
 * HTTP 200 with a "result" is 0; every other answer is -EACCES, -EAGAIN or -EINVAL with a
 * terminated code; the batch sections handed out are objects or NULL, never the [] of an
 * empty one.
 */
#include "fuzz.h"

#include "sinks/b24_client.h"

static const long http_statuses[] = {200, 200, 200, 200, 400, 401, 403, 404,
                                     405, 429, 500, 502, 503, 302, 0,   204};

/* What the Bitrix24 sink does with a batch's per-command errors. */
static void walk_errors(json_t *errors)
{
        const char *key;
        json_t *e;

        json_object_foreach(errors, key, e)
        {
                const char *code = json_string_value(json_object_get(e, "error"));
                int st = b24_classify_error(code, 400);
                FUZZ_CHECK(st == -EACCES || st == -EAGAIN || st == -EINVAL,
                           "command %s classified %d", key, st);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct b24_error err;
        json_t *doc = NULL, *result = NULL, *errors = NULL;
        long http_status;
        int st;

        if (size < 1)
                return 0;
        http_status = http_statuses[data[0] & 15];
        memset(&err, 0, sizeof(err));
        st = b24_answer_parse((const char *)data + 1, size - 1, http_status, &doc, &err);
        FUZZ_CHECK(err.http_status == http_status, "http status not kept");
        if (st == 0) {
                FUZZ_CHECK(http_status == 200 && json_is_object(doc) &&
                               json_object_get(doc, "result"),
                           "success without a result at HTTP %ld", http_status);
                b24_batch_sections(doc, &result, &errors);
                FUZZ_CHECK(!result || json_is_object(result), "batch result not an object");
                FUZZ_CHECK(!errors || json_is_object(errors), "batch result_error not an object");
                walk_errors(errors);
        } else {
                FUZZ_CHECK(st == -EACCES || st == -EAGAIN || st == -EINVAL,
                           "unknown status %d", st);
                FUZZ_CHECK(fuzz_terminated(err.code, sizeof(err.code)) &&
                               fuzz_terminated(err.description, sizeof(err.description)),
                           "error fields not terminated");
                FUZZ_CHECK(http_status != 401 || st == -EACCES || st == -EAGAIN,
                           "HTTP 401 classified as a data error");
        }
        json_decref(doc);
        return 0;
}
