/*
 * Standard Webhooks (v1, HMAC-SHA256) signing and verification, used for orders coming
 * from the site and for calls orderbridge makes back to the site. The signed content is
 * "<webhook-id>.<webhook-timestamp>.<body>"; the header is a space-separated list of
 * "v1,<base64>" entries so that a secret can be rotated without downtime.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SIGNATURE_KEY_MAX 64     /* 512 bits, the spec's upper bound */
#define SIGNATURE_KEY_MIN 16     /* shorter secrets are refused as too weak */
#define SIGNATURE_ID_MAX 128
#define SIGNATURE_HEADER_MAX 1024
#define SIGNATURE_TOLERANCE_S 300

struct signature_key {
        unsigned char bytes[SIGNATURE_KEY_MAX];
        size_t len;
};

enum signature_result {
        SIGNATURE_OK = 0,
        SIGNATURE_MISSING = -1,       /* a header is absent */
        SIGNATURE_BAD_ID = -2,        /* webhook-id empty, too long, or has '.' or controls */
        SIGNATURE_BAD_TIMESTAMP = -3, /* not an integer */
        SIGNATURE_EXPIRED = -4,       /* outside the tolerance */
        SIGNATURE_MISMATCH = -5,      /* no v1 entry matches */
};

/* "whsec_<base64>" → key bytes. Returns 0 or -EINVAL. */
int signature_key_parse(const char *text, struct signature_key *ret_key);

/* Writes "v1,<base64>" into buf (at least 64 bytes). Returns 0 or -ENOBUFS. */
int signature_sign(const struct signature_key *key, const char *id, int64_t timestamp,
                   const char *body, size_t body_len, char *buf, size_t size);

enum signature_result signature_verify(const struct signature_key *key, const char *id,
                                       const char *timestamp, const char *header,
                                       const char *body, size_t body_len, int64_t now);

const char *signature_result_text(enum signature_result r);
