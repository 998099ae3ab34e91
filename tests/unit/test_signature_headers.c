/*
 * signature_check_headers: the refusals that need no body (issue #10: an unsigned sender
 * must be refused before its body is read). Each case states the headers and the code
 * expected, and signature_verify must give the same code for the same headers whatever
 * the body, so that the early refusal and the late one never disagree. Headers that pass
 * the check but carry a wrong HMAC pass here and fail only in signature_verify.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/signature.h"

/* The example in the Standard Webhooks specification. */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS 1614265330
#define SPEC_TS_TEXT "1614265330"
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIGNATURE "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
/* well-formed, and not the HMAC of anything here */
#define OTHER_SIGNATURE "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

struct verdict {
        const char *what;
        const char *id, *timestamp, *header;
        int64_t now;
        int want;
};

static void check_both(const struct verdict *v)
{
        struct signature_key key;
        int early, late;

        assert_int_equal(signature_key_parse(SPEC_SECRET, &key), 0);
        early = signature_check_headers(v->id, v->timestamp, v->header, v->now);
        if (early != v->want)
                fail_msg("%s: signature_check_headers = %d, want %d", v->what, early, v->want);
        if (v->want == 0)
                return;
        late = signature_verify(&key, v->id, v->timestamp, v->header, SPEC_BODY,
                                strlen(SPEC_BODY), v->now);
        if (late != v->want)
                fail_msg("%s: signature_verify = %d, the early check said %d", v->what, late,
                         v->want);
}

static void test_the_spec_example_passes_the_header_check_and_verifies(void **state)
{
        struct signature_key key;

        (void)state;
        assert_int_equal(signature_key_parse(SPEC_SECRET, &key), 0);
        assert_int_equal(signature_check_headers(SPEC_ID, SPEC_TS_TEXT, SPEC_SIGNATURE, SPEC_TS),
                         0);
        assert_int_equal(signature_verify(&key, SPEC_ID, SPEC_TS_TEXT, SPEC_SIGNATURE, SPEC_BODY,
                                          strlen(SPEC_BODY), SPEC_TS),
                         0);
}

static void test_a_well_formed_wrong_signature_passes_the_check_and_fails_verify(void **state)
{
        struct signature_key key;

        (void)state;
        assert_int_equal(signature_key_parse(SPEC_SECRET, &key), 0);
        assert_int_equal(signature_check_headers(SPEC_ID, SPEC_TS_TEXT, OTHER_SIGNATURE, SPEC_TS),
                         0);
        assert_int_equal(signature_verify(&key, SPEC_ID, SPEC_TS_TEXT, OTHER_SIGNATURE, SPEC_BODY,
                                          strlen(SPEC_BODY), SPEC_TS),
                         -EBADMSG);
}

static void test_absent_headers_are_enokey(void **state)
{
        const struct verdict cases[] = {
            {"no webhook-id", NULL, SPEC_TS_TEXT, SPEC_SIGNATURE, SPEC_TS, -ENOKEY},
            {"no webhook-timestamp", SPEC_ID, NULL, SPEC_SIGNATURE, SPEC_TS, -ENOKEY},
            {"no webhook-signature", SPEC_ID, SPEC_TS_TEXT, NULL, SPEC_TS, -ENOKEY},
            {"none at all", NULL, NULL, NULL, SPEC_TS, -ENOKEY},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                check_both(&cases[i]);
}

static void test_bad_ids_and_timestamps_name_their_header(void **state)
{
        char long_id[SIGNATURE_ID_MAX + 2];
        const struct verdict cases[] = {
            {"empty id", "", SPEC_TS_TEXT, SPEC_SIGNATURE, SPEC_TS, -EINVAL},
            {"id with a dot", "msg.1", SPEC_TS_TEXT, SPEC_SIGNATURE, SPEC_TS, -EINVAL},
            {"id of 129 characters", long_id, SPEC_TS_TEXT, SPEC_SIGNATURE, SPEC_TS, -EINVAL},
            {"timestamp with a fraction", SPEC_ID, SPEC_TS_TEXT ".0", SPEC_SIGNATURE, SPEC_TS,
             -EDOM},
            {"timestamp empty", SPEC_ID, "", SPEC_SIGNATURE, SPEC_TS, -EDOM},
            {"timestamp of 13 digits", SPEC_ID, "1614265330000", SPEC_SIGNATURE, SPEC_TS, -EDOM},
            {"timestamp 301 s old", SPEC_ID, SPEC_TS_TEXT, SPEC_SIGNATURE, SPEC_TS + 301,
             -ERANGE},
            {"timestamp 301 s ahead", SPEC_ID, SPEC_TS_TEXT, SPEC_SIGNATURE, SPEC_TS - 301,
             -ERANGE},
            {"timestamp 300 s old", SPEC_ID, SPEC_TS_TEXT, SPEC_SIGNATURE, SPEC_TS + 300, 0},
            {"timestamp 300 s ahead", SPEC_ID, SPEC_TS_TEXT, SPEC_SIGNATURE, SPEC_TS - 300, 0},
        };

        (void)state;
        memset(long_id, 'm', SIGNATURE_ID_MAX + 1);
        long_id[SIGNATURE_ID_MAX + 1] = '\0';
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                check_both(&cases[i]);
}

static void test_a_signature_header_without_a_well_formed_v1_entry_is_ebadmsg(void **state)
{
        char too_long[SIGNATURE_HEADER_MAX + 64];
        const struct verdict cases[] = {
            {"empty", SPEC_ID, SPEC_TS_TEXT, "", SPEC_TS, -EBADMSG},
            {"spaces only", SPEC_ID, SPEC_TS_TEXT, "   ", SPEC_TS, -EBADMSG},
            {"scheme v2", SPEC_ID, SPEC_TS_TEXT, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
             SPEC_TS, -EBADMSG},
            {"truncated", SPEC_ID, SPEC_TS_TEXT, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O",
             SPEC_TS, -EBADMSG},
            {"one character too many", SPEC_ID, SPEC_TS_TEXT, SPEC_SIGNATURE "A", SPEC_TS,
             -EBADMSG},
            {"not base64", SPEC_ID, SPEC_TS_TEXT, "v1,!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
             SPEC_TS, -EBADMSG},
            {"no comma", SPEC_ID, SPEC_TS_TEXT, "v1g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
             SPEC_TS, -EBADMSG},
            {"over SIGNATURE_HEADER_MAX", SPEC_ID, SPEC_TS_TEXT, too_long, SPEC_TS, -EBADMSG},
            {"a v1a entry, then the v1 one", SPEC_ID, SPEC_TS_TEXT,
             "v1a,abc " SPEC_SIGNATURE, SPEC_TS, 0},
            {"spaces around the entry", SPEC_ID, SPEC_TS_TEXT, "  " SPEC_SIGNATURE "  ", SPEC_TS,
             0},
        };
        size_t n = 0;

        (void)state;
        /* well-formed entries up to past the cap, the good one last */
        while (n + 48 < sizeof(too_long) - 48) {
                memcpy(too_long + n, OTHER_SIGNATURE " ", 48);
                n += 48;
        }
        memcpy(too_long + n, SPEC_SIGNATURE, 47);
        too_long[n + 47] = '\0';
        assert_true(strlen(too_long) > SIGNATURE_HEADER_MAX);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                check_both(&cases[i]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_the_spec_example_passes_the_header_check_and_verifies),
            cmocka_unit_test(test_a_well_formed_wrong_signature_passes_the_check_and_fails_verify),
            cmocka_unit_test(test_absent_headers_are_enokey),
            cmocka_unit_test(test_bad_ids_and_timestamps_name_their_header),
            cmocka_unit_test(test_a_signature_header_without_a_well_formed_v1_entry_is_ebadmsg),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
