/*
 * sinkstate_stall: when a sink's loop counts as wedged, the one rule /healthz
 * (stuck_pass, stuck_loop) and the systemd watchdog share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "queue/sinkstate.h"

#define LIMIT 10000
#define MONO 1000000 /* the monotonic clock now */
#define WALL 1773385200000LL

static void a_pass_is_stalled_only_past_the_limit(void **state)
{
        struct sinkstate_view v = {.pass_started_ms = MONO - LIMIT, .beat_ms = MONO - LIMIT};

        (void)state;
        assert_int_equal(sinkstate_stall(&v, MONO, WALL, LIMIT), SINK_STALL_NONE);
        v.pass_started_ms = MONO - LIMIT - 1;
        assert_int_equal(sinkstate_stall(&v, MONO, WALL, LIMIT), SINK_STALL_PASS);
        /* inside a pass the loop does not go round: that is no second stall */
        v.beat_ms = 1;
        assert_int_equal(sinkstate_stall(&v, MONO, WALL, LIMIT), SINK_STALL_PASS);
}

static void an_idle_loop_that_has_not_gone_round_is_stalled(void **state)
{
        struct sinkstate_view v = {.beat_ms = MONO - LIMIT};

        (void)state;
        assert_int_equal(sinkstate_stall(&v, MONO, WALL, LIMIT), SINK_STALL_NONE);
        v.beat_ms = MONO - LIMIT - 1;
        assert_int_equal(sinkstate_stall(&v, MONO, WALL, LIMIT), SINK_STALL_LOOP);
}

/* A paused loop sleeps until paused_until: it is late only by the limit past that. */
static void a_paused_loop_is_stalled_only_that_late_past_its_pause(void **state)
{
        struct sinkstate_view v = {.pause = SINK_PAUSED_AUTH, .beat_ms = 1,
                                   .paused_until_ms = WALL + 60000};

        (void)state;
        assert_int_equal(sinkstate_stall(&v, MONO, WALL, LIMIT), SINK_STALL_NONE);
        v.paused_until_ms = WALL - LIMIT;
        assert_int_equal(sinkstate_stall(&v, MONO, WALL, LIMIT), SINK_STALL_NONE);
        v.paused_until_ms = WALL - LIMIT - 1;
        assert_int_equal(sinkstate_stall(&v, MONO, WALL, LIMIT), SINK_STALL_LOOP);
        v.beat_ms = MONO; /* it went round just now */
        assert_int_equal(sinkstate_stall(&v, MONO, WALL, LIMIT), SINK_STALL_NONE);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(a_pass_is_stalled_only_past_the_limit),
            cmocka_unit_test(an_idle_loop_that_has_not_gone_round_is_stalled),
            cmocka_unit_test(a_paused_loop_is_stalled_only_that_late_past_its_pause),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
