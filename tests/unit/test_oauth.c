/* Unit tests for lib/oauth.c: JWKS loading, JWT validation with keys made here, SASL parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <unistd.h>

#include "oauth.h"

#define NOW      1700000000LL
#define ISSUER   "https://idp.example.com"
#define AUDIENCE "pop3.example.org"
#define USER     "alice@example.org"
#define THREADS  8

/* Keys made once for the whole file: RSA 2048 is slow to generate. */
static struct fixture {
	char dir[64];
	char jwks[128], jwks_single[128], jwks_alg[128];
	char rsa_priv[4096], rsa_pub[2048], ec_priv[1024], ec384_priv[1024], ec2_priv[1024];
	EVP_PKEY *rsa, *rsa1024, *ec, *ec384, *ec2;
	struct oauth_keys *keys;
} fx;

static const struct oauth_conf conf = {ISSUER, AUDIENCE, "email"};

static void b64url(const unsigned char *in, size_t len, char *out, size_t osize)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		unsigned int v = (unsigned int)in[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (unsigned int)in[i + 1] << 8;
		if (n > 2)
			v |= in[i + 2];
		for (size_t j = 0; j < n + 1; j++) {
			assert_true(o + 1 < osize);
			out[o++] = abc[(v >> (18 - 6 * j)) & 63];
		}
	}
	out[o] = '\0';
}

static void bn_param(EVP_PKEY *pk, const char *name, size_t pad, char *out, size_t osize)
{
	unsigned char buf[1024];
	BIGNUM *bn = NULL;
	int n;

	assert_int_equal(EVP_PKEY_get_bn_param(pk, name, &bn), 1);
	n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
	assert_true(n > 0);
	b64url(buf, (size_t)n, out, osize);
	BN_free(bn);
}

static void pem_of(EVP_PKEY *pk, bool priv, char *out, size_t osize)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long n;

	assert_non_null(bio);
	assert_int_equal(priv ? PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL)
	                      : PEM_write_bio_PUBKEY(bio, pk),
	                 1);
	n = BIO_get_mem_data(bio, &data);
	assert_true(n > 0 && (size_t)n < osize);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(bio);
}

/* The public JWK of PK as JSON text, with KID (NULL: none) and EXTRA members appended. */
static void jwk_of(EVP_PKEY *pk, const char *kid, const char *extra, char *out, size_t osize)
{
	char a[1400], b[1400], kidm[160] = "";
	int n;

	if (kid != NULL)
		snprintf(kidm, sizeof(kidm), ",\"kid\":\"%s\"", kid);
	if (EVP_PKEY_is_a(pk, "RSA")) {
		bn_param(pk, OSSL_PKEY_PARAM_RSA_N, 0, a, sizeof(a));
		bn_param(pk, OSSL_PKEY_PARAM_RSA_E, 0, b, sizeof(b));
		n = snprintf(out, osize, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s%s}", a, b,
		             kidm, extra);
	} else {
		size_t c = (size_t)EVP_PKEY_get_bits(pk) / 8;

		bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, c, a, sizeof(a));
		bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, c, b, sizeof(b));
		n = snprintf(out, osize,
		             "{\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s%s}",
		             c == 32 ? "P-256" : "P-384", a, b, kidm, extra);
	}
	assert_true(n > 0 && (size_t)n < osize);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void write_in_dir(const char *name, const char *text, char *path, size_t psize)
{
	snprintf(path, psize, "%s/%s", fx.dir, name);
	write_file(path, text);
}

static int setup(void **state)
{
	char j1[2048], j2[1024], j3[1024], text[8192];
	const char *error = NULL;

	(void)state;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/test_oauth.XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	fx.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	fx.rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	fx.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	fx.ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	fx.ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!fx.rsa || !fx.rsa1024 || !fx.ec || !fx.ec384 || !fx.ec2)
		return -1;
	pem_of(fx.rsa, true, fx.rsa_priv, sizeof(fx.rsa_priv));
	pem_of(fx.rsa, false, fx.rsa_pub, sizeof(fx.rsa_pub));
	pem_of(fx.ec, true, fx.ec_priv, sizeof(fx.ec_priv));
	pem_of(fx.ec384, true, fx.ec384_priv, sizeof(fx.ec384_priv));
	pem_of(fx.ec2, true, fx.ec2_priv, sizeof(fx.ec2_priv));

	jwk_of(fx.rsa, "rsa1", ",\"use\":\"sig\"", j1, sizeof(j1));
	jwk_of(fx.ec, "ec1", "", j2, sizeof(j2));
	jwk_of(fx.ec384, "ec384", ",\"key_ops\":[\"verify\"]", j3, sizeof(j3));
	snprintf(text, sizeof(text), "{\"keys\":[%s,%s,%s]}", j1, j2, j3);
	write_in_dir("jwks.json", text, fx.jwks, sizeof(fx.jwks));

	jwk_of(fx.ec, NULL, "", j2, sizeof(j2));
	snprintf(text, sizeof(text), "{\"keys\":[%s]}", j2);
	write_in_dir("single.json", text, fx.jwks_single, sizeof(fx.jwks_single));

	/* The JWK pins "alg": RS384 with this key must be refused. */
	jwk_of(fx.rsa, "rsa1", ",\"alg\":\"RS256\"", j1, sizeof(j1));
	snprintf(text, sizeof(text), "{\"keys\":[%s]}", j1);
	write_in_dir("alg.json", text, fx.jwks_alg, sizeof(fx.jwks_alg));

	fx.keys = oauth_keys_load(fx.jwks, &error);
	if (fx.keys == NULL) {
		fprintf(stderr, "oauth_keys_load: %s\n", error);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	oauth_keys_free(fx.keys);
	EVP_PKEY_free(fx.rsa);
	EVP_PKEY_free(fx.rsa1024);
	EVP_PKEY_free(fx.ec);
	EVP_PKEY_free(fx.ec384);
	EVP_PKEY_free(fx.ec2);
	/* Our own mkdtemp directory and the files we wrote there, nothing else. */
	static const char *const names[] = {"jwks.json", "single.json", "alg.json", "t.json"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[256];

		snprintf(path, sizeof(path), "%s/%s", fx.dir, names[i]);
		unlink(path);
	}
	rmdir(fx.dir);
	return 0;
}

/* The claims of a good token; tests change them before signing. */
static json_t *claims(void)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "iss", ISSUER, "aud", AUDIENCE,
	                      "email", USER, "sub", "1234567890", "exp", (json_int_t)(NOW + 3600),
	                      "iat", (json_int_t)NOW);

	assert_non_null(c);
	return c;
}

/* Sign CL (consumed) with libjwt: ALG, the private key PEM KEY, header "kid" KID unless NULL. */
static char *sign(jwt_alg_t alg, const char *key, const char *kid, json_t *cl)
{
	char *text = json_dumps(cl, JSON_COMPACT), *tok;
	jwt_t *j = NULL;

	assert_non_null(text);
	assert_int_equal(jwt_new(&j), 0);
	assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key)), 0);
	if (kid != NULL)
		assert_int_equal(jwt_add_header(j, "kid", kid), 0);
	assert_int_equal(jwt_add_grants_json(j, text), 0);
	tok = jwt_encode_str(j);
	assert_non_null(tok);
	jwt_free(j);
	free(text);
	json_decref(cl);
	return tok;
}

static char *sign_rsa(jwt_alg_t alg, json_t *cl)
{
	return sign(alg, fx.rsa_priv, "rsa1", cl);
}

static char *sign_ec(json_t *cl)
{
	return sign(JWT_ALG_ES256, fx.ec_priv, "ec1", cl);
}

/* Header and payload given as JSON text, signature as given (base64url text). */
static char *hand_token(const char *header, const char *payload, const char *sig)
{
	char *t = malloc(16384);
	size_t n;

	assert_non_null(t);
	b64url((const unsigned char *)header, strlen(header), t, 8192);
	n = strlen(t);
	t[n++] = '.';
	b64url((const unsigned char *)payload, strlen(payload), t + n, 8192);
	n = strlen(t);
	snprintf(t + n, 16384 - n, ".%s", sig);
	return t;
}

/* Validate TOK with K and C; return the result, the reason in *REASON_R, the user in USER_R. */
static int check(const struct oauth_keys *k, const struct oauth_conf *c, const char *tok,
                 char *user_r, size_t usize, const char **reason_r)
{
	*reason_r = NULL;
	return oauth_validate(k, c, tok, strlen(tok), (time_t)NOW, user_r, usize, reason_r);
}

static void expect_valid(const char *tok, const char *user)
{
	char out[256] = "junk";
	const char *reason;

	assert_int_equal(check(fx.keys, &conf, tok, out, sizeof(out), &reason), 1);
	assert_string_equal(reason, "ok");
	assert_string_equal(out, user);
}

static void expect_invalid(const char *tok, const char *want)
{
	char out[256] = "junk";
	const char *reason;

	assert_int_equal(check(fx.keys, &conf, tok, out, sizeof(out), &reason), 0);
	assert_string_equal(reason, want);
	assert_string_equal(out, "");
}

/* Sign CL with RS256 and expect WANT (NULL: valid). */
static void rs(json_t *cl, const char *want)
{
	char *tok = sign_rsa(JWT_ALG_RS256, cl);

	if (want == NULL)
		expect_valid(tok, USER);
	else
		expect_invalid(tok, want);
	free(tok);
}

static void test_valid_algorithms(void **state)
{
	char *tok;

	(void)state;
	tok = sign_rsa(JWT_ALG_RS256, claims());
	expect_valid(tok, USER);
	free(tok);
	tok = sign_rsa(JWT_ALG_RS384, claims());
	expect_valid(tok, USER);
	free(tok);
	tok = sign_rsa(JWT_ALG_RS512, claims());
	expect_valid(tok, USER);
	free(tok);
	tok = sign_ec(claims());
	expect_valid(tok, USER);
	free(tok);
	tok = sign(JWT_ALG_ES384, fx.ec384_priv, "ec384", claims());
	expect_valid(tok, USER);
	free(tok);
}

static void test_user_claim_choice(void **state)
{
	struct oauth_conf c = {ISSUER, AUDIENCE, NULL};
	char out[256], *tok = sign_ec(claims());
	const char *reason;

	(void)state;
	/* No user_claim: "sub". */
	assert_int_equal(check(fx.keys, &c, tok, out, sizeof(out), &reason), 1);
	assert_string_equal(out, "1234567890");
	c.user_claim = "";
	assert_int_equal(check(fx.keys, &c, tok, out, sizeof(out), &reason), 1);
	assert_string_equal(out, "1234567890");
	c.user_claim = "preferred_username";
	assert_int_equal(check(fx.keys, &c, tok, out, sizeof(out), &reason), 0);
	assert_string_equal(reason, "no_user_claim");
	/* Room for the user and its NUL exactly, then one byte short. */
	assert_int_equal(check(fx.keys, &conf, tok, out, strlen(USER) + 1, &reason), 1);
	assert_string_equal(out, USER);
	assert_int_equal(check(fx.keys, &conf, tok, out, strlen(USER), &reason), 0);
	assert_string_equal(reason, "user_claim_too_long");
	assert_string_equal(out, "");
	free(tok);
}

static void test_alg_none(void **state)
{
	char *tok;

	(void)state;
	/* Hand-built, signature empty: the classic "alg":"none" bypass, with and without kid. */
	tok = hand_token("{\"alg\":\"none\",\"typ\":\"JWT\"}",
	                 "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"email\":\"" USER
	                 "\",\"exp\":1700003600}",
	                 "");
	assert_true(strncmp(tok, "eyJ", 3) == 0);
	expect_invalid(tok, "alg_not_allowed");
	free(tok);
	tok = hand_token("{\"alg\":\"none\",\"kid\":\"rsa1\"}",
	                 "{\"email\":\"" USER "\",\"exp\":1700003600}", "");
	expect_invalid(tok, "alg_not_allowed");
	free(tok);
	tok = hand_token("{\"alg\":\"None\"}", "{\"email\":\"" USER "\",\"exp\":1700003600}", "");
	expect_invalid(tok, "alg_not_allowed");
	free(tok);
	/* Algorithms outside the list: ES512, PS256, a lower-case spelling, a non-string. */
	tok = hand_token("{\"alg\":\"ES512\",\"kid\":\"ec1\"}", "{\"exp\":1700003600}", "AAAA");
	expect_invalid(tok, "alg_not_allowed");
	free(tok);
	tok = hand_token("{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", "{\"exp\":1700003600}", "AAAA");
	expect_invalid(tok, "alg_not_allowed");
	free(tok);
	tok = hand_token("{\"alg\":\"rs256\",\"kid\":\"rsa1\"}", "{\"exp\":1700003600}", "AAAA");
	expect_invalid(tok, "alg_not_allowed");
	free(tok);
	tok = hand_token("{\"alg\":256,\"kid\":\"rsa1\"}", "{\"exp\":1700003600}", "AAAA");
	expect_invalid(tok, "malformed");
	free(tok);
}

static void test_hs256_confusion(void **state)
{
	jwt_t *parsed = NULL;
	char *tok;

	(void)state;
	/* HS256 with the RSA public key PEM as the HMAC secret: the attacker knows that key. */
	tok = sign(JWT_ALG_HS256, fx.rsa_pub, "rsa1", claims());
	/* The threat is real: libjwt alone accepts this token with our public key. */
	assert_int_equal(
	    jwt_decode(&parsed, tok, (const unsigned char *)fx.rsa_pub, (int)strlen(fx.rsa_pub)),
	    0);
	jwt_free(parsed);
	expect_invalid(tok, "alg_not_allowed");
	free(tok);
	tok = sign(JWT_ALG_HS512, fx.rsa_pub, NULL, claims());
	expect_invalid(tok, "alg_not_allowed");
	free(tok);
}

static void test_bad_signature(void **state)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *tok;
	size_t n;

	(void)state;
	tok = sign_rsa(JWT_ALG_RS256, claims());
	n = strlen(tok);
	/* Flip the top bit of the last letter: a real change of the signature's last bits. */
	tok[n - 1] = abc[(strchr(abc, tok[n - 1]) - abc) ^ 32];
	expect_invalid(tok, "bad_signature");
	free(tok);

	tok = sign_ec(claims());
	n = strlen(tok);
	tok[n - 1] = abc[(strchr(abc, tok[n - 1]) - abc) ^ 32];
	expect_invalid(tok, "bad_signature");
	free(tok);

	/* Signed by another P-256 key under our kid. */
	tok = sign(JWT_ALG_ES256, fx.ec2_priv, "ec1", claims());
	expect_invalid(tok, "bad_signature");
	free(tok);

	/* A changed payload under the original signature. */
	{
		char *a = sign_rsa(JWT_ALG_RS256, claims()), *b, *t;
		json_t *cl = claims();

		json_object_set_new(cl, "email", json_string("mallory@example.org"));
		b = sign_rsa(JWT_ALG_RS256, cl);
		t = malloc(strlen(a) + strlen(b) + 1);
		assert_non_null(t);
		/* b's header and payload, a's signature. */
		snprintf(t, strlen(a) + strlen(b) + 1, "%.*s%s", (int)(strrchr(b, '.') - b), b,
		         strrchr(a, '.'));
		expect_invalid(t, "bad_signature");
		free(a);
		free(b);
		free(t);
	}
}

static void test_time_claims(void **state)
{
	json_t *cl;

	(void)state;
	/* exp: OAUTH_LEEWAY seconds of grace, not one more. */
	cl = claims();
	json_object_set_new(cl, "exp", json_integer(NOW - OAUTH_LEEWAY));
	rs(cl, NULL);
	cl = claims();
	json_object_set_new(cl, "exp", json_integer(NOW - OAUTH_LEEWAY - 1));
	rs(cl, "expired");
	cl = claims();
	json_object_set_new(cl, "exp", json_integer(INT64_MIN));
	rs(cl, "expired");
	cl = claims();
	json_object_set_new(cl, "exp", json_integer(INT64_MAX));
	rs(cl, NULL);
	/* exp is required, and must be a number. */
	cl = claims();
	json_object_del(cl, "exp");
	rs(cl, "malformed");
	cl = claims();
	json_object_set_new(cl, "exp", json_string("1700003600"));
	rs(cl, "malformed");
	/* A fractional exp is rounded down. */
	cl = claims();
	json_object_set_new(cl, "exp", json_real((double)(NOW - OAUTH_LEEWAY) + 0.5));
	rs(cl, NULL);
	cl = claims();
	json_object_set_new(cl, "exp", json_real((double)(NOW - OAUTH_LEEWAY) - 0.5));
	rs(cl, "expired");

	/* nbf and iat in the future, with the same grace. */
	cl = claims();
	json_object_set_new(cl, "nbf", json_integer(NOW + OAUTH_LEEWAY));
	rs(cl, NULL);
	cl = claims();
	json_object_set_new(cl, "nbf", json_integer(NOW + OAUTH_LEEWAY + 1));
	rs(cl, "not_yet_valid");
	cl = claims();
	json_object_set_new(cl, "nbf", json_integer(INT64_MAX));
	rs(cl, "not_yet_valid");
	cl = claims();
	json_object_set_new(cl, "iat", json_integer(NOW + OAUTH_LEEWAY + 1));
	rs(cl, "not_yet_valid");
	cl = claims();
	json_object_set_new(cl, "nbf", json_string("soon"));
	rs(cl, "malformed");
}

static void test_issuer_audience(void **state)
{
	struct oauth_conf open = {NULL, "", "email"};
	char out[256], *tok;
	const char *reason;
	json_t *cl;

	(void)state;
	cl = claims();
	json_object_set_new(cl, "iss", json_string("https://evil.example.com"));
	rs(cl, "wrong_issuer");
	cl = claims();
	json_object_del(cl, "iss");
	rs(cl, "wrong_issuer");
	/* A NUL inside a claim ("\u0000") could shorten a comparison: refused outright. */
	tok = hand_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
	                 "{\"iss\":\"" ISSUER "\\u0000x\",\"email\":\"a\"}", "AAAA");
	expect_invalid(tok, "malformed");
	free(tok);
	cl = claims();
	json_object_set_new(cl, "iss", json_string(ISSUER "/"));
	rs(cl, "wrong_issuer");

	cl = claims();
	json_object_set_new(cl, "aud", json_string("imap.example.org"));
	rs(cl, "wrong_audience");
	cl = claims();
	json_object_del(cl, "aud");
	rs(cl, "wrong_audience");
	cl = claims();
	json_object_set_new(cl, "aud", json_pack("[sss]", "a", AUDIENCE, "b"));
	rs(cl, NULL);
	cl = claims();
	json_object_set_new(cl, "aud", json_pack("[ss]", "a", "b"));
	rs(cl, "wrong_audience");
	cl = claims();
	json_object_set_new(cl, "aud", json_pack("[[s]]", AUDIENCE));
	rs(cl, "wrong_audience");
	cl = claims();
	json_object_set_new(cl, "aud", json_integer(1));
	rs(cl, "wrong_audience");

	/* Neither configured: neither checked. */
	cl = claims();
	json_object_set_new(cl, "iss", json_string("https://other.example.com"));
	json_object_set_new(cl, "aud", json_string("other"));
	tok = sign_rsa(JWT_ALG_RS256, cl);
	assert_int_equal(check(fx.keys, &open, tok, out, sizeof(out), &reason), 1);
	assert_string_equal(out, USER);
	free(tok);
}

static void test_user_claim_values(void **state)
{
	json_t *cl;

	(void)state;
	cl = claims();
	json_object_del(cl, "email");
	rs(cl, "no_user_claim");
	cl = claims();
	json_object_set_new(cl, "email", json_integer(42));
	rs(cl, "no_user_claim");
	cl = claims();
	json_object_set_new(cl, "email", json_string(""));
	rs(cl, "no_user_claim");
	cl = claims();
	json_object_set_new(cl, "email", json_string("alice\r\nevent=forged"));
	rs(cl, "no_user_claim");
	cl = claims();
	json_object_set_new(cl, "email", json_string("jos\xc3\xa9@example.org"));
	{
		char *tok = sign_rsa(JWT_ALG_RS256, cl);

		expect_valid(tok, "jos\xc3\xa9@example.org");
		free(tok);
	}
}

static void test_kid_selection(void **state)
{
	struct oauth_keys *single;
	const char *error = NULL, *reason;
	char out[256], *tok;

	(void)state;
	tok = sign(JWT_ALG_RS256, fx.rsa_priv, "nosuchkey", claims());
	expect_invalid(tok, "unknown_kid");
	free(tok);
	/* Three keys and no kid: no guessing. */
	tok = sign(JWT_ALG_RS256, fx.rsa_priv, NULL, claims());
	expect_invalid(tok, "unknown_kid");
	free(tok);
	/* An ES256 token naming the RSA key, and RS256 naming the EC key. */
	tok = sign(JWT_ALG_ES256, fx.ec_priv, "rsa1", claims());
	expect_invalid(tok, "alg_not_allowed");
	free(tok);
	tok = sign(JWT_ALG_RS256, fx.rsa_priv, "ec1", claims());
	expect_invalid(tok, "alg_not_allowed");
	free(tok);
	/* ES384 names the P-256 key: the curve must fit the algorithm. */
	tok = sign(JWT_ALG_ES384, fx.ec384_priv, "ec1", claims());
	expect_invalid(tok, "alg_not_allowed");
	free(tok);

	/* A file with one key and no kid: tokens with or without kid use it. */
	single = oauth_keys_load(fx.jwks_single, &error);
	assert_non_null(single);
	tok = sign(JWT_ALG_ES256, fx.ec_priv, NULL, claims());
	assert_int_equal(check(single, &conf, tok, out, sizeof(out), &reason), 1);
	free(tok);
	tok = sign(JWT_ALG_ES256, fx.ec_priv, "whatever", claims());
	assert_int_equal(check(single, &conf, tok, out, sizeof(out), &reason), 1);
	free(tok);
	tok = sign(JWT_ALG_ES256, fx.ec2_priv, NULL, claims());
	assert_int_equal(check(single, &conf, tok, out, sizeof(out), &reason), 0);
	assert_string_equal(reason, "bad_signature");
	free(tok);
	oauth_keys_free(single);

	/* A JWK with "alg" takes that algorithm only. */
	single = oauth_keys_load(fx.jwks_alg, &error);
	assert_non_null(single);
	tok = sign_rsa(JWT_ALG_RS256, claims());
	assert_int_equal(check(single, &conf, tok, out, sizeof(out), &reason), 1);
	free(tok);
	tok = sign_rsa(JWT_ALG_RS384, claims());
	assert_int_equal(check(single, &conf, tok, out, sizeof(out), &reason), 0);
	assert_string_equal(reason, "alg_not_allowed");
	free(tok);
	/* One key with a kid: a token without kid may use it, one with another kid may not. */
	tok = sign(JWT_ALG_RS256, fx.rsa_priv, NULL, claims());
	assert_int_equal(check(single, &conf, tok, out, sizeof(out), &reason), 1);
	free(tok);
	tok = sign(JWT_ALG_RS256, fx.rsa_priv, "rsa2", claims());
	assert_int_equal(check(single, &conf, tok, out, sizeof(out), &reason), 0);
	assert_string_equal(reason, "unknown_kid");
	free(tok);
	oauth_keys_free(single);
}

static void test_token_shape(void **state)
{
	char *tok, *big, out[256];
	const char *reason;
	json_t *cl;
	size_t n;

	(void)state;
	/* Just over OAUTH_TOKEN_MAX: refused before anything is decoded. */
	cl = claims();
	big = malloc(OAUTH_TOKEN_MAX);
	assert_non_null(big);
	memset(big, 'x', OAUTH_TOKEN_MAX - 1);
	big[OAUTH_TOKEN_MAX - 1] = '\0';
	json_object_set_new(cl, "pad", json_string(big));
	tok = sign_rsa(JWT_ALG_RS256, cl);
	assert_true(strlen(tok) > OAUTH_TOKEN_MAX);
	expect_invalid(tok, "malformed");
	/* The same bytes cut to the limit are refused as well (no longer a valid token). */
	assert_int_equal(oauth_validate(fx.keys, &conf, tok, OAUTH_TOKEN_MAX, (time_t)NOW, out,
	                                sizeof(out), &reason),
	                 0);
	free(tok);
	/* A 5 kB token (many group claims) is fine. */
	cl = claims();
	big[3500] = '\0';
	json_object_set_new(cl, "pad", json_string(big));
	tok = sign_rsa(JWT_ALG_RS256, cl);
	assert_true(strlen(tok) > 5000 && strlen(tok) <= OAUTH_TOKEN_MAX);
	expect_valid(tok, USER);
	free(tok);
	free(big);

	/* LEN counts: a valid token followed by junk is judged on LEN bytes only. */
	tok = sign_ec(claims());
	n = strlen(tok);
	assert_int_equal(
	    oauth_validate(fx.keys, &conf, tok, n - 1, (time_t)NOW, out, sizeof(out), &reason), 0);
	free(tok);

	expect_invalid("", "malformed");
	expect_invalid("abc", "malformed");
	expect_invalid("a.b", "malformed");
	expect_invalid("a.b.c.d", "malformed");
	expect_invalid("eyJhbGciOiJSUzI1NiJ9..AAAA", "malformed");
	expect_invalid(".e30.AAAA", "malformed");
	tok = hand_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "{\"exp\":1700003600}", "");
	expect_invalid(tok, "malformed");
	free(tok);
	/* Padding, spaces and standard-base64 letters are not base64url. */
	tok = sign_ec(claims());
	n = strlen(tok);
	tok[n - 1] = '=';
	expect_invalid(tok, "malformed");
	tok[n - 1] = '+';
	expect_invalid(tok, "malformed");
	free(tok);
	/* The last signature letter with non-zero unused bits: a second spelling, refused. */
	tok = sign_ec(claims());
	n = strlen(tok);
	{
		static const char abc[] =
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		/* 64-byte signature: 86 letters, the last carries 4 bits and 2 unused. */
		tok[n - 1] = abc[(strchr(abc, tok[n - 1]) - abc) ^ 1];
	}
	expect_invalid(tok, "malformed");
	free(tok);
	/* Header not JSON, not an object, duplicate alg, crit, typ other than JWT. */
	tok = hand_token("{\"alg\":\"RS256\"", "{}", "AAAA");
	expect_invalid(tok, "malformed");
	free(tok);
	tok = hand_token("[\"RS256\"]", "{}", "AAAA");
	expect_invalid(tok, "malformed");
	free(tok);
	tok = hand_token("{\"alg\":\"RS256\",\"alg\":\"none\"}", "{}", "AAAA");
	expect_invalid(tok, "malformed");
	free(tok);
	tok = hand_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"exp\"]}", "{}", "AAAA");
	expect_invalid(tok, "malformed");
	free(tok);
	tok = hand_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"at+jwt\"}", "{}", "AAAA");
	expect_invalid(tok, "malformed");
	free(tok);
	tok = hand_token("{\"alg\":\"RS256\",\"kid\":[\"rsa1\"]}", "{}", "AAAA");
	expect_invalid(tok, "malformed");
	free(tok);
	/* Payload not an object. */
	tok = hand_token("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "[1]", "AAAA");
	expect_invalid(tok, "malformed");
	free(tok);
	/* Bad arguments are internal errors. */
	assert_int_equal(
	    oauth_validate(NULL, &conf, "a.b.c", 5, (time_t)NOW, out, sizeof(out), &reason), -1);
	assert_int_equal(oauth_validate(fx.keys, &conf, "a.b.c", 5, (time_t)NOW, out, 0, &reason),
	                 -1);
}

static void *validate_thread(void *arg)
{
	char *const *toks = arg;
	long bad = 0;

	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 3; i++) {
			char out[256];
			const char *reason;
			int want = i < 2 ? 1 : 0;

			if (oauth_validate(fx.keys, &conf, toks[i], strlen(toks[i]), (time_t)NOW,
			                   out, sizeof(out), &reason) != want ||
			    (want == 1 && strcmp(out, USER) != 0) ||
			    (want == 0 && strcmp(reason, "expired") != 0))
				bad++;
		}
	}
	return (void *)bad;
}

static void test_threads(void **state)
{
	pthread_t th[THREADS];
	char *toks[3];
	json_t *cl = claims();

	(void)state;
	toks[0] = sign_rsa(JWT_ALG_RS256, claims());
	toks[1] = sign_ec(claims());
	json_object_set_new(cl, "exp", json_integer(NOW - 3600));
	toks[2] = sign_ec(cl);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, validate_thread, toks), 0);
	for (int i = 0; i < THREADS; i++) {
		void *bad;

		assert_int_equal(pthread_join(th[i], &bad), 0);
		assert_true(bad == NULL);
	}
	for (int i = 0; i < 3; i++)
		free(toks[i]);
}

/* --- JWKS files ------------------------------------------------------------------------------ */

/* Load TEXT as a JWKS; expect failure with an error containing WANT, or success if WANT NULL. */
static void jwks(const char *text, const char *want)
{
	char path[128];
	const char *error = NULL;
	struct oauth_keys *k;

	write_in_dir("t.json", text, path, sizeof(path));
	k = oauth_keys_load(path, &error);
	if (want == NULL) {
		if (k == NULL)
			fail_msg("unexpected error: %s", error);
		oauth_keys_free(k);
		return;
	}
	assert_null(k);
	assert_non_null(error);
	if (strstr(error, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", error, want);
}

static void test_jwks_errors(void **state)
{
	char rsa[2048], ec[1024], other[2048], text[8192], *p;
	const char *error = NULL;

	(void)state;
	jwk_of(fx.rsa, "rsa1", "", rsa, sizeof(rsa));
	jwk_of(fx.ec, "ec1", "", ec, sizeof(ec));

	/* Weak keys refuse the whole file: an administrator must notice, not lose a key. */
	jwk_of(fx.rsa1024, "weak", "", other, sizeof(other));
	snprintf(text, sizeof(text), "{\"keys\":[%s,%s]}", rsa, other);
	jwks(text, "keys[1]: RSA key of 1024 bits refused (2048 to 8192 allowed)");

	jwks("this is not json", "t.json: line 1 column 4: '[' or '{' expected");
	jwks("", "empty file");
	jwks("{\"keys\":", "line 1");
	jwks("[]", "no \"keys\" array");
	jwks("{\"kty\":\"RSA\"}", "no \"keys\" array");
	jwks("{\"keys\":{}}", "no \"keys\" array");
	jwks("{\"keys\":[]}", "no usable key");
	jwks("{\"keys\":[1]}", "keys[0]: not an object");
	jwks("{\"keys\":[{\"n\":\"AQAB\"}]}", "keys[0]: no \"kty\" string");
	jwks("{\"keys\":[],\"keys\":[]}", "duplicate object key");

	/* Bad base64url in n, x; padding; missing e. */
	snprintf(text, sizeof(text), "{\"keys\":[%s]}", rsa);
	p = strstr(text, "\"n\":\"") + 6;
	*p = '+';
	jwks(text, "keys[0]: \"n\" is not base64url");
	snprintf(text, sizeof(text), "{\"keys\":[%s]}", ec);
	p = strstr(text, "\"x\":\"") + 5;
	*p = '!';
	jwks(text, "keys[0]: \"x\" is not base64url");
	jwks("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB==\"}]}",
	     "keys[0]: \"e\" is not base64url");
	jwks("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", "keys[0]: no \"e\" string");
	/* An x one byte short; a point not on the curve. */
	jwks("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}",
	     "x and y must be 32 bytes");
	snprintf(text, sizeof(text), "{\"keys\":[%s]}", ec);
	p = strstr(text, "\"y\":\"") + 5;
	*p = *p == 'A' ? 'B' : 'A';
	jwks(text, "keys[0]: not a point on P-256");

	/* Symmetric and private keys, a duplicate kid, too many keys. */
	jwks("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", "symmetric key");
	snprintf(text, sizeof(text), "{\"keys\":[%.*s,\"d\":\"AQAB\"}]}", (int)strlen(rsa) - 1,
	         rsa);
	jwks(text, "private key material (\"d\")");
	snprintf(text, sizeof(text), "{\"keys\":[%s,%s]}", rsa, rsa);
	jwks(text, "keys[1]: duplicate kid \"rsa1\"");
	p = text + snprintf(text, sizeof(text), "{\"keys\":[");
	for (int i = 0; i <= OAUTH_KEYS_MAX; i++)
		p += snprintf(p, (size_t)(text + sizeof(text) - p), "%s{\"kty\":\"OKP\"}",
		              i ? "," : "");
	snprintf(p, (size_t)(text + sizeof(text) - p), "]}");
	jwks(text, "33 keys, at most 32 allowed");
	jwk_of(fx.rsa, "rsa1", ",\"alg\":\"ES256\"", other, sizeof(other));
	snprintf(text, sizeof(text), "{\"keys\":[%s]}", other);
	jwks(text, "\"alg\" ES256 does not fit the key");

	/* Keys we cannot use are skipped, the rest loads. */
	jwk_of(fx.rsa, "enc", ",\"use\":\"enc\"", other, sizeof(other));
	snprintf(text, sizeof(text),
	         "{\"keys\":[%s,{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},%s]}", other,
	         ec);
	jwks(text, NULL);
	jwk_of(fx.rsa, "enc", ",\"use\":\"enc\"", other, sizeof(other));
	snprintf(text, sizeof(text), "{\"keys\":[%s]}", other);
	jwks(text, "no usable key");
	jwk_of(fx.rsa, "ps", ",\"alg\":\"PS256\"", other, sizeof(other));
	snprintf(text, sizeof(text), "{\"keys\":[%s]}", other);
	jwks(text, "no usable key");

	/* Files: missing, a directory, too large. */
	assert_null(oauth_keys_load("/nonexistent/jwks.json", &error));
	assert_string_equal(error, "/nonexistent/jwks.json: No such file or directory");
	assert_null(oauth_keys_load(fx.dir, &error));
	assert_non_null(strstr(error, "not a regular file"));
	{
		char *huge = malloc(OAUTH_JWKS_FILE_MAX + 2);

		assert_non_null(huge);
		memset(huge, ' ', OAUTH_JWKS_FILE_MAX + 1);
		huge[OAUTH_JWKS_FILE_MAX + 1] = '\0';
		memcpy(huge, "{\"keys\":[]}", 11);
		jwks(huge, "larger than 65536 bytes");
		/* Exactly at the limit it is read (and then has no usable key). */
		huge[OAUTH_JWKS_FILE_MAX] = '\0';
		jwks(huge, "no usable key");
		free(huge);
	}
	oauth_keys_free(NULL);
}

/* --- SASL messages --------------------------------------------------------------------------- */

static int ob(const char *msg, size_t len, char *a, char *t, const char **error)
{
	*error = NULL;
	return oauth_parse_oauthbearer(msg, len, a, 256, t, OAUTH_TOKEN_MAX + 1, error);
}

#define OB(s, a, t, e) ob(s, sizeof(s) - 1, a, t, e)

static void test_oauthbearer(void **state)
{
	char a[256], t[OAUTH_TOKEN_MAX + 1];
	const char *e;

	(void)state;
	/* RFC 7628 §4.1, the example. */
	assert_int_equal(OB("n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
	                    "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01",
	                    a, t, &e),
	                 0);
	assert_string_equal(a, "user@example.com");
	assert_string_equal(t, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
	/* No authzid; "Bearer" in any case (RFC 6750 / RFC 7235), several spaces. */
	assert_int_equal(OB("n,,\x01"
	                    "auth=bearer abc.def-_~+/\x01\x01",
	                    a, t, &e),
	                 0);
	assert_string_equal(a, "");
	assert_string_equal(t, "abc.def-_~+/");
	assert_int_equal(OB("n,,\x01"
	                    "auth=BEARER  x\x01\x01",
	                    a, t, &e),
	                 0);
	assert_string_equal(t, "x");
	/* =2C and =3D decoded; unknown keys ignored. */
	assert_int_equal(OB("n,a=a=2Cb=3Dc,\x01mfa=yes\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 0);
	assert_string_equal(a, "a,b=c");

	/* Refusals, each with its reason; the outputs are left empty. */
	assert_int_equal(OB("n,,\x01"
	                    "auth=Bearer x\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "unterminated response (no \\x01\\x01)");
	assert_string_equal(t, "");
	assert_int_equal(OB("n,,\x01"
	                    "auth=Bearer x",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "unterminated response (no \\x01\\x01)");
	assert_int_equal(OB("n,,\x01host=h\x01\x01", a, t, &e), -1);
	assert_string_equal(e, "no auth= in response");
	assert_int_equal(OB("n,,\x01\x01", a, t, &e), -1);
	assert_string_equal(e, "no auth= in response");
	assert_int_equal(OB("n,,\x01"
	                    "auth=Basic dXNlcjpwYXNz\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "auth scheme is not Bearer");
	assert_int_equal(OB("n,,\x01"
	                    "auth=Bearerx\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "auth scheme is not Bearer");
	assert_int_equal(OB("n,,\x01"
	                    "auth=Bearer \x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "empty bearer token");
	assert_int_equal(OB("n,,\x01"
	                    "auth=Bearer a b\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad character in bearer token");
	assert_int_equal(OB("n,,\x01"
	                    "auth=Bearer a=b\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad character in bearer token");
	assert_int_equal(OB("n,,\x01"
	                    "auth=Bearer x\x01"
	                    "auth=Bearer y\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "auth= given twice");
	assert_int_equal(OB("n,,\x01"
	                    "auth=Bearer x\x01\x01junk",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "data after the final \\x01");
	assert_int_equal(OB("p=tls-unique,,\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "channel binding is not supported");
	assert_int_equal(OB("y,,\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "channel binding is not supported");
	assert_int_equal(OB("n,a=u,\x01"
	                    "auth=Bearer x\0y\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "NUL byte in response");
	assert_int_equal(OB("n,a=u\0,\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "NUL byte in response");
	assert_int_equal(OB("n,a=a=2Db,\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad =XX escape in authzid");
	assert_int_equal(OB("n,a=ab=,\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad =XX escape in authzid");
	assert_int_equal(OB("n,a=,\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad authzid");
	assert_int_equal(OB("n,u=x,\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad authzid");
	assert_int_equal(OB("n,a=\x1b[2J,\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad authzid");
	assert_int_equal(OB("n,a=\xc0\xaf,\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad authzid");
	assert_int_equal(OB("n,,auth=Bearer x\x01\x01", a, t, &e), -1);
	assert_string_equal(e, "bad gs2 header");
	assert_int_equal(OB("F,n,,\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad gs2 header");
	assert_int_equal(OB("n\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad gs2 header");
	assert_int_equal(OB("n,,\x01=x\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad key=value pair");
	assert_int_equal(OB("n,,\x01ho st=x\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad key=value pair");
	assert_int_equal(OB("n,,\x01host=\xff\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad key=value pair");
	assert_int_equal(OB("n,,\x01nokey\x01"
	                    "auth=Bearer x\x01\x01",
	                    a, t, &e),
	                 -1);
	assert_string_equal(e, "bad key=value pair");
	assert_int_equal(OB("\x01", a, t, &e), -1);
	assert_string_equal(e, "client ended the exchange");
	assert_int_equal(ob("", 0, a, t, &e), -1);
	assert_string_equal(e, "empty response");
	/* OAUTH_KVPAIRS_MAX pairs with auth the last is fine; one more is not. */
	{
		char msg[512];
		size_t n = (size_t)snprintf(msg, sizeof(msg), "n,,\x01");

		for (int i = 0; i < OAUTH_KVPAIRS_MAX - 1; i++)
			n += (size_t)snprintf(msg + n, sizeof(msg) - n, "k=v\x01");
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, "auth=Bearer x\x01\x01");
		assert_int_equal(ob(msg, n, a, t, &e), 0);
		memmove(msg + 4 + 4, msg + 4, n - 4);
		memcpy(msg + 4, "k=v\x01", 4);
		assert_int_equal(ob(msg, n + 4, a, t, &e), -1);
		assert_string_equal(e, "too many key=value pairs");
	}
	/* Token and authzid sizes: exactly fitting, then one too many. */
	{
		char msg[OAUTH_SASL_MAX + 16], small[4];
		size_t n = (size_t)snprintf(msg, sizeof(msg),
		                            "n,,\x01"
		                            "auth=Bearer ");

		memset(msg + n, 'A', OAUTH_TOKEN_MAX);
		memcpy(msg + n + OAUTH_TOKEN_MAX, "\x01\x01", 2);
		assert_int_equal(ob(msg, n + OAUTH_TOKEN_MAX + 2, a, t, &e), 0);
		assert_int_equal(strlen(t), OAUTH_TOKEN_MAX);
		msg[n + OAUTH_TOKEN_MAX] = 'A';
		memcpy(msg + n + OAUTH_TOKEN_MAX + 1, "\x01\x01", 2);
		assert_int_equal(ob(msg, n + OAUTH_TOKEN_MAX + 3, a, t, &e), -1);
		assert_string_equal(e, "bearer token too long");
		assert_int_equal(oauth_parse_oauthbearer("n,,\x01"
		                                         "auth=Bearer abcd\x01\x01",
		                                         21, a, sizeof(a), small, sizeof(small),
		                                         &e),
		                 -1);
		assert_string_equal(e, "bearer token too long");
		assert_int_equal(oauth_parse_oauthbearer("n,a=abc,\x01"
		                                         "auth=Bearer x\x01\x01",
		                                         24, small, sizeof(small), t, sizeof(t),
		                                         &e),
		                 0);
		assert_string_equal(small, "abc");
		assert_int_equal(oauth_parse_oauthbearer("n,a=abcd,\x01"
		                                         "auth=Bearer x\x01\x01",
		                                         25, small, sizeof(small), t, sizeof(t),
		                                         &e),
		                 -1);
		assert_string_equal(e, "authzid too long");
		memset(msg, 'A', sizeof(msg));
		assert_int_equal(ob(msg, OAUTH_SASL_MAX + 1, a, t, &e), -1);
		assert_string_equal(e, "response too long");
	}
}

static int xo(const char *msg, size_t len, char *u, char *t, const char **error)
{
	*error = NULL;
	return oauth_parse_xoauth2(msg, len, u, 256, t, OAUTH_TOKEN_MAX + 1, error);
}

#define XO(s, u, t, e) xo(s, sizeof(s) - 1, u, t, e)

static void test_xoauth2(void **state)
{
	char u[256], t[OAUTH_TOKEN_MAX + 1];
	const char *e;

	(void)state;
	/* Google's documented example. */
	assert_int_equal(XO("user=someuser@example.com\x01"
	                    "auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01",
	                    u, t, &e),
	                 0);
	assert_string_equal(u, "someuser@example.com");
	assert_string_equal(t, "ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg");
	assert_int_equal(XO("user=a\x01"
	                    "auth=bEaReR tok\x01\x01",
	                    u, t, &e),
	                 0);
	assert_string_equal(t, "tok");

	assert_int_equal(XO("user=a\x01"
	                    "auth=Bearer tok\x01",
	                    u, t, &e),
	                 -1);
	assert_string_equal(e, "unterminated response (no \\x01\\x01)");
	assert_string_equal(u, "");
	assert_string_equal(t, "");
	assert_int_equal(XO("user=a\x01"
	                    "auth=Bearer tok",
	                    u, t, &e),
	                 -1);
	assert_string_equal(e, "unterminated response (no \\x01\\x01)");
	assert_int_equal(XO("user=a\x01\x01", u, t, &e), -1);
	assert_string_equal(e, "no auth= after user=");
	assert_int_equal(XO("user=a\x01"
	                    "token=Bearer tok\x01\x01",
	                    u, t, &e),
	                 -1);
	assert_string_equal(e, "no auth= after user=");
	assert_int_equal(XO("auth=Bearer tok\x01user=a\x01\x01", u, t, &e), -1);
	assert_string_equal(e, "no user= at the start");
	assert_int_equal(XO("user=\x01"
	                    "auth=Bearer tok\x01\x01",
	                    u, t, &e),
	                 -1);
	assert_string_equal(e, "bad user name");
	assert_int_equal(XO("user=a\tb\x01"
	                    "auth=Bearer tok\x01\x01",
	                    u, t, &e),
	                 -1);
	assert_string_equal(e, "bad user name");
	assert_int_equal(XO("user=a\0b\x01"
	                    "auth=Bearer tok\x01\x01",
	                    u, t, &e),
	                 -1);
	assert_string_equal(e, "NUL byte in response");
	assert_int_equal(XO("user=a\x01"
	                    "auth=Bearer t\0k\x01\x01",
	                    u, t, &e),
	                 -1);
	assert_string_equal(e, "NUL byte in response");
	assert_int_equal(XO("user=a\x01"
	                    "auth=Basic tok\x01\x01",
	                    u, t, &e),
	                 -1);
	assert_string_equal(e, "auth scheme is not Bearer");
	assert_int_equal(XO("user=a\x01"
	                    "auth=Bearer tok\x01\x01x",
	                    u, t, &e),
	                 -1);
	assert_string_equal(e, "data after the final \\x01");
	assert_int_equal(oauth_parse_xoauth2("user=abcd\x01"
	                                     "auth=Bearer x\x01\x01",
	                                     25, u, 4, t, sizeof(t), &e),
	                 -1);
	assert_string_equal(e, "user name too long");
}

static void test_error_json(void **state)
{
	static const char plain[] = "{\"status\":\"invalid_token\",\"schemes\":\"bearer\","
	                            "\"scope\":\"pop3\"}";
	static const char with_iss[] =
	    "{\"status\":\"invalid_token\",\"schemes\":\"bearer\",\"scope\":\"pop3\","
	    "\"openid-configuration\":\"https://idp.example.com/.well-known/"
	    "openid-configuration\"}";
	struct oauth_conf c = {NULL, AUDIENCE, NULL};
	char out[512];

	(void)state;
	assert_int_equal(oauth_error_json(&c, out, sizeof(out)), 0);
	assert_string_equal(out, plain);
	c.issuer = "";
	assert_int_equal(oauth_error_json(&c, out, sizeof(out)), 0);
	assert_string_equal(out, plain);
	c.issuer = ISSUER;
	assert_int_equal(oauth_error_json(&c, out, sizeof(out)), 0);
	assert_string_equal(out, with_iss);
	c.issuer = ISSUER "/";
	assert_int_equal(oauth_error_json(&c, out, sizeof(out)), 0);
	assert_string_equal(out, with_iss);
	/* Exactly fitting with its NUL, then one byte short. */
	assert_int_equal(oauth_error_json(&c, out, sizeof(with_iss)), 0);
	assert_string_equal(out, with_iss);
	assert_int_equal(oauth_error_json(&c, out, sizeof(with_iss) - 1), -1);
	assert_string_equal(out, "");
	/* The issuer is escaped, not pasted. */
	c.issuer = "https://x\"y";
	assert_int_equal(oauth_error_json(&c, out, sizeof(out)), 0);
	assert_string_equal(out, "{\"status\":\"invalid_token\",\"schemes\":\"bearer\",\"scope\":"
	                         "\"pop3\",\"openid-configuration\":"
	                         "\"https://x\\\"y/.well-known/openid-configuration\"}");
	c.issuer = "https://\xff";
	assert_int_equal(oauth_error_json(&c, out, sizeof(out)), -1);
	assert_int_equal(oauth_error_json(NULL, out, sizeof(out)), 0);
	assert_string_equal(out, plain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_algorithms), cmocka_unit_test(test_user_claim_choice),
	    cmocka_unit_test(test_alg_none),         cmocka_unit_test(test_hs256_confusion),
	    cmocka_unit_test(test_bad_signature),    cmocka_unit_test(test_time_claims),
	    cmocka_unit_test(test_issuer_audience),  cmocka_unit_test(test_user_claim_values),
	    cmocka_unit_test(test_kid_selection),    cmocka_unit_test(test_token_shape),
	    cmocka_unit_test(test_threads),          cmocka_unit_test(test_jwks_errors),
	    cmocka_unit_test(test_oauthbearer),      cmocka_unit_test(test_xoauth2),
	    cmocka_unit_test(test_error_json),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
