/* TLS for the fetch client: Gannet's client policy (TLS 1.2 minimum, verification against the
 * system store or a CA file with the configured host name), SPKI pins and certificate reports. */
#ifndef GANNET_TLSCLIENT_H
#define GANNET_TLSCLIENT_H

#include <stdbool.h>
#include <stdio.h>

#include <openssl/ssl.h>

#include "util.h"

/* "sha256//" + 44 base64 characters + NUL. */
#define TLSC_PIN_TEXT 53

/* A client context: TLS 1.2 minimum, peer verification against CA_FILE (NULL or "": the system
 * store). NULL with E set on failure. */
SSL_CTX *tlsc_ctx(const char *ca_file, struct gerr *e);

/* A connection object on FD for HOST: SNI (for names), host name or IP check (C-012). VERIFY
 * false (probe) still records the verification result without failing the handshake. */
SSL *tlsc_new(SSL_CTX *ctx, int fd, const char *host, bool verify, struct gerr *e);

/* After the handshake: version at least TLS 1.2 (C-015), and when PIN is not NULL the server key
 * must match it. 0 or -1 with E. */
int tlsc_check_peer(SSL *ssl, const unsigned char *pin, struct gerr *e);

/* Words for a failed handshake: the verification error when there is one ("certificate has
 * expired", "hostname mismatch"), else OpenSSL's error queue. Clears the queue. */
void tlsc_failure(SSL *ssl, const char *host, struct gerr *e);

/* Parse "sha256//BASE64" (44 characters of base64) into PIN. 0 or -1. */
int tlsc_pin_parse(const char *s, unsigned char pin[32]);

/* SHA-256 of the SubjectPublicKeyInfo of the peer certificate as "sha256//BASE64". -1 if none. */
int tlsc_peer_pin(SSL *ssl, char out[TLSC_PIN_TEXT]);

/* Print version, cipher, subject, issuer, names, validity, verification result and pin (probe). */
void tlsc_report(SSL *ssl, FILE *out);

#endif
