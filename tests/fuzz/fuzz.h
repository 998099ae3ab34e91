/*
 * What every fuzz target shares: the libFuzzer entry point's prototype, a NUL-terminated
 * copy of the input (the parsers under test take C strings), and the oracle check that
 * turns a broken property into a crash libFuzzer records. Header-only: each target is one
 * translation unit linked with the instrumented core.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property the code under test promises: when it does not hold, say which and abort,
 * so that libFuzzer keeps the input as a crash. */
#define FUZZ_CHECK(cond, ...)                                                                      \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz oracle failed: %s: ", #cond);                        \
                        fprintf(stderr, __VA_ARGS__);                                              \
                        fputc('\n', stderr);                                                       \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

/* The input as a C string (embedded NULs end it early, as they would in the daemon). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);

        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = '\0';
        return s;
}

/* True when the fixed-size buffer holds a terminated string. */
static inline int fuzz_terminated(const char *buf, size_t size)
{
        return memchr(buf, '\0', size) != NULL;
}
