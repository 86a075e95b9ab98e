/* SCRAM verifiers: SASLprep, PBKDF2 and key derivation for the user file, and their strict
 * parsing. */
#include "scram.h"

#include <gsasl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gannet_limits.h"
#include "strnum.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

/* Base64 of SCRAM_SALT_MAX bytes with its NUL: 4 * ceil(45 / 3) + 1. */
#define SALT_B64_SIZE (4 * ((SCRAM_SALT_MAX + 2) / 3) + 1)

_Static_assert(SALT_B64_SIZE <= sizeof(((struct scram_secret *)0)->salt_b64),
               "SCRAM_SALT_MAX must fit in salt_b64");
_Static_assert(2 * SCRAM_HASH_MAX + 1 <= sizeof(((struct scram_secret *)0)->stored_hex),
               "a SHA-256 key must fit in stored_hex");

static size_t hash_len(enum scram_hash h)
{
	return h == SCRAM_SHA1 ? GSASL_HASH_SHA1_SIZE : GSASL_HASH_SHA256_SIZE;
}

static void to_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

/* SaltedPassword, then ClientKey/StoredKey/ServerKey (RFC 5802 §3). PREPPED is the SASLprep'ed
 * password; the caller checked H, ITER and the salt. */
static int derive(enum scram_hash h, const char *prepped, unsigned iter, const unsigned char *salt,
                  size_t salt_len, char *stored, char *server)
{
	char salted[SCRAM_HASH_MAX], client[SCRAM_HASH_MAX];
	size_t hl = hash_len(h);
	int ret = -1;

	/* gsasl_scram_secrets_from_password would SASLprep a second time (and allow unassigned
	 * code points), so PBKDF2 comes from OpenSSL and only the key steps from GNU SASL. */
	if (PKCS5_PBKDF2_HMAC(prepped, (int)strlen(prepped), salt, (int)salt_len, (int)iter,
	                      h == SCRAM_SHA1 ? EVP_sha1() : EVP_sha256(), (int)hl,
	                      (unsigned char *)salted) == 1 &&
	    gsasl_scram_secrets_from_salted_password(h == SCRAM_SHA1 ? GSASL_HASH_SHA1
	                                                             : GSASL_HASH_SHA256,
	                                             salted, client, server, stored) == GSASL_OK)
		ret = 0;
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client, sizeof(client));
	return ret;
}

int scram_make_salt(enum scram_hash h, const char *password, size_t len, unsigned iter,
                    const unsigned char *salt, size_t salt_len, char *field, size_t size,
                    const char **error_r)
{
	char copy[PASSWORD_MAX + 1], stored[SCRAM_HASH_MAX], server[SCRAM_HASH_MAX];
	char salt_b64[SALT_B64_SIZE], stored_hex[2 * SCRAM_HASH_MAX + 1];
	char server_hex[2 * SCRAM_HASH_MAX + 1];
	char *prepped = NULL, *prepped2 = NULL;
	int rc, rc2 = GSASL_SASLPREP_ERROR, n, ret = -1;

	if (h != SCRAM_SHA1 && h != SCRAM_SHA256) {
		*error_r = "unknown SCRAM hash";
		return -1;
	}
	if (iter < SCRAM_ITER_MIN || iter > SCRAM_ITER_MAX) {
		*error_r = "SCRAM iteration count not from " STR(SCRAM_ITER_MIN) " to " STR(
		    SCRAM_ITER_MAX);
		return -1;
	}
	if (salt_len < SCRAM_SALT_MIN || salt_len > SCRAM_SALT_MAX) {
		*error_r =
		    "SCRAM salt not from " STR(SCRAM_SALT_MIN) " to " STR(SCRAM_SALT_MAX) " bytes";
		return -1;
	}
	if (len == 0 || len > PASSWORD_MAX || memchr(password, '\0', len) != NULL) {
		*error_r = "password empty, longer than " STR(PASSWORD_MAX) " bytes or holding NUL";
		return -1;
	}
	memcpy(copy, password, len);
	copy[len] = '\0';
	/* A stored string may not hold unassigned code points (RFC 3454 §7), so that the verifier
	 * keeps its meaning when a later Unicode version assigns them. GNU SASL passes its flag
	 * inverted to libidn (GSASL_ALLOW_UNASSIGNED means STRINGPREP_NO_UNASSIGNED), so both
	 * readings must succeed and agree: that holds exactly when nothing is unassigned,
	 * whichever way a later version reads the flag. */
	rc = gsasl_saslprep(copy, 0, &prepped, NULL);
	if (rc == GSASL_OK)
		rc2 = gsasl_saslprep(copy, GSASL_ALLOW_UNASSIGNED, &prepped2, NULL);
	explicit_bzero(copy, sizeof(copy));
	if (rc != GSASL_OK || rc2 != GSASL_OK || strcmp(prepped, prepped2) != 0) {
		*error_r = "password is not UTF-8 that SASLprep accepts (RFC 4013: no control "
		           "characters, no unassigned code points)";
		goto out;
	}
	if (prepped[0] == '\0') {
		*error_r = "password is empty after SASLprep";
		goto out;
	}
	if (derive(h, prepped, iter, salt, salt_len, stored, server) < 0) {
		*error_r = "SCRAM key derivation failed";
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)salt_b64, salt, (int)salt_len);
	to_hex((const unsigned char *)stored, hash_len(h), stored_hex);
	to_hex((const unsigned char *)server, hash_len(h), server_hex);
	n = snprintf(field, size, "%u,%s,%s,%s", iter, salt_b64, stored_hex, server_hex);
	if (n < 0 || (size_t)n >= size || n > SCRAM_FIELD_MAX) {
		if (size > 0)
			field[0] = '\0';
		*error_r = "SCRAM verifier buffer too small";
		goto out;
	}
	ret = 0;
out:
	explicit_bzero(stored, sizeof(stored));
	explicit_bzero(server, sizeof(server));
	explicit_bzero(stored_hex, sizeof(stored_hex));
	explicit_bzero(server_hex, sizeof(server_hex));
	if (prepped != NULL) {
		explicit_bzero(prepped, strlen(prepped));
		gsasl_free(prepped);
	}
	if (prepped2 != NULL) {
		explicit_bzero(prepped2, strlen(prepped2));
		gsasl_free(prepped2);
	}
	return ret;
}

int scram_make(enum scram_hash h, const char *password, size_t len, unsigned iter, char *field,
               size_t size, const char **error_r)
{
	unsigned char salt[SCRAM_SALT_LEN];
	int ret;

	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		*error_r = "no random bytes for the SCRAM salt";
		return -1;
	}
	ret = scram_make_salt(h, password, len, iter, salt, sizeof(salt), field, size, error_r);
	explicit_bzero(salt, sizeof(salt));
	return ret;
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Canonical padded base64 of SCRAM_SALT_MIN..SCRAM_SALT_MAX bytes: the only spelling of those
 * bytes, so two texts for one salt cannot both be valid. */
static int check_salt(const char *s, size_t len, const char **error_r)
{
	unsigned char bytes[SALT_B64_SIZE], again[SALT_B64_SIZE];
	size_t pad = 0, n;
	int got;

	if (len == 0 || len % 4 != 0 || len >= SALT_B64_SIZE) {
		*error_r = "salt is not base64 of " STR(SCRAM_SALT_MIN) " to " STR(
		    SCRAM_SALT_MAX) " bytes";
		return -1;
	}
	while (pad < 2 && s[len - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < len - pad; i++) {
		if (!is_b64(s[i])) {
			*error_r = "salt holds a character that is not base64";
			return -1;
		}
	}
	n = len / 4 * 3 - pad;
	if (n < SCRAM_SALT_MIN || n > SCRAM_SALT_MAX) {
		*error_r = "salt is not base64 of " STR(SCRAM_SALT_MIN) " to " STR(
		    SCRAM_SALT_MAX) " bytes";
		return -1;
	}
	got = EVP_DecodeBlock(bytes, (const unsigned char *)s, (int)len);
	if (got < 0 || (size_t)got != n + pad) {
		*error_r = "salt is not valid base64";
		return -1;
	}
	/* Re-encoding catches non-zero padding bits ("QQ==" vs "QR=="). */
	EVP_EncodeBlock(again, bytes, (int)n);
	if (memcmp(again, s, len) != 0) {
		*error_r = "salt is not canonical base64";
		return -1;
	}
	return 0;
}

static int check_hex(const char *s, size_t len, size_t want, const char **error_r)
{
	if (len != want) {
		*error_r = "key is not hex of the hash length (40 digits SHA-1, 64 SHA-256)";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			*error_r = "key holds a character that is not lowercase hex";
			return -1;
		}
	}
	return 0;
}

int scram_parse(enum scram_hash h, const char *field, struct scram_secret *out,
                const char **error_r)
{
	const char *part[4];
	size_t plen[4], len, np = 0, hl;
	const char *p, *end;
	uint64_t iter;

	memset(out, 0, sizeof(*out));
	if (h != SCRAM_SHA1 && h != SCRAM_SHA256) {
		*error_r = "unknown SCRAM hash";
		return -1;
	}
	hl = hash_len(h);
	len = strnlen(field, SCRAM_FIELD_MAX + 1);
	if (len > SCRAM_FIELD_MAX) {
		*error_r = "verifier longer than " STR(SCRAM_FIELD_MAX) " bytes";
		return -1;
	}
	p = field;
	end = field + len;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));

		if (np == 4) {
			np++;
			break;
		}
		part[np] = p;
		plen[np] = comma != NULL ? (size_t)(comma - p) : (size_t)(end - p);
		np++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (np != 4) {
		*error_r = "verifier is not ITER,SALT,STOREDKEY,SERVERKEY";
		return -1;
	}
	if (strnum_u64(part[0], plen[0], SCRAM_ITER_MIN, SCRAM_ITER_MAX, &iter) < 0) {
		*error_r = "iteration count is not a decimal from " STR(SCRAM_ITER_MIN) " to " STR(
		    SCRAM_ITER_MAX);
		return -1;
	}
	if (check_salt(part[1], plen[1], error_r) < 0 ||
	    check_hex(part[2], plen[2], 2 * hl, error_r) < 0 ||
	    check_hex(part[3], plen[3], 2 * hl, error_r) < 0)
		return -1;
	out->iter = (unsigned)iter;
	memcpy(out->salt_b64, part[1], plen[1]);
	memcpy(out->stored_hex, part[2], plen[2]);
	memcpy(out->server_hex, part[3], plen[3]);
	return 0;
}
