/* OAuth SASL messages: the OAUTHBEARER (RFC 7628) and XOAUTH2 client responses and the RFC 7628
 * failure JSON. Split from oauth.c (token validation). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "oauth.h"
#include "oauth_util.h"

/* --- SASL messages --------------------------------------------------------------------------- */

/* GNU SASL has no server side for OAUTHBEARER or XOAUTH2, so these parsers are ours. */

/* RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme name is case-insensitive
 * (RFC 7235 §2.1). b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". */
static int parse_bearer(const char *v, size_t vl, char *token, size_t tsize, const char **error_r)
{
	size_t i = 7, start, eq = 0;

	if (vl < 7 || strncasecmp(v, "Bearer", 6) != 0 || v[6] != ' ') {
		*error_r = "auth scheme is not Bearer";
		return -1;
	}
	while (i < vl && v[i] == ' ')
		i++;
	start = i;
	for (; i < vl; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch == '=') {
			eq++;
		} else if (eq == 0 && (oauth_b64url_value(ch) >= 0 || ch == '.' || ch == '~' ||
		                       ch == '+' || ch == '/')) {
			continue;
		} else {
			*error_r = "bad character in bearer token";
			return -1;
		}
	}
	if (vl - start == eq) {
		*error_r = "empty bearer token";
		return -1;
	}
	if (vl - start > OAUTH_TOKEN_MAX || vl - start >= tsize) {
		*error_r = "bearer token too long";
		return -1;
	}
	memcpy(token, v + start, vl - start);
	token[vl - start] = '\0';
	return 0;
}

/* RFC 5801 §4 saslname: "," and "=" travel as "=2C" and "=3D", no other "=" escapes. */
static int decode_saslname(const char *s, size_t n, char *out, size_t osize, const char **error_r)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (ch == '=') {
			if (n - i < 3 ||
			    (memcmp(s + i + 1, "2C", 2) && memcmp(s + i + 1, "3D", 2))) {
				*error_r = "bad =XX escape in authzid";
				return -1;
			}
			ch = s[i + 1] == '2' ? ',' : '=';
			i += 2;
		}
		if (o + 1 >= osize) {
			*error_r = "authzid too long";
			return -1;
		}
		out[o++] = ch;
	}
	out[o] = '\0';
	if (o == 0 || !oauth_utf8_printable((const unsigned char *)out, o)) {
		*error_r = "bad authzid";
		return -1;
	}
	return 0;
}

/* RFC 7628 §3.1: value = *(VCHAR / SP / HTAB / CR / LF), key = 1*ALPHA. */
static bool kv_syntax_ok(const char *p, const char *eq, const char *sep)
{
	if (eq == p)
		return false;
	for (const char *q = p; q < eq; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')))
			return false;
	for (const char *q = eq + 1; q < sep; q++) {
		unsigned char ch = (unsigned char)*q;

		if (!((ch >= 0x20 && ch <= 0x7e) || ch == '\t' || ch == '\r' || ch == '\n'))
			return false;
	}
	return true;
}

/* Common checks of both messages; -1 with *ERROR_R when the message is refused outright. */
static int sasl_precheck(const char *msg, size_t len, char *a, size_t asize, char *token,
                         size_t tsize, const char **error_r)
{
	if (a != NULL && asize > 0)
		a[0] = '\0';
	if (token != NULL && tsize > 0)
		token[0] = '\0';
	if (msg == NULL || a == NULL || token == NULL || asize == 0 || tsize == 0) {
		*error_r = "bad arguments";
		return -1;
	}
	if (len == 0) {
		*error_r = "empty response";
		return -1;
	}
	if (len > OAUTH_SASL_MAX) {
		*error_r = "response too long";
		return -1;
	}
	if (memchr(msg, '\0', len) != NULL) {
		*error_r = "NUL byte in response";
		return -1;
	}
	return 0;
}

static int sasl_fail(char *a, size_t asize, char *token, size_t tsize)
{
	if (a != NULL && asize > 0)
		a[0] = '\0';
	if (token != NULL && tsize > 0)
		explicit_bzero(token, tsize);
	return -1;
}

int oauth_parse_oauthbearer(const char *msg, size_t len, char *authzid, size_t asize, char *token,
                            size_t tsize, const char **error_r)
{
	const char *p, *end = msg + len, *comma;
	size_t pairs = 0;
	bool have_auth = false;

	if (sasl_precheck(msg, len, authzid, asize, token, tsize, error_r) < 0)
		return sasl_fail(authzid, asize, token, tsize);
	/* RFC 7628 §3.2.3: the lone %x01 a client sends to acknowledge our error challenge. */
	if (len == 1 && msg[0] == '\x01') {
		*error_r = "client ended the exchange";
		return -1;
	}
	/* gs2-header (RFC 5801 §4): OAUTHBEARER has no channel binding, so only "n" is allowed;
	 * "y" and "p=" are refused rather than silently downgraded. */
	if (msg[0] == 'y' || msg[0] == 'p') {
		*error_r = "channel binding is not supported";
		return -1;
	}
	if (len < 3 || msg[0] != 'n' || msg[1] != ',') {
		*error_r = "bad gs2 header";
		return -1;
	}
	p = msg + 2;
	if ((comma = memchr(p, ',', (size_t)(end - p))) == NULL) {
		*error_r = "bad gs2 header";
		return -1;
	}
	if (comma > p) {
		if (comma - p < 3 || p[0] != 'a' || p[1] != '=') {
			*error_r = "bad authzid";
			return -1;
		}
		if (decode_saslname(p + 2, (size_t)(comma - p - 2), authzid, asize, error_r) < 0)
			return sasl_fail(authzid, asize, token, tsize);
	}
	p = comma + 1;
	if (p == end || *p != '\x01') {
		*error_r = "bad gs2 header";
		return sasl_fail(authzid, asize, token, tsize);
	}
	p++;
	for (;;) {
		const char *sep, *eq;

		if (p == end || (sep = memchr(p, '\x01', (size_t)(end - p))) == NULL) {
			*error_r = "unterminated response (no \\x01\\x01)";
			return sasl_fail(authzid, asize, token, tsize);
		}
		if (sep == p) {
			if (p + 1 != end) {
				*error_r = "data after the final \\x01";
				return sasl_fail(authzid, asize, token, tsize);
			}
			break;
		}
		if (++pairs > OAUTH_KVPAIRS_MAX) {
			*error_r = "too many key=value pairs";
			return sasl_fail(authzid, asize, token, tsize);
		}
		eq = memchr(p, '=', (size_t)(sep - p));
		if (eq == NULL || !kv_syntax_ok(p, eq, sep)) {
			*error_r = "bad key=value pair";
			return sasl_fail(authzid, asize, token, tsize);
		}
		/* host= and port= (and unknown keys) carry nothing we need. */
		if (eq - p == 4 && memcmp(p, "auth", 4) == 0) {
			if (have_auth) {
				*error_r = "auth= given twice";
				return sasl_fail(authzid, asize, token, tsize);
			}
			if (parse_bearer(eq + 1, (size_t)(sep - eq - 1), token, tsize, error_r) < 0)
				return sasl_fail(authzid, asize, token, tsize);
			have_auth = true;
		}
		p = sep + 1;
	}
	if (!have_auth) {
		*error_r = "no auth= in response";
		return sasl_fail(authzid, asize, token, tsize);
	}
	return 0;
}

int oauth_parse_xoauth2(const char *msg, size_t len, char *user, size_t usize, char *token,
                        size_t tsize, const char **error_r)
{
	const char *end = msg + len, *p, *sep;
	size_t ulen;

	if (sasl_precheck(msg, len, user, usize, token, tsize, error_r) < 0)
		return sasl_fail(user, usize, token, tsize);
	if (len < 5 || memcmp(msg, "user=", 5) != 0) {
		*error_r = "no user= at the start";
		return -1;
	}
	if ((sep = memchr(msg + 5, '\x01', len - 5)) == NULL) {
		*error_r = "unterminated response (no \\x01\\x01)";
		return -1;
	}
	ulen = (size_t)(sep - msg - 5);
	if (ulen == 0 || !oauth_utf8_printable((const unsigned char *)msg + 5, ulen)) {
		*error_r = "bad user name";
		return -1;
	}
	if (ulen >= usize) {
		*error_r = "user name too long";
		return -1;
	}
	p = sep + 1;
	if (end - p < 5 || memcmp(p, "auth=", 5) != 0) {
		*error_r = "no auth= after user=";
		return -1;
	}
	if ((sep = memchr(p + 5, '\x01', (size_t)(end - p - 5))) == NULL) {
		*error_r = "unterminated response (no \\x01\\x01)";
		return -1;
	}
	if (parse_bearer(p + 5, (size_t)(sep - p - 5), token, tsize, error_r) < 0)
		return sasl_fail(user, usize, token, tsize);
	p = sep + 1;
	if (p == end || *p != '\x01') {
		*error_r = "unterminated response (no \\x01\\x01)";
		return sasl_fail(user, usize, token, tsize);
	}
	if (p + 1 != end) {
		*error_r = "data after the final \\x01";
		return sasl_fail(user, usize, token, tsize);
	}
	memcpy(user, msg + 5, ulen);
	user[ulen] = '\0';
	return 0;
}

/* --- failure message ------------------------------------------------------------------------- */

/* OpenID Connect Discovery §4: the document lives at ISSUER "/.well-known/openid-configuration",
 * with any trailing "/" of the issuer removed. */
#define DISCOVERY_SUFFIX "/.well-known/openid-configuration"

int oauth_error_json(const struct oauth_conf *c, char *out, size_t size)
{
	json_t *o = json_object();
	char *url = NULL;
	size_t n = 0;
	int ret = -1;

	if (out != NULL && size > 0)
		out[0] = '\0';
	if (o == NULL || out == NULL || size == 0)
		goto out;
	if (json_object_set_new(o, "status", json_string("invalid_token")) < 0 ||
	    json_object_set_new(o, "schemes", json_string("bearer")) < 0 ||
	    json_object_set_new(o, "scope", json_string("pop3")) < 0)
		goto out;
	if (c != NULL && c->issuer != NULL && *c->issuer) {
		size_t il = strlen(c->issuer);

		while (il > 0 && c->issuer[il - 1] == '/')
			il--;
		if (il > size || (url = malloc(il + sizeof(DISCOVERY_SUFFIX))) == NULL)
			goto out;
		memcpy(url, c->issuer, il);
		memcpy(url + il, DISCOVERY_SUFFIX, sizeof(DISCOVERY_SUFFIX));
		/* json_string refuses invalid UTF-8; the dump escapes quotes and controls. */
		if (json_object_set_new(o, "openid-configuration", json_string(url)) < 0)
			goto out;
	}
	n = json_dumpb(o, out, size, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (n == 0 || n >= size) {
		out[0] = '\0';
		goto out;
	}
	out[n] = '\0';
	ret = 0;
out:
	free(url);
	json_decref(o);
	return ret;
}
