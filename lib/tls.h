/* OpenSSL 3 server contexts with Gannet's policy: TLS 1.2 minimum, modern ciphers, no
 * renegotiation. */
#ifndef GANNET_TLS_H
#define GANNET_TLS_H

#include <openssl/ssl.h>

struct conf;

/* TLS 1.3 session tickets sent after a full handshake: a POP3 client holds one connection to a
 * server at a time, so it never needs a second ticket to resume with. */
#define TLS_TICKETS_PER_HANDSHAKE 1

/* Build a server SSL_CTX from the certificate chain and key named in CONF. NULL with a message
 * (OpenSSL's error queue included) in ERR on failure. */
SSL_CTX *tls_server_ctx(const struct conf *conf, char *err, size_t errsize);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384" style description of an established connection. */
const char *tls_describe(SSL *ssl, char *out, size_t size);

#endif
