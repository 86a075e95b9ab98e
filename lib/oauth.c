/* OAuth 2.0 bearer tokens: JWKS loading (jansson + OpenSSL), JWT validation (libjwt) and the
 * OAUTHBEARER / XOAUTH2 message parsers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "errmsg.h"
#include "oauth.h"
#include "oauth_util.h"

enum key_type { KEY_RSA, KEY_EC256, KEY_EC384 };

/* The only algorithms we accept. RFC 8725 §3.1: an allow-list, never the token's word alone. */
static const struct {
	const char *name;
	enum key_type type;
	jwt_alg_t jwt;
} algs[] = {
    {"RS256", KEY_RSA, JWT_ALG_RS256},   {"RS384", KEY_RSA, JWT_ALG_RS384},
    {"RS512", KEY_RSA, JWT_ALG_RS512},   {"ES256", KEY_EC256, JWT_ALG_ES256},
    {"ES384", KEY_EC384, JWT_ALG_ES384},
};
#define ALGS_N (sizeof(algs) / sizeof(algs[0]))

struct oauth_key {
	enum key_type type;
	int alg; /* index into algs when the JWK names its "alg" (RFC 7517 §4.4), else -1 */
	bool has_kid;
	char kid[OAUTH_KID_MAX + 1];
	unsigned char *pem;
	size_t pem_len;
};

/* Written once by oauth_keys_load, then only read: safe to share between threads. */
struct oauth_keys {
	size_t n;
	struct oauth_key key[OAUTH_KEYS_MAX];
};

/* Load errors name the file and the key, so they are built per call; thread-local, so that two
 * threads loading at once cannot overwrite each other's message. */
static _Thread_local char load_error[512];

__attribute__((format(printf, 1, 2))) static const char *errf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errmsg_vformat(load_error, sizeof(load_error), fmt, ap);
	va_end(ap);
	return load_error;
}

static int alg_index(const char *name)
{
	for (size_t i = 0; i < ALGS_N; i++)
		if (strcmp(algs[i].name, name) == 0)
			return (int)i;
	return -1;
}

int oauth_b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Strict base64url without padding (RFC 7515 §2): only the 64 letters, no "=", and the unused low
 * bits of the last letter zero, so every byte string has one spelling. libjwt's own decoder
 * (libb64) is lenient; rejecting everything else first means both of us read the same bytes.
 * OUT NULL: only check the spelling. */
static int b64url_decode(const char *in, size_t len, unsigned char *out, size_t osize,
                         size_t *olen_r)
{
	unsigned int acc = 0;
	int bits = 0;
	size_t o = 0;

	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = oauth_b64url_value((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= osize)
				return -1;
			if (out != NULL)
				out[o] = (unsigned char)(acc >> bits);
			o++;
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	*olen_r = o;
	return 0;
}

/* Valid UTF-8 without control characters (C0, DEL): what we accept in names we pass on. */
bool oauth_utf8_printable(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned int cp, min;

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t j = 1; j <= n; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* --- JWKS loading ---------------------------------------------------------------------------- */

static int read_small_file(const char *path, char **text_r, size_t *len_r, const char **error_r)
{
	char ebuf[128], *text;
	struct stat st;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		*error_r = errf("%s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf)));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		*error_r = errf("%s: not a regular file", path);
		return -1;
	}
	if ((text = malloc(OAUTH_JWKS_FILE_MAX + 1)) == NULL) {
		close(fd);
		*error_r = "out of memory";
		return -1;
	}
	/* Read one byte more than allowed, so that a file that grows while we read is caught too.
	 */
	for (;;) {
		ssize_t r = read(fd, text + len, OAUTH_JWKS_FILE_MAX + 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*error_r = errf("%s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf)));
			close(fd);
			free(text);
			return -1;
		}
		len += (size_t)r;
		if (r == 0 || len > OAUTH_JWKS_FILE_MAX)
			break;
	}
	close(fd);
	if (len > OAUTH_JWKS_FILE_MAX || len == 0) {
		*error_r = len ? errf("%s: larger than %d bytes", path, OAUTH_JWKS_FILE_MAX)
		               : errf("%s: empty file", path);
		free(text);
		return -1;
	}
	*text_r = text;
	*len_r = len;
	return 0;
}

/* Decode the base64url member NAME of JWK into OUT (at most OSIZE bytes). */
static int jwk_bytes(json_t *jwk, const char *name, size_t i, unsigned char *out, size_t osize,
                     size_t *olen_r, const char **error_r)
{
	json_t *v = json_object_get(jwk, name);

	if (!json_is_string(v)) {
		*error_r = errf("keys[%zu]: no \"%s\" string", i, name);
		return -1;
	}
	if (json_string_length(v) == 0 ||
	    b64url_decode(json_string_value(v), json_string_length(v), out, osize, olen_r) < 0) {
		*error_r =
		    errf("keys[%zu]: \"%s\" is not base64url of at most %zu bytes", i, name, osize);
		return -1;
	}
	return 0;
}

/* Build a public key from PARAMS and check it (point on the curve, sane modulus). */
static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = NULL, *check = NULL;
	EVP_PKEY *pkey = NULL;

	if (params == NULL)
		return NULL;
	ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (check == NULL || EVP_PKEY_public_check(check) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

/* libjwt 1.10 takes keys as PEM only. */
static int pkey_to_pem(EVP_PKEY *pkey, struct oauth_key *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;

	if (bio == NULL)
		return -1;
	if (PEM_write_bio_PUBKEY(bio, pkey) != 1 || (n = BIO_get_mem_data(bio, &data)) <= 0 ||
	    (key->pem = malloc((size_t)n)) == NULL) {
		BIO_free(bio);
		return -1;
	}
	memcpy(key->pem, data, (size_t)n);
	key->pem_len = (size_t)n;
	BIO_free(bio);
	return 0;
}

static int load_rsa(json_t *jwk, size_t i, struct oauth_key *key, const char **error_r)
{
	/* One leading zero octet is tolerated in n (RFC 7518 §6.3.1.1 forbids it, some emit it). */
	unsigned char nb[OAUTH_RSA_BITS_MAX / 8 + 1], eb[OAUTH_RSA_E_MAX];
	size_t nlen, elen;
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	int bits, ret = -1;

	if (jwk_bytes(jwk, "n", i, nb, sizeof(nb), &nlen, error_r) < 0 ||
	    jwk_bytes(jwk, "e", i, eb, sizeof(eb), &elen, error_r) < 0)
		return -1;
	if ((n = BN_bin2bn(nb, (int)nlen, NULL)) == NULL ||
	    (e = BN_bin2bn(eb, (int)elen, NULL)) == NULL) {
		*error_r = "out of memory";
		goto out;
	}
	bits = BN_num_bits(n);
	if (bits < OAUTH_RSA_BITS_MIN || bits > OAUTH_RSA_BITS_MAX) {
		*error_r = errf("keys[%zu]: RSA key of %d bits refused (%d to %d allowed)", i, bits,
		                OAUTH_RSA_BITS_MIN, OAUTH_RSA_BITS_MAX);
		goto out;
	}
	if (!BN_is_odd(e) || BN_is_one(e)) {
		*error_r = errf("keys[%zu]: bad RSA exponent", i);
		goto out;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1) {
		*error_r = "out of memory";
		goto out;
	}
	if ((pkey = pkey_fromdata("RSA", bld)) == NULL) {
		*error_r = errf("keys[%zu]: not a valid RSA public key", i);
		goto out;
	}
	if (pkey_to_pem(pkey, key) < 0) {
		*error_r = "out of memory";
		goto out;
	}
	key->type = KEY_RSA;
	ret = 0;
out:
	EVP_PKEY_free(pkey);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return ret;
}

/* 1 loaded, 0 skipped (a curve we do not accept), -1 error. */
static int load_ec(json_t *jwk, size_t i, struct oauth_key *key, const char **error_r)
{
	/* Uncompressed point 04 || x || y; 48-octet coordinates for P-384, the largest we take. */
	unsigned char pt[1 + 2 * 48];
	const char *crv = json_string_value(json_object_get(jwk, "crv")), *group;
	size_t clen, xlen, ylen;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	int ret = -1;

	if (crv == NULL) {
		*error_r = errf("keys[%zu]: EC key without \"crv\"", i);
		return -1;
	}
	if (strcmp(crv, "P-256") == 0) {
		key->type = KEY_EC256, clen = 32, group = "P-256";
	} else if (strcmp(crv, "P-384") == 0) {
		key->type = KEY_EC384, clen = 48, group = "P-384";
	} else {
		return 0;
	}
	/* RFC 7518 §6.2.1.2: x and y are exactly the coordinate size, leading zeros included. */
	if (jwk_bytes(jwk, "x", i, pt + 1, clen, &xlen, error_r) < 0 ||
	    jwk_bytes(jwk, "y", i, pt + 1 + clen, clen, &ylen, error_r) < 0)
		return -1;
	if (xlen != clen || ylen != clen) {
		*error_r = errf("keys[%zu]: x and y must be %zu bytes for %s", i, clen, crv);
		return -1;
	}
	pt[0] = 0x04;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * clen) != 1) {
		*error_r = "out of memory";
		goto out;
	}
	if ((pkey = pkey_fromdata("EC", bld)) == NULL) {
		*error_r = errf("keys[%zu]: not a point on %s", i, crv);
		goto out;
	}
	if (pkey_to_pem(pkey, key) < 0) {
		*error_r = "out of memory";
		goto out;
	}
	ret = 1;
out:
	EVP_PKEY_free(pkey);
	OSSL_PARAM_BLD_free(bld);
	return ret;
}

static bool key_ops_allow_verify(json_t *ops)
{
	size_t j;
	json_t *op;

	json_array_foreach(ops, j, op)
	{
		if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
			return true;
	}
	return false;
}

/* 1 loaded, 0 skipped (not a signature key we can use), -1 error. */
static int load_key(json_t *jwk, size_t i, struct oauth_key *key, const char **error_r)
{
	static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
	json_t *kty = json_object_get(jwk, "kty"), *use = json_object_get(jwk, "use");
	json_t *ops = json_object_get(jwk, "key_ops"), *alg = json_object_get(jwk, "alg");
	json_t *kid = json_object_get(jwk, "kid");
	bool rsa;
	int r;

	if (!json_is_object(jwk)) {
		*error_r = errf("keys[%zu]: not an object", i);
		return -1;
	}
	if (!json_is_string(kty)) {
		*error_r = errf("keys[%zu]: no \"kty\" string", i);
		return -1;
	}
	/* HS* is never accepted; a shared secret in this file is a mistake worth stopping for. */
	if (strcmp(json_string_value(kty), "oct") == 0) {
		*error_r = errf("keys[%zu]: symmetric key (kty \"oct\") refused: HS* tokens are "
		                "never accepted",
		                i);
		return -1;
	}
	for (size_t m = 0; m < sizeof(private_members) / sizeof(private_members[0]); m++) {
		if (json_object_get(jwk, private_members[m]) != NULL) {
			*error_r = errf("keys[%zu]: holds private key material (\"%s\"): publish "
			                "only the public key",
			                i, private_members[m]);
			return -1;
		}
	}
	if ((use != NULL && !json_is_string(use)) || (ops != NULL && !json_is_array(ops)) ||
	    (alg != NULL && !json_is_string(alg))) {
		*error_r = errf("keys[%zu]: \"use\", \"key_ops\" or \"alg\" of the wrong type", i);
		return -1;
	}
	if (kid != NULL) {
		size_t kl = json_string_length(kid);

		if (!json_is_string(kid) || kl == 0 || kl > OAUTH_KID_MAX ||
		    !oauth_utf8_printable((const unsigned char *)json_string_value(kid), kl)) {
			*error_r = errf("keys[%zu]: \"kid\" must be a printable string of 1 to %d "
			                "bytes",
			                i, OAUTH_KID_MAX);
			return -1;
		}
		memcpy(key->kid, json_string_value(kid), kl + 1);
		key->has_kid = true;
	}
	/* Keys for encryption, or for algorithms outside our list, are not ours to use. */
	if (use != NULL && strcmp(json_string_value(use), "sig") != 0)
		return 0;
	if (ops != NULL && !key_ops_allow_verify(ops))
		return 0;
	key->alg = alg != NULL ? alg_index(json_string_value(alg)) : -1;
	if (alg != NULL && key->alg < 0)
		return 0;
	if (strcmp(json_string_value(kty), "RSA") == 0)
		rsa = true;
	else if (strcmp(json_string_value(kty), "EC") == 0)
		rsa = false;
	else
		return 0;
	if (rsa)
		r = load_rsa(jwk, i, key, error_r) < 0 ? -1 : 1;
	else
		r = load_ec(jwk, i, key, error_r);
	if (r == 1 && key->alg >= 0 && algs[key->alg].type != key->type) {
		*error_r =
		    errf("keys[%zu]: \"alg\" %s does not fit the key", i, algs[key->alg].name);
		r = -1;
	}
	if (r != 1) {
		free(key->pem);
		key->pem = NULL;
	}
	return r;
}

struct oauth_keys *oauth_keys_load(const char *path, const char **error_r)
{
	struct oauth_keys *k = NULL;
	json_t *root = NULL, *arr, *jwk;
	json_error_t jerr;
	char *text = NULL;
	size_t len, i;

	*error_r = NULL;
	/* jansson seeds its hash function on first use; do it here, before the threads that call
	 * oauth_validate exist, so that they never race on the seed. */
	json_object_seed(0);
	if (read_small_file(path, &text, &len, error_r) < 0)
		return NULL;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (root == NULL) {
		*error_r =
		    errf("%s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	arr = json_object_get(root, "keys");
	if (!json_is_object(root) || !json_is_array(arr)) {
		*error_r = errf("%s: not a JWKS: no \"keys\" array", path);
		goto fail;
	}
	if (json_array_size(arr) > OAUTH_KEYS_MAX) {
		*error_r = errf("%s: %zu keys, at most %d allowed", path, json_array_size(arr),
		                OAUTH_KEYS_MAX);
		goto fail;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		*error_r = "out of memory";
		goto fail;
	}
	json_array_foreach(arr, i, jwk)
	{
		struct oauth_key *key = &k->key[k->n];
		const char *why = NULL;
		int r;

		memset(key, 0, sizeof(*key));
		if ((r = load_key(jwk, i, key, &why)) < 0) {
			*error_r = errf("%s: %s", path, why);
			goto fail;
		}
		if (r == 0)
			continue;
		for (size_t j = 0; j < k->n; j++) {
			if (key->has_kid && k->key[j].has_kid &&
			    strcmp(key->kid, k->key[j].kid) == 0) {
				free(key->pem);
				key->pem = NULL;
				*error_r =
				    errf("%s: keys[%zu]: duplicate kid \"%s\"", path, i, key->kid);
				goto fail;
			}
		}
		k->n++;
	}
	if (k->n == 0) {
		*error_r = errf("%s: no usable key (RSA of at least %d bits, or EC P-256/P-384, "
		                "for signatures)",
		                path, OAUTH_RSA_BITS_MIN);
		goto fail;
	}
	json_decref(root);
	return k;
fail:
	oauth_keys_free(k);
	json_decref(root);
	return NULL;
}

void oauth_keys_free(struct oauth_keys *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->n; i++)
		free(k->key[i].pem);
	free(k);
}

/* --- JWT validation -------------------------------------------------------------------------- */

/* Decode one base64url segment and parse it as a JSON object, duplicate names refused (RFC 7515
 * §4: a parser that takes the last "alg" and one that takes the first would disagree). */
static json_t *segment_json(const char *seg, size_t len)
{
	unsigned char *buf;
	size_t n;
	json_t *obj = NULL;

	if (len == 0 || (buf = malloc(len)) == NULL)
		return NULL;
	if (b64url_decode(seg, len, buf, len, &n) == 0)
		obj = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
	free(buf);
	if (obj != NULL && !json_is_object(obj)) {
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

/* A NumericDate claim (RFC 7519 §2): 1 present in *V, 0 absent, -1 not a number. Fractions are
 * rounded towards the strict side (exp down, nbf and iat up). */
static int claim_time(json_t *claims, const char *name, bool round_up, long long *v)
{
	json_t *x = json_object_get(claims, name);

	if (x == NULL)
		return 0;
	if (json_is_integer(x)) {
		*v = json_integer_value(x);
		return 1;
	}
	if (json_is_real(x)) {
		double d = json_real_value(x);
		long long t;

		if (!(d > -1e15 && d < 1e15))
			return -1;
		t = (long long)d;
		if (round_up && (double)t < d)
			t++;
		else if (!round_up && (double)t > d)
			t--;
		*v = t;
		return 1;
	}
	return -1;
}

/* A > B + SLACK, without overflow for any A and B. */
static bool later_than(long long a, long long b, long long slack)
{
	if (b > LLONG_MAX - slack)
		return false;
	return a > b + slack;
}

static bool json_string_is(json_t *v, const char *want)
{
	size_t n = strlen(want);

	/* Length first: a "\u0000" inside the claim cannot cut the comparison short. */
	return json_is_string(v) && json_string_length(v) == n &&
	       memcmp(json_string_value(v), want, n) == 0;
}

/* RFC 7519 §4.1.3: "aud" is one string or an array of strings. */
static bool audience_ok(json_t *aud, const char *want)
{
	size_t i;
	json_t *v;

	if (json_is_string(aud))
		return json_string_is(aud, want);
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, v)
	{
		if (json_string_is(v, want))
			return true;
	}
	return false;
}

static const struct oauth_key *select_key(const struct oauth_keys *k, json_t *kid)
{
	if (kid != NULL) {
		for (size_t i = 0; i < k->n; i++)
			if (k->key[i].has_kid && json_string_is(kid, k->key[i].kid))
				return &k->key[i];
	}
	/* One key and no kid to choose by: the administrator pinned that key. */
	if (k->n == 1 && (kid == NULL || !k->key[0].has_kid))
		return &k->key[0];
	return NULL;
}

/* The claims, once libjwt has verified the signature over them. */
static int check_claims(json_t *claims, const struct oauth_conf *c, time_t now, char *user_out,
                        size_t size, const char **reason_r)
{
	const char *claim = c->user_claim != NULL && *c->user_claim ? c->user_claim : "sub";
	long long exp, nbf, iat;
	int has_exp, has_nbf, has_iat;
	json_t *user;
	size_t ulen;

	has_exp = claim_time(claims, "exp", false, &exp);
	has_nbf = claim_time(claims, "nbf", true, &nbf);
	has_iat = claim_time(claims, "iat", true, &iat);
	if (has_exp <= 0 || has_nbf < 0 || has_iat < 0)
		return 0; /* "malformed": a token without exp would be valid forever */
	if (later_than((long long)now, exp, OAUTH_LEEWAY)) {
		*reason_r = "expired";
		return 0;
	}
	if ((has_nbf && later_than(nbf, (long long)now, OAUTH_LEEWAY)) ||
	    (has_iat && later_than(iat, (long long)now, OAUTH_LEEWAY))) {
		*reason_r = "not_yet_valid";
		return 0;
	}
	if (c->issuer != NULL && *c->issuer &&
	    !json_string_is(json_object_get(claims, "iss"), c->issuer)) {
		*reason_r = "wrong_issuer";
		return 0;
	}
	if (c->audience != NULL && *c->audience &&
	    !audience_ok(json_object_get(claims, "aud"), c->audience)) {
		*reason_r = "wrong_audience";
		return 0;
	}
	user = json_object_get(claims, claim);
	ulen = json_string_length(user);
	if (!json_is_string(user) || ulen == 0 ||
	    !oauth_utf8_printable((const unsigned char *)json_string_value(user), ulen)) {
		*reason_r = "no_user_claim";
		return 0;
	}
	if (ulen >= size) {
		*reason_r = "user_claim_too_long";
		return 0;
	}
	memcpy(user_out, json_string_value(user), ulen + 1);
	return 1;
}

int oauth_validate(const struct oauth_keys *k, const struct oauth_conf *c, const char *jwt,
                   size_t len, time_t now, char *user_out, size_t size, const char **reason_r)
{
	const struct oauth_key *key;
	json_t *head = NULL, *claims = NULL, *alg, *kid, *typ;
	size_t dot[2], dots = 0, sig_len;
	char *copy = NULL;
	jwt_t *parsed = NULL;
	int a, r, ret = 0;

	*reason_r = "malformed";
	if (user_out != NULL && size > 0)
		user_out[0] = '\0';
	if (k == NULL || c == NULL || jwt == NULL || user_out == NULL || size == 0) {
		*reason_r = "internal";
		return -1;
	}
	/* Compact JWS (RFC 7515 §7.1): three base64url parts, nothing else, not even padding. */
	if (len == 0 || len > OAUTH_TOKEN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (jwt[i] == '.') {
			if (dots == 2)
				return 0;
			dot[dots++] = i;
		} else if (oauth_b64url_value((unsigned char)jwt[i]) < 0) {
			return 0;
		}
	}
	if (dots != 2 || dot[0] == 0 || dot[1] == dot[0] + 1)
		return 0; /* the header and payload are never empty */
	if ((head = segment_json(jwt, dot[0])) == NULL)
		goto out;
	/* The algorithm is ours to choose, not the token's (RFC 8725 §2.1): "none" and HS* stop
	 * here, before libjwt, which would verify HS256 with our RSA public key PEM as the HMAC
	 * secret (the algorithm confusion attack). */
	alg = json_object_get(head, "alg");
	if (!json_is_string(alg))
		goto out;
	if ((a = alg_index(json_string_value(alg))) < 0) {
		*reason_r = "alg_not_allowed";
		goto out;
	}
	/* RFC 7515 §4.1.11: we understand no extension, so a token that requires one is refused.
	 * "typ": libjwt 1.10 refuses anything but "JWT" (RFC 9068's "at+jwt" included). */
	typ = json_object_get(head, "typ");
	if (json_object_get(head, "crit") != NULL ||
	    (typ != NULL && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT"))))
		goto out;
	/* The key comes from our file only: "jwk", "jku", "x5u" and "x5c" headers are ignored. */
	kid = json_object_get(head, "kid");
	if (kid != NULL && !json_is_string(kid))
		goto out;
	if ((key = select_key(k, kid)) == NULL) {
		*reason_r = "unknown_kid";
		goto out;
	}
	if (key->type != algs[a].type || (key->alg >= 0 && key->alg != a)) {
		*reason_r = "alg_not_allowed";
		goto out;
	}
	/* An empty signature, or one with a second spelling (malleability). */
	if (dot[1] + 1 == len ||
	    b64url_decode(jwt + dot[1] + 1, len - dot[1] - 1, NULL, SIZE_MAX, &sig_len) < 0)
		goto out;
	if ((claims = segment_json(jwt + dot[0] + 1, dot[1] - dot[0] - 1)) == NULL)
		goto out;
	if ((copy = malloc(len + 1)) == NULL) {
		*reason_r = "internal";
		ret = -1;
		goto out;
	}
	memcpy(copy, jwt, len);
	copy[len] = '\0';
	r = jwt_decode(&parsed, copy, key->pem, (int)key->pem_len);
	explicit_bzero(copy, len + 1);
	free(copy);
	if (r == ENOMEM) {
		*reason_r = "internal";
		ret = -1;
		goto out;
	}
	if (r != 0 || parsed == NULL || jwt_get_alg(parsed) != algs[a].jwt) {
		*reason_r = "bad_signature";
		goto out;
	}
	if ((ret = check_claims(claims, c, now, user_out, size, reason_r)) == 1)
		*reason_r = "ok";
out:
	jwt_free(parsed);
	json_decref(claims);
	json_decref(head);
	return ret;
}
