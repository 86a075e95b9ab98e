/* Client TLS policy and certificate checks; the handshake I/O itself lives in conn.c. */
#include "tlsclient.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sysexits.h>

SSL_CTX *tlsc_ctx(const char *ca_file, struct gerr *e)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char ebuf[256];

	if (ctx == NULL) {
		gerr_set(e, EX_SOFTWARE, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file != NULL && ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			ERR_error_string_n(ERR_get_error(), ebuf, sizeof(ebuf));
			ERR_clear_error();
			gerr_set(e, EX_CONFIG, "cannot load ca_file %s: %s", ca_file, ebuf);
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ERR_clear_error();
		gerr_set(e, EX_OSFILE, "cannot load the system certificate store");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static bool is_ip(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *tlsc_new(SSL_CTX *ctx, int fd, const char *host, bool verify, struct gerr *e)
{
	SSL *ssl = SSL_new(ctx);
	X509_VERIFY_PARAM *vp;
	int ok;

	if (ssl == NULL) {
		gerr_set(e, EX_SOFTWARE, "SSL_new failed");
		return NULL;
	}
	vp = SSL_get0_param(ssl);
	/* The name the user configured, never one found through DNS (C-012). No partial
	 * wildcards: "f*.example" must not match. */
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (is_ip(host))
		ok = X509_VERIFY_PARAM_set1_ip_asc(vp, host);
	else
		ok = SSL_set_tlsext_host_name(ssl, host) && SSL_set1_host(ssl, host);
	if (!verify)
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	if (!ok || SSL_set_fd(ssl, fd) != 1) {
		gerr_set(e, EX_SOFTWARE, "cannot set up TLS for %s", host);
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

static int spki_sha256(X509 *cert, unsigned char out[32])
{
	unsigned char *der = NULL;
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);

	if (len <= 0)
		return -1;
	SHA256(der, (size_t)len, out);
	OPENSSL_free(der);
	return 0;
}

static void pin_text(const unsigned char pin[32], char out[TLSC_PIN_TEXT])
{
	memcpy(out, "sha256//", 8);
	EVP_EncodeBlock((unsigned char *)out + 8, pin, 32);
}

int tlsc_pin_parse(const char *s, unsigned char pin[32])
{
	unsigned char buf[48];

	if (strncmp(s, "sha256//", 8) != 0 || strlen(s + 8) != 44 || s[8 + 43] != '=' ||
	    s[8 + 42] == '=')
		return -1;
	/* EVP_DecodeBlock keeps the pad bytes: 44 characters give 33 bytes, the last one pad. */
	if (EVP_DecodeBlock(buf, (const unsigned char *)s + 8, 44) != 33)
		return -1;
	memcpy(pin, buf, 32);
	return 0;
}

int tlsc_peer_pin(SSL *ssl, char out[TLSC_PIN_TEXT])
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	unsigned char pin[32];

	if (cert == NULL || spki_sha256(cert, pin) < 0)
		return -1;
	pin_text(pin, out);
	return 0;
}

int tlsc_check_peer(SSL *ssl, const unsigned char *pin, struct gerr *e)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	unsigned char got[32];
	char want_t[TLSC_PIN_TEXT], got_t[TLSC_PIN_TEXT];

	if (SSL_version(ssl) < TLS1_2_VERSION) {
		gerr_set(e, EX_PROTOCOL, "server negotiated %s; TLS 1.2 is the minimum",
		         SSL_get_version(ssl));
		return -1;
	}
	if (pin == NULL)
		return 0;
	if (cert == NULL || spki_sha256(cert, got) < 0) {
		gerr_set(e, EX_PROTOCOL, "server sent no certificate to check the pin against");
		return -1;
	}
	if (CRYPTO_memcmp(got, pin, 32) != 0) {
		pin_text(pin, want_t);
		pin_text(got, got_t);
		gerr_set(e, EX_PROTOCOL,
		         "the server's key does not match the pin: server has %s, config says %s "
		         "(if the server changed its key on purpose, update pin)",
		         got_t, want_t);
		return -1;
	}
	return 0;
}

void tlsc_failure(SSL *ssl, const char *host, struct gerr *e)
{
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	unsigned long err = ERR_peek_last_error();
	char ebuf[256] = "handshake failed";

	if (err != 0)
		ERR_error_string_n(err, ebuf, sizeof(ebuf));
	ERR_clear_error();
	if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
		gerr_set(e, EX_PROTOCOL,
		         "TLS: the server's certificate is not valid for '%s' (it was issued for "
		         "another name; see 'gannet probe')",
		         host);
	else if (vr != X509_V_OK)
		gerr_set(e, EX_PROTOCOL, "TLS: certificate verification failed: %s",
		         X509_verify_cert_error_string(vr));
	else
		gerr_set(e, EX_PROTOCOL, "TLS handshake with %s failed: %s", host, ebuf);
}

static void print_name(FILE *out, const char *label, const X509_NAME *name)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	if (b == NULL)
		return;
	X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	n = BIO_get_mem_data(b, &p);
	fprintf(out, "%-12s %.*s\n", label, (int)n, p);
	BIO_free(b);
}

static void print_time(FILE *out, const char *label, const ASN1_TIME *t)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	if (b == NULL)
		return;
	ASN1_TIME_print(b, t);
	n = BIO_get_mem_data(b, &p);
	fprintf(out, "%-12s %.*s%s\n", label, (int)n, p,
	        X509_cmp_current_time(t) < 0 ? " (in the past)" : "");
	BIO_free(b);
}

static void print_names(FILE *out, X509 *cert)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int n = names ? sk_GENERAL_NAME_num(names) : 0;

	fprintf(out, "%-12s", "names");
	for (int i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const unsigned char *d;
		int len;

		if (g->type == GEN_DNS) {
			d = ASN1_STRING_get0_data(g->d.dNSName);
			len = ASN1_STRING_length(g->d.dNSName);
			fprintf(out, " DNS:%.*s", len, (const char *)d);
		} else if (g->type == GEN_IPADD) {
			char ip[64] = "?";
			d = ASN1_STRING_get0_data(g->d.iPAddress);
			len = ASN1_STRING_length(g->d.iPAddress);
			if (len == 4 || len == 16)
				inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof(ip));
			fprintf(out, " IP:%s", ip);
		}
	}
	fprintf(out, "%s\n", n == 0 ? " (none)" : "");
	GENERAL_NAMES_free(names);
}

void tlsc_report(SSL *ssl, FILE *out)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	long vr = SSL_get_verify_result(ssl);
	char pin[TLSC_PIN_TEXT];

	fprintf(out, "%-12s %s\n", "tls", SSL_get_version(ssl));
	fprintf(out, "%-12s %s\n", "cipher", SSL_get_cipher_name(ssl));
	if (cert == NULL) {
		fprintf(out, "%-12s (none)\n", "certificate");
		return;
	}
	print_name(out, "subject", X509_get_subject_name(cert));
	print_name(out, "issuer", X509_get_issuer_name(cert));
	print_names(out, cert);
	print_time(out, "not before", X509_get0_notBefore(cert));
	print_time(out, "expires", X509_get0_notAfter(cert));
	fprintf(out, "%-12s %s\n", "verify",
	        vr == X509_V_OK ? "ok" : X509_verify_cert_error_string(vr));
	if (tlsc_peer_pin(ssl, pin) == 0)
		fprintf(out, "%-12s %s\n", "pin", pin);
}
