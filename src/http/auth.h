/*
 * Who may use the operator's routes (GET /v1/orders/{id}, the status page): whoever
 * presents [server] admin_token, as "Authorization: Bearer TOKEN" (scripts) or as HTTP
 * Basic with any user name and the token as the password (a browser's login dialog).
 * Compared in constant time; the token is never logged, echoed or named.
 *
 * The page's forms also carry a CSRF token, so that another site cannot make a logged-in
 * browser post to them: the HMAC-SHA256 of the admin token under a key drawn at random
 * once per process. It changes when the daemon restarts (a form from before is refused:
 * reload the page), and it proves nothing to whoever lacks the admin token.
 */
#pragma once

#include <stdbool.h>

#include "config/config.h"
#include "http/route.h"

enum http_auth {
        HTTP_AUTH_OK,
        HTTP_AUTH_DISABLED, /* no [server] admin_token_file: nobody is admin */
        HTTP_AUTH_MISSING,  /* no credentials: no header, an unknown scheme, an empty or
                             * malformed one */
        HTTP_AUTH_WRONG,    /* credentials that are not the admin token */
};

/* What the Authorization header `authorization` (may be NULL) proves against `token`
 * (may be NULL: admin disabled). */
enum http_auth http_auth_check(const char *token, const char *authorization);

/* Whether `rq` comes from the admin. When not, answers it and returns false: 403
 * admin_disabled; 401 with WWW-Authenticate: Basic realm="orderbridge" when no
 * credentials came; 403 when they are wrong. */
bool http_auth_admin(const struct config *cfg, struct http_request *rq);

#define HTTP_CSRF_TOKEN_LEN 64 /* hex of a SHA-256 */

/* The CSRF token of this process for `cfg`'s admin token, NUL-terminated. The admin
 * token must be set. */
void http_csrf_token(const struct config *cfg, char ret[HTTP_CSRF_TOKEN_LEN + 1]);

/* Whether `token` (may be NULL) is this process's CSRF token (constant time). */
bool http_csrf_ok(const struct config *cfg, const char *token);
