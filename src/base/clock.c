/* The two clocks; see clock.h. */
#include "base/clock.h"

#include <errno.h>

static int64_t read_ms(clockid_t id)
{
        struct timespec ts;

        clock_gettime(id, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_wall_ms(void)
{
        return read_ms(CLOCK_REALTIME);
}

int64_t clock_mono_ms(void)
{
        return read_ms(CLOCK_MONOTONIC);
}

int64_t clock_mono_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void clock_sleep_ms(int64_t ms)
{
        struct timespec until;

        if (ms <= 0)
                return;
        clock_mono_deadline(ms, &until);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
                ;
}

bool clock_sleep_unless(int64_t ms, const atomic_bool *stop)
{
        int64_t until = clock_mono_ms() + ms;

        while (!(stop && atomic_load(stop))) {
                int64_t left = until - clock_mono_ms();
                if (left <= 0)
                        return true;
                clock_sleep_ms(left < 200 ? left : 200);
        }
        return false;
}

int clock_cond_init(pthread_cond_t *cond)
{
        pthread_condattr_t attr;
        int r;

        pthread_condattr_init(&attr);
        r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (r == 0)
                r = pthread_cond_init(cond, &attr);
        pthread_condattr_destroy(&attr);
        return -r;
}

void clock_mono_deadline(int64_t after_ms, struct timespec *ret)
{
        clock_gettime(CLOCK_MONOTONIC, ret);
        if (after_ms < 0)
                after_ms = 0;
        ret->tv_sec += (time_t)(after_ms / 1000);
        ret->tv_nsec += (long)(after_ms % 1000) * 1000000L;
        if (ret->tv_nsec >= 1000000000L) {
                ret->tv_sec++;
                ret->tv_nsec -= 1000000000L;
        }
}
