/* Password verification and hashing for Dovecot-style "{SCHEME}hash" strings. */
#include "pwhash.h"

#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "gannet_limits.h"
#include "strnum.h"

/* RFC 9106 §4, second recommended option (t=3, 64 MiB, 128-bit salt, 256-bit tag), but with one
 * lane instead of four: the work is the same, and one lane keeps a login on one core, so the
 * auth process's own worker count bounds CPU use. One verification costs about 0.3 s of CPU
 * (0.30-0.43 s measured on a 2-vCPU AMD EPYC VM with Debian 12's libargon2) and 64 MiB while it
 * runs: size the auth workers for that. */
#define ARGON2_T_COST   3
#define ARGON2_M_COST   65536
#define ARGON2_LANES    1
#define ARGON2_SALT_LEN 16
#define ARGON2_HASH_LEN 32

/* Sanity bounds for parameters read from a stored hash: a typo such as m=6553600 must not make
 * every login allocate gigabytes. */
#define ARGON2_M_COST_MAX 1048576
#define ARGON2_T_COST_MAX 64
#define ARGON2_LANES_MAX  64

/* The crypt family is here for compatibility with existing user files; new hashes get costs of
 * about 0.1-0.15 s each on the same VM, rather than libxcrypt's defaults (5000 sha-crypt rounds,
 * a few ms). The sha-crypt rounds are the passlib defaults; bcrypt cost 11 is above OWASP's
 * minimum of 10. sha-crypt's cost grows with the password length (a 511-byte password takes
 * about ten times as long), which is one more reason to prefer ARGON2ID. */
#define SHA512_CRYPT_ROUNDS 656000
#define SHA256_CRYPT_ROUNDS 535000
#define BLF_CRYPT_COST      11
#define YESCRYPT_COST       6

/* bcrypt ignores every byte after the 72nd; refusing longer passwords at hashing time keeps an
 * administrator from believing a long passphrase is fully used. */
#define BCRYPT_PASSWORD_MAX 72

enum scheme {
	SCHEME_ARGON2ID,
	SCHEME_ARGON2I,
	SCHEME_SHA512_CRYPT,
	SCHEME_SHA256_CRYPT,
	SCHEME_BLF_CRYPT,
	SCHEME_CRYPT,
	SCHEME_YESCRYPT,
	SCHEME_PLAIN,
};

static const struct {
	const char *name;
	enum scheme scheme;
	bool verify; /* accepted in stored hashes */
	bool make;   /* accepted by pwhash_make */
} schemes[] = {
    {"ARGON2ID", SCHEME_ARGON2ID, true, true},
    {"ARGON2I", SCHEME_ARGON2I, true, false},
    {"SHA512-CRYPT", SCHEME_SHA512_CRYPT, true, true},
    {"SHA256-CRYPT", SCHEME_SHA256_CRYPT, true, true},
    {"BLF-CRYPT", SCHEME_BLF_CRYPT, true, true},
    {"CRYPT", SCHEME_CRYPT, true, false},
    {"YESCRYPT", SCHEME_YESCRYPT, false, true},
    {"PLAIN", SCHEME_PLAIN, true, true},
    {"CLEAR", SCHEME_PLAIN, true, false},
};

/* Made with: echo -n "gannet-dummy-password" | argon2 gannetdummysalt0 -id -t 3 -m 16 -p 1 -l 32
 * -e. Same parameters as pwhash_make, so an unknown user costs what a real one does. */
static const char dummy_hash[] = "$argon2id$v=19$m=65536,t=3,p=1$Z2FubmV0ZHVtbXlzYWx0MA$"
                                 "gyUb5jZed1E4pTC3eJtBjlA/3vr9Liwk5nVMrJ8udRY";

static int scheme_lookup(const char *name, size_t len, enum scheme *scheme_r, bool for_make)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strlen(schemes[i].name) == len &&
		    strncasecmp(schemes[i].name, name, len) == 0 &&
		    (for_make ? schemes[i].make : schemes[i].verify)) {
			*scheme_r = schemes[i].scheme;
			return 0;
		}
	}
	return -1;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Equal lengths and equal bytes, without branching on the content: when the lengths differ the
 * stored string is compared with itself so the work done is the same. */
static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	bool same_len = alen == blen;
	const char *left = same_len ? a : b;

	return (CRYPTO_memcmp(left, b, blen) == 0) & same_len;
}

static int parse_u32_field(const char **pp, const char *key, uint64_t max, uint64_t *out_r)
{
	const char *p = *pp;
	size_t klen = strlen(key);
	size_t n = 0;

	if (strncmp(p, key, klen) != 0)
		return -1;
	p += klen;
	while (p[n] >= '0' && p[n] <= '9')
		n++;
	if (strnum_u64(p, n, 1, max, out_r) < 0)
		return -1;
	*pp = p + n;
	return 0;
}

/* Checks "$argon2X$v=19$m=M,t=T,p=P$" with bounded M, T, P; libargon2 checks the rest. */
static int argon2_check_params(const char *hash, const char *prefix, const char **error_r)
{
	const char *p = hash;
	uint64_t m, t, lanes;

	if (!has_prefix(p, prefix)) {
		*error_r = "argon2 hash does not start with the expected $argon2id$ or $argon2i$";
		return -1;
	}
	p += strlen(prefix);
	/* Version 1.3 ("v=19") or 1.0 ("v=16", also meant by no version at all); libargon2 would
	 * quietly hash with any other number and so turn a typo into "wrong password". */
	if (has_prefix(p, "v=19$") || has_prefix(p, "v=16$")) {
		p += 5;
	} else if (has_prefix(p, "v=")) {
		*error_r = "unknown argon2 version (v=19 or v=16)";
		return -1;
	}
	if (parse_u32_field(&p, "m=", UINT32_MAX, &m) < 0 ||
	    parse_u32_field(&p, ",t=", UINT32_MAX, &t) < 0 ||
	    parse_u32_field(&p, ",p=", UINT32_MAX, &lanes) < 0 || *p != '$') {
		*error_r = "malformed argon2 hash parameters";
		return -1;
	}
	if (m > ARGON2_M_COST_MAX || t > ARGON2_T_COST_MAX || lanes > ARGON2_LANES_MAX) {
		*error_r = "argon2 hash parameters out of range (m <= 1 GiB, t <= 64, p <= 64)";
		return -1;
	}
	return 0;
}

static int verify_argon2(const char *pw, size_t len, const char *hash, argon2_type type,
                         const char **error_r)
{
	int ret;

	if (argon2_check_params(hash, type == Argon2_id ? "$argon2id$" : "$argon2i$", error_r) < 0)
		return -1;
	/* argon2_verify takes a pointer and a length, so the password needs no NUL and no copy. */
	ret = argon2_verify(hash, pw, len, type);
	if (ret == ARGON2_OK)
		return 1;
	if (ret == ARGON2_VERIFY_MISMATCH)
		return 0;
	if (ret == ARGON2_MEMORY_ALLOCATION_ERROR || ret == ARGON2_THREAD_FAIL) {
		*error_r = "argon2: out of memory or threads";
		return -1;
	}
	*error_r = "malformed argon2 hash";
	return -1;
}

/* struct crypt_data is about 32 kB: too big for the small stacks of worker threads, and it holds
 * a copy of the password, so it is wiped before it is freed. */
static int verify_crypt(const char *pw, size_t len, const char *hash, size_t hlen,
                        const char **error_r)
{
	struct crypt_data *cd;
	char phrase[PASSWORD_MAX + 1];
	const char *out;
	int ret;

	if (len > PASSWORD_MAX) {
		*error_r = "password too long";
		return -1;
	}
	if (hlen == 0) {
		*error_r = "empty password hash";
		return -1;
	}
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	memcpy(phrase, pw, len);
	phrase[len] = '\0';
	out = crypt_rn(phrase, hash, cd, (int)sizeof(*cd));
	if (out == NULL || out[0] == '*') {
		*error_r = "malformed crypt hash or method not supported by libxcrypt";
		ret = -1;
	} else if (strlen(out) != hlen) {
		/* Any password gives a hash of the same length; a different one means the stored
		 * string is truncated, padded, or only a setting such as "$6$salt". */
		*error_r = "malformed crypt hash (wrong length)";
		ret = -1;
	} else {
		ret = CRYPTO_memcmp(out, hash, hlen) == 0 ? 1 : 0;
	}
	explicit_bzero(phrase, len);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ret;
}

int pwhash_verify(const char *password, size_t len, const char *stored, const char **error_r)
{
	const char *hash = stored;
	enum scheme scheme = SCHEME_CRYPT;
	size_t slen = strnlen(stored, PWHASH_MAX + 1);
	bool usable;
	int ret;

	if (slen > PWHASH_MAX) {
		*error_r = "password hash too long";
		return -1;
	}
	if (stored[0] == '{') {
		const char *end = strchr(stored, '}');

		if (end == NULL) {
			*error_r = "malformed {SCHEME} prefix: no closing brace";
			return -1;
		}
		if (scheme_lookup(stored + 1, (size_t)(end - stored - 1), &scheme, false) < 0) {
			*error_r = "unknown password scheme";
			return -1;
		}
		hash = end + 1;
	}

	/* A password no stored hash can match (NUL inside, over-long for libxcrypt) is still run
	 * through the hash, as the empty string, so its answer takes as long as a wrong password's.
	 */
	usable = len <= PASSWORD_MAX && memchr(password, '\0', len) == NULL;
	if (scheme != SCHEME_ARGON2ID && scheme != SCHEME_ARGON2I && scheme != SCHEME_PLAIN &&
	    len >= CRYPT_MAX_PASSPHRASE_SIZE)
		usable = false;
	if (!usable) {
		password = "";
		len = 0;
	}

	switch (scheme) {
	case SCHEME_ARGON2ID:
		ret = verify_argon2(password, len, hash, Argon2_id, error_r);
		break;
	case SCHEME_ARGON2I:
		ret = verify_argon2(password, len, hash, Argon2_i, error_r);
		break;
	case SCHEME_SHA512_CRYPT:
	case SCHEME_SHA256_CRYPT:
	case SCHEME_BLF_CRYPT:
		if ((scheme == SCHEME_SHA512_CRYPT && !has_prefix(hash, "$6$")) ||
		    (scheme == SCHEME_SHA256_CRYPT && !has_prefix(hash, "$5$")) ||
		    (scheme == SCHEME_BLF_CRYPT && !has_prefix(hash, "$2y$") &&
		     !has_prefix(hash, "$2b$") && !has_prefix(hash, "$2a$"))) {
			*error_r = "crypt hash does not match its {SCHEME} ($6$, $5$ or $2y$/$2b$)";
			return -1;
		}
		ret = verify_crypt(password, len, hash, slen - (size_t)(hash - stored), error_r);
		break;
	case SCHEME_CRYPT:
	case SCHEME_YESCRYPT:
		ret = verify_crypt(password, len, hash, slen - (size_t)(hash - stored), error_r);
		break;
	case SCHEME_PLAIN:
	default:
		ret = ct_equal(password, len, hash, slen - (size_t)(hash - stored)) ? 1 : 0;
		break;
	}
	if (ret == 1 && !usable)
		ret = 0;
	return ret;
}

static int random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int make_argon2id(const char *pw, size_t len, char *out, size_t outsize,
                         const char **error_r)
{
	static const char prefix[] = "{ARGON2ID}";
	unsigned char salt[ARGON2_SALT_LEN];
	size_t plen = sizeof(prefix) - 1;
	int ret;

	if (outsize <= plen) {
		*error_r = "output buffer too small";
		return -1;
	}
	if (random_bytes(salt, sizeof(salt)) < 0) {
		*error_r = "getrandom failed";
		return -1;
	}
	memcpy(out, prefix, plen);
	ret = argon2id_hash_encoded(ARGON2_T_COST, ARGON2_M_COST, ARGON2_LANES, pw, len, salt,
	                            sizeof(salt), ARGON2_HASH_LEN, out + plen, outsize - plen);
	if (ret != ARGON2_OK) {
		*error_r = ret == ARGON2_ENCODING_FAIL ? "output buffer too small"
		                                       : "argon2id hashing failed";
		return -1;
	}
	return 0;
}

static int make_crypt(const char *pw, size_t len, enum scheme scheme, char *out, size_t outsize,
                      const char **error_r)
{
	const char *prefix, *tag;
	unsigned long cost;
	char rbytes[16], setting[CRYPT_GENSALT_OUTPUT_SIZE], phrase[CRYPT_MAX_PASSPHRASE_SIZE];
	struct crypt_data *cd;
	const char *hash;
	size_t tlen, hlen;

	switch (scheme) {
	case SCHEME_SHA512_CRYPT:
		prefix = "$6$", tag = "{SHA512-CRYPT}", cost = SHA512_CRYPT_ROUNDS;
		break;
	case SCHEME_SHA256_CRYPT:
		prefix = "$5$", tag = "{SHA256-CRYPT}", cost = SHA256_CRYPT_ROUNDS;
		break;
	case SCHEME_BLF_CRYPT:
		/* $2y$ rather than libxcrypt's $2b$: the same algorithm, and what Dovecot writes.
		 */
		prefix = "$2y$", tag = "{BLF-CRYPT}", cost = BLF_CRYPT_COST;
		break;
	default:
		/* Dovecot has no YESCRYPT scheme name; its CRYPT scheme handles "$y$". */
		prefix = "$y$", tag = "{CRYPT}", cost = YESCRYPT_COST;
		break;
	}
	if (len >= CRYPT_MAX_PASSPHRASE_SIZE) {
		*error_r = "password too long for a crypt scheme (511 bytes at most)";
		return -1;
	}
	if (scheme == SCHEME_BLF_CRYPT && len > BCRYPT_PASSWORD_MAX) {
		*error_r = "password too long for BLF-CRYPT (72 bytes at most); use ARGON2ID";
		return -1;
	}
	if (random_bytes(rbytes, sizeof(rbytes)) < 0) {
		*error_r = "getrandom failed";
		return -1;
	}
	if (crypt_gensalt_rn(prefix, cost, rbytes, (int)sizeof(rbytes), setting,
	                     (int)sizeof(setting)) == NULL) {
		*error_r = "crypt_gensalt failed";
		return -1;
	}
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	memcpy(phrase, pw, len);
	phrase[len] = '\0';
	hash = crypt_rn(phrase, setting, cd, (int)sizeof(*cd));
	explicit_bzero(phrase, len);
	tlen = strlen(tag);
	hlen = hash != NULL ? strlen(hash) : 0;
	if (hash == NULL || hash[0] == '*') {
		*error_r = "crypt failed";
		hash = NULL;
	} else if (outsize <= tlen || hlen >= outsize - tlen) {
		*error_r = "output buffer too small";
		hash = NULL;
	} else {
		memcpy(out, tag, tlen);
		memcpy(out + tlen, hash, hlen + 1);
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return hash == NULL ? -1 : 0;
}

static int make_plain(const char *pw, size_t len, char *out, size_t outsize, const char **error_r)
{
	static const char tag[] = "{PLAIN}";
	size_t tlen = sizeof(tag) - 1;

	/* The passwd-file separates fields with ':' and lines with '\n'. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)pw[i];

		if (c == ':' || c < 0x20 || c == 0x7f) {
			*error_r = "PLAIN cannot store ':' or control characters; use ARGON2ID";
			return -1;
		}
	}
	if (outsize <= tlen || len >= outsize - tlen) {
		*error_r = "password too long for PLAIN";
		return -1;
	}
	memcpy(out, tag, tlen);
	memcpy(out + tlen, pw, len);
	out[tlen + len] = '\0';
	return 0;
}

int pwhash_make(const char *password, size_t len, const char *scheme, char *out, size_t outsize,
                const char **error_r)
{
	enum scheme s = SCHEME_ARGON2ID;

	if (scheme != NULL && scheme_lookup(scheme, strlen(scheme), &s, true) < 0) {
		*error_r = "unknown scheme (ARGON2ID, SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, "
		           "YESCRYPT, PLAIN)";
		return -1;
	}
	if (len > PASSWORD_MAX) {
		*error_r = "password too long";
		return -1;
	}
	if (memchr(password, '\0', len) != NULL) {
		*error_r = "password contains a NUL byte";
		return -1;
	}
	switch (s) {
	case SCHEME_ARGON2ID:
		return make_argon2id(password, len, out, outsize, error_r);
	case SCHEME_PLAIN:
		return make_plain(password, len, out, outsize, error_r);
	default:
		return make_crypt(password, len, s, out, outsize, error_r);
	}
}

void pwhash_dummy_verify(const char *password, size_t len)
{
	if (len > PASSWORD_MAX)
		len = 0;
	(void)argon2id_verify(dummy_hash, password, len);
}
