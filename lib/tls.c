/* TLS server context set-up shared by every listener of gannetd. */
#include "tls.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"

static void tls_error(char *err, size_t errsize, const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	char ebuf[256] = "";

	if (e != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	snprintf(err, errsize, "%s%s%s: %s", what, path ? " " : "", path ? path : "", ebuf);
	ERR_clear_error();
}

SSL_CTX *tls_server_ctx(const struct conf *conf, char *err, size_t errsize)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		tls_error(err, errsize, "SSL_CTX_new", NULL);
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, conf->tls_min_version)) {
		tls_error(err, errsize, "tls_min_version", NULL);
		goto fail;
	}
	/* Client-initiated renegotiation is a DoS lever and a source of past CVEs (checklist
	 * S-087). Compression is off for CRIME. The server's cipher order wins. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Idle sessions hold no 34 kB of TLS buffers each: this is what keeps idle memory small. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (!SSL_CTX_set_cipher_list(ctx, conf->tls_ciphers)) {
		tls_error(err, errsize, "tls_ciphers", NULL);
		goto fail;
	}
	if (!SSL_CTX_set_ciphersuites(ctx, conf->tls_ciphersuites)) {
		tls_error(err, errsize, "tls_ciphersuites", NULL);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert) != 1) {
		tls_error(err, errsize, "cannot load certificate", conf->tls_cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errsize, "cannot load key", conf->tls_key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errsize, "key does not match certificate", conf->tls_key);
		goto fail;
	}
	/* Stateless tickets let a reconnecting client skip the RSA signature. The key is random
	 * per context; gannetd's login processes replace it with their generation's shared one
	 * (tls_set_ticket_keys), which changes with every reload. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"gannet", 6);
	/* TLS 1.3 servers send two tickets per handshake by default, each an encryption and a
	 * record; a POP3 client resumes one connection at a time, so one ticket is enough. */
	SSL_CTX_set_num_tickets(ctx, TLS_TICKETS_PER_HANDSHAKE);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_set_ticket_keys(SSL_CTX *ctx, const unsigned char *keys, size_t len)
{
	if (len != TLS_TICKET_KEYS_LEN)
		return -1;
	return SSL_CTX_set_tlsext_ticket_keys(ctx, (void *)keys, (long)len) == 1 ? 0 : -1;
}

const char *tls_describe(SSL *ssl, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	return out;
}
