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

/* "whsec_<base64>" → key bytes. Returns 0 or -EINVAL. */
int signature_key_parse(const char *text, struct signature_key *ret_key);

/* Writes "v1,<base64>" into buf (at least 64 bytes). Returns 0 or -ENOBUFS. */
int signature_sign(const struct signature_key *key, const char *id, int64_t timestamp,
                   const char *body, size_t body_len, char *buf, size_t size);

/* Everything signature_verify checks but the HMAC, on the headers alone, so that a
 * request that cannot verify is refused before its body is read: 0, or the code
 * signature_verify would return (below); -EBADMSG here means that `header` is over
 * SIGNATURE_HEADER_MAX bytes or has no well-formed "v1,<44 base64>" entry. */
int signature_check_headers(const char *id, const char *timestamp, const char *header,
                            int64_t now);

/* Checks the three headers against the body at Unix time `now`. Returns 0 when one v1
 * entry of `header` matches, else the first problem found, each its own code so that the
 * caller can name the header at fault:
 *   -ENOKEY   a header is absent (NULL)
 *   -EINVAL   webhook-id is empty, longer than SIGNATURE_ID_MAX, or has '.', spaces or
 *             control characters
 *   -EDOM     webhook-timestamp is not Unix seconds (1-12 digits)
 *   -ERANGE   webhook-timestamp is more than SIGNATURE_TOLERANCE_S from `now`
 *   -EBADMSG  no v1 entry matches (or the header is over SIGNATURE_HEADER_MAX bytes) */
int signature_verify(const struct signature_key *key, const char *id, const char *timestamp,
                     const char *header, const char *body, size_t body_len, int64_t now);

/* A sentence for each result of signature_verify (0 included), fit for an answer to the
 * sender: it names the header and never shows a value. "unknown" for any other code. */
const char *signature_strerror(int r);
