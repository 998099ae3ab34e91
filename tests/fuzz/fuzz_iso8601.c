/*
 * ISO 8601 times (order.created_at, order.updated_at). Oracle: a time iso8601_parse
 * accepts is written back by iso8601_format as "YYYY-MM-DDTHH:MM:SSZ", and that text
 * parses to the same second; the canonical snapshot relies on it.
 */
#include "fuzz.h"

#include "model/iso8601.h"
#include "model/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text, out[64];
        int64_t epoch = 0, again = 0;

        if (size > 256)
                return 0;
        text = fuzz_strndup(data, size);
        if (iso8601_parse(text, &epoch) == 0) {
                iso8601_format(epoch, out, sizeof(out));
                FUZZ_CHECK(strlen(out) == 20, "\"%s\" formats as \"%s\"", text, out);
                FUZZ_CHECK(iso8601_parse(out, &again) == 0,
                           "\"%s\" (%lld) formats as \"%s\", which is refused", text,
                           (long long)epoch, out);
                FUZZ_CHECK(again == epoch, "\"%s\" is %lld, its format \"%s\" is %lld", text,
                           (long long)epoch, out, (long long)again);
        }
        free(text);
        return 0;
}
