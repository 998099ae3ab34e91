/*
 * Roistat's answers: the envelope ({"status":"success"} or {"status":"error","error":…,
 * "description"|"message":…}) and add-orders' skipped_by_* counters, read whatever HTTP
 * status came with them. Oracle: only a JSON object is accepted, and the copied error
 * code and description are always terminated strings.
 */
#include "fuzz.h"

#include <errno.h>

#include "sinks/sink_roistat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct roistat_answer a;
        int r;

        r = roistat_answer_parse((const char *)data, size, &a);
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL, "unexpected error %d", r);
                return 0;
        }
        FUZZ_CHECK(r == 0, "unexpected result %d", r);
        FUZZ_CHECK(fuzz_terminated(a.error, sizeof(a.error)) &&
                       fuzz_terminated(a.description, sizeof(a.description)),
                   "answer fields not terminated");
        return 0;
}
