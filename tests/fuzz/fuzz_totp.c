/* libFuzzer target for lib/totp.c: the parsers of hostile text (base32, typed codes, the
 * password+code split, TOTP codes) against their stated invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "totp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* Bytes of input used as one string: enough to cross every limit in totp.h. */
#define FUZZ_TEXT_MAX 600

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char secret[TOTP_SECRET_MAX];
	char text[FUZZ_TEXT_MAX + 1], b32[TOTP_BASE32_MAX], norm[TOTP_RECOVERY_TEXT_MAX];
	char code[TOTP_DIGITS + 1], uri[TOTP_URI_MAX];
	size_t n = size < FUZZ_TEXT_MAX ? size : FUZZ_TEXT_MAX, len = 0, pwlen = 0, i;
	int64_t step = -5;
	int rc;

	memcpy(text, data, n);
	text[n] = '\0';

	/* Whatever decodes re-encodes to the very same text: there is one spelling. */
	if (totp_base32_decode(text, secret, sizeof(secret), &len) == 0) {
		CHECK(len >= 1 && len <= TOTP_SECRET_MAX);
		CHECK(totp_base32_encode(secret, len, b32, sizeof(b32)) == 0);
		CHECK(strcmp(b32, text) == 0);
		if (len >= TOTP_SECRET_MIN) {
			rc = totp_uri("Gannet", "fuzz", secret, len, uri, sizeof(uri));
			CHECK(rc == 0 && strstr(uri, b32) != NULL);
		}
	}

	/* A normalised code is upper-case letters and digits only, and shorter than the input. */
	if (totp_code_normalise(text, norm, sizeof(norm)) == 0) {
		CHECK(strlen(norm) >= 1 && strlen(norm) <= strlen(text));
		for (i = 0; norm[i] != '\0'; i++)
			CHECK((norm[i] >= 'A' && norm[i] <= 'Z') ||
			      (norm[i] >= '0' && norm[i] <= '9'));
	}

	if (totp_split(text, n, &pwlen, code) == 1) {
		CHECK(pwlen >= 1 && pwlen + TOTP_DIGITS == n);
		CHECK(memcmp(code, text + pwlen, TOTP_DIGITS) == 0 && code[TOTP_DIGITS] == '\0');
	}

	/* Any text as a code, under a fixed secret and a time taken from the input. */
	memset(secret, 0x5a, TOTP_SECRET_LEN);
	rc = totp_verify(secret, TOTP_SECRET_LEN, text, (time_t)(n > 8 ? data[8] : 0) * 1000000, -1,
	                 &step);
	CHECK(rc == 0 || rc == 1);
	if (rc == 1)
		CHECK(strlen(text) == TOTP_DIGITS && step >= 0);
	else
		CHECK(step == -5);
	return 0;
}
