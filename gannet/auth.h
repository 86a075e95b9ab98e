/* Logging in: fetching the secret (password or password_command), choosing a method from the
 * account and the server's capabilities, USER/PASS and APOP; SASL is in sasl.c. */
#ifndef GANNET_AUTH_H
#define GANNET_AUTH_H

#include <stddef.h>

#include "config.h"
#include "util.h"

struct sess;

/* Put A's secret into BUF (SIZE bytes, NUL-terminated): the password, or the first line printed
 * by password_command (which must exit 0). 0 or -1 with E. The caller wipes BUF. */
int auth_secret(const struct account *a, char *buf, size_t size, size_t *len_r, struct gerr *e);

/* Log in on session S (state AUTH) with SECRET. The method is the account's, or with auth = auto
 * the best the server offers: SCRAM-SHA-256-PLUS > SCRAM-SHA-256 > SCRAM-SHA-1(-PLUS) > PLAIN >
 * USER > LOGIN > APOP with TLS; without TLS only SCRAM or APOP (a clear-text password needs
 * tls = none and an explicit auth). 0 or -1 with s->e set. */
int auth_run(struct sess *s, const char *secret, size_t secret_len);

/* The APOP digest of TIMESTAMP (brackets included) and SECRET as 32 lowercase hex digits into
 * OUT (RFC 1939 §7, C-008). 0 or -1. */
int auth_apop_digest(const char *ts, size_t ts_len, const char *secret, size_t secret_len,
                     char out[33]);

#endif
