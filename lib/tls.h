/* OpenSSL 3 server contexts with Gannet's policy: TLS 1.2 minimum, modern ciphers, no
 * renegotiation. */
#ifndef GANNET_TLS_H
#define GANNET_TLS_H

#include <openssl/ssl.h>

struct conf;

/* TLS 1.3 session tickets sent after a full handshake: a POP3 client holds one connection to a
 * server at a time, so it never needs a second ticket to resume with. */
#define TLS_TICKETS_PER_HANDSHAKE 1

/* Session ticket keys (OpenSSL's layout: 16 bytes of key name, 32 of HMAC key, 32 of AES key).
 * The master makes one set per configuration generation and gives it to every login process of
 * that generation, so a ticket issued by one login process resumes in any other. */
#define TLS_TICKET_KEYS_LEN 80

/* Build a server SSL_CTX from the certificate chain and key named in CONF. NULL with a message
 * (OpenSSL's error queue included) in ERR on failure. */
SSL_CTX *tls_server_ctx(const struct conf *conf, char *err, size_t errsize);

/* Use KEYS (TLS_TICKET_KEYS_LEN bytes) for this context's session tickets. 0 or -1. */
int tls_set_ticket_keys(SSL_CTX *ctx, const unsigned char *keys, size_t len);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384" style description of an established connection. */
const char *tls_describe(SSL *ssl, char *out, size_t size);

#endif
