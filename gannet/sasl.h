/* SASL logins of the fetch client (RFC 5034): PLAIN, LOGIN, SCRAM-SHA-1/-256 and their -PLUS
 * forms through GNU SASL with TLS channel binding, and OAUTHBEARER/XOAUTH2 built by hand. */
#ifndef GANNET_SASL_H
#define GANNET_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "climits.h"

struct sess;

enum sasl_cb_type { SASL_CB_NONE, SASL_CB_TLS_UNIQUE, SASL_CB_TLS_EXPORTER };

/* Log in on S (state AUTH) with mechanism MECH ("SCRAM-SHA-256-PLUS", "PLAIN", "OAUTHBEARER"
 * ...) and SECRET (a password, or a bearer token for the OAuth mechanisms). A challenge that is
 * not strict base64 is cancelled with "*" (C-019); a SCRAM server that cannot prove it knows the
 * password is refused even when it says +OK. 0, or -1 with s->e set. */
int sasl_login(struct sess *s, const char *mech, const char *secret, size_t secret_len);

/* The channel binding of a finished handshake: tls-exporter (RFC 9266: the exporter labelled
 * "EXPORTER-Channel-Binding", 32 bytes, no context) on TLS 1.3; tls-unique (RFC 5929: the first
 * Finished message, ours in a full handshake) on TLS 1.2. Returns the type and puts the data
 * into OUT (GANNET_CB_MAX bytes) and *LEN_R; SASL_CB_NONE when there is none. */
enum sasl_cb_type sasl_channel_binding(SSL *ssl, unsigned char out[GANNET_CB_MAX], size_t *len_r);

/* The OAUTHBEARER (RFC 7628 §3.1, XOAUTH2 false) or XOAUTH2 (XOAUTH2 true) client message for
 * USER at HOST:PORT with TOKEN[0..TOKLEN) into OUT (SIZE bytes). The length, or 0 when it does
 * not fit or a field holds a byte the format cannot carry (^A in the token, ',' or '=' in an
 * OAUTHBEARER user). */
size_t sasl_oauth_message(bool xoauth2, const char *user, const char *host, unsigned port,
                          const char *token, size_t toklen, char *out, size_t size);

#endif
