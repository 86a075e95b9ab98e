/* Strict decimal parsing; replaces atoi/strtoul, which accept signs, spaces and overflow. */
#include "strnum.h"

#include <string.h>

int strnum_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out_r)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return -1;
	/* "01" is refused: one spelling per number keeps LIST 01 from meaning message 1. */
	if (s[0] == '0' && len > 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	*out_r = v;
	return 0;
}

int strnum_parse(const char *s, uint64_t min, uint64_t max, uint64_t *out_r)
{
	return strnum_u64(s, strlen(s), min, max, out_r);
}
