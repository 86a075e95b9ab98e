/* libFuzzer target for lib/utf8.c: the validator against a decoder written differently, the
 * header scan against itself over every split, and SASLprep's contract (valid UTF-8 out, or a
 * refusal). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* RFC 3629 §4 as a table of byte ranges, one sequence at a time. */
static int model_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		uint8_t lo = 0x80, hi = 0xbf;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3;
		else
			return 0;
		if (c == 0xe0)
			lo = 0xa0;
		if (c == 0xed)
			hi = 0x9f;
		if (c == 0xf0)
			lo = 0x90;
		if (c == 0xf4)
			hi = 0x8f;
		if (len - i - 1 < n || s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += n + 1;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct utf8_hdr_scan whole, split;
	char out[512];
	const char *error;

	CHECK(utf8_valid(s, size) == model_valid(data, size));
	utf8_hdr_init(&whole);
	utf8_hdr_feed(&whole, s, size);
	for (size_t k = 0; k <= size && k < 64; k++) {
		utf8_hdr_init(&split);
		utf8_hdr_feed(&split, s, k);
		utf8_hdr_feed(&split, s + k, size - k);
		CHECK(split.eight_bit == whole.eight_bit && split.done == whole.done);
	}
	if (size < 256) {
		for (int stored = 0; stored < 2; stored++) {
			if (utf8_saslprep(s, size, stored, out, sizeof(out), &error) == 0) {
				CHECK(utf8_valid(s, size) && memchr(s, '\0', size) == NULL);
				CHECK(out[0] != '\0' && utf8_valid(out, strlen(out)));
			}
		}
	}
	return 0;
}
