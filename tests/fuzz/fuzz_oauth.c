/* libFuzzer target for lib/oauth.c: the OAUTHBEARER and XOAUTH2 parsers, and oauth_validate
 * against one fixed P-256 key, on every input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oauth.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* The public half of a key made for this target only (its private half signed the seed token
 * in seeds/fuzz_oauth/token and was then thrown away). The seed is valid at NOW. */
#define JWKS                                                                                       \
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"fuzz\",\"use\":\"sig\","           \
	"\"x\":\"6AD-o3jyHqB84hr9p8Xj5R1es75f6_CgRl7oqdGJnBE\","                                   \
	"\"y\":\"5vW4Dl6tL6OvoMKgVWm6q7AE0Y1ohlj8PE20sS-Cf58\"}]}"
#define NOW ((time_t)1700000000)

/* Small on purpose, so that "too long" paths are reached. */
#define AUTHZID_SIZE 64
#define USER_SIZE    32

static struct oauth_keys *keys;
static const struct oauth_conf conf = {"https://idp.example.com", "pop3.example.org", "email"};

static const char *const reasons[] = {
    "malformed",     "alg_not_allowed", "unknown_kid",    "bad_signature", "expired",
    "not_yet_valid", "wrong_issuer",    "wrong_audience", "no_user_claim", "user_claim_too_long",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/fuzz_oauth.XXXXXX";
	const char *error = NULL;
	int fd = mkstemp(path);

	(void)argc;
	(void)argv;
	CHECK(fd >= 0);
	CHECK(write(fd, JWKS, sizeof(JWKS) - 1) == (ssize_t)(sizeof(JWKS) - 1));
	close(fd);
	keys = oauth_keys_load(path, &error);
	unlink(path);
	if (keys == NULL) {
		fprintf(stderr, "fuzz_oauth: %s\n", error);
		abort();
	}
	return 0;
}

static bool b64token_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       strchr("-._~+/=", c) != NULL;
}

/* 1 or 0 with a known reason, and a NUL-terminated user within SIZE. */
static void validate(const char *jwt, size_t len, size_t size)
{
	char user[USER_SIZE];
	const char *reason = NULL;
	int r;

	CHECK(size <= sizeof(user));
	r = oauth_validate(keys, &conf, jwt, len, NOW, user, size, &reason);
	CHECK(reason != NULL);
	if (r == 1) {
		CHECK(strcmp(reason, "ok") == 0);
		CHECK(strlen(user) > 0 && strlen(user) < size);
		return;
	}
	CHECK(r == 0);
	CHECK(user[0] == '\0');
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(reason, reasons[i]) == 0)
			return;
	abort();
}

static void check_token(const char *token)
{
	size_t n = strlen(token);

	CHECK(n > 0 && n <= OAUTH_TOKEN_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK(b64token_char(token[i]));
	validate(token, n, USER_SIZE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy: ASan reports any read past the end (there is no NUL). */
	char *msg = malloc(size ? size : 1), *token = malloc(OAUTH_TOKEN_MAX + 1);
	char name[AUTHZID_SIZE];
	const char *error = NULL;

	CHECK(msg != NULL && token != NULL);
	memcpy(msg, data, size);

	if (oauth_parse_oauthbearer(msg, size, name, sizeof(name), token, OAUTH_TOKEN_MAX + 1,
	                            &error) == 0) {
		CHECK(strlen(name) < sizeof(name));
		CHECK(size >= 2 && msg[0] == 'n' && msg[size - 1] == '\x01' &&
		      msg[size - 2] == '\x01');
		check_token(token);
	} else {
		CHECK(error != NULL && name[0] == '\0' && token[0] == '\0');
	}
	error = NULL;
	if (oauth_parse_xoauth2(msg, size, name, sizeof(name), token, OAUTH_TOKEN_MAX + 1,
	                        &error) == 0) {
		CHECK(strlen(name) > 0 && strlen(name) < sizeof(name));
		CHECK(size > 5 && memcmp(msg, "user=", 5) == 0);
		check_token(token);
	} else {
		CHECK(error != NULL && name[0] == '\0' && token[0] == '\0');
	}
	/* The whole input as a token, with room for a user and with almost none. */
	validate(msg, size, USER_SIZE);
	validate(msg, size, 2);
	free(token);
	free(msg);
	return 0;
}
