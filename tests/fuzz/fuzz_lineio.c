/* libFuzzer target for lib/lineio.c: random limits and read splits against a simple model. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lineio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* What line_next must report for the complete line IN[0..LEN) (LF included), however the bytes
 * arrive. */
static enum line_result model(const char *in, size_t len, size_t max, size_t *content_r)
{
	size_t c = len - 1;

	if (c > 0 && in[c - 1] == '\r')
		c--;
	*content_r = c;
	if (max < 2 || c > max - 2)
		return LINE_TOO_LONG;
	if (memchr(in, '\0', c) != NULL || memchr(in, '\r', c) != NULL)
		return LINE_BAD_BYTE;
	return LINE_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct line_reader lr;
	const char *in;
	size_t len, max, used = 0, pos = 0, ref = 0, total = 0;
	uint32_t x;
	char *buf;

	if (size < 3)
		return 0;
	/* Small limits find boundary bugs faster; sometimes use the real one. */
	max = data[0] == 0xff ? 255 : data[0] % 40;
	x = data[1] | (uint32_t)data[2] << 8;
	in = (const char *)data + 3;
	len = size - 3;
	buf = malloc(max + 1);
	CHECK(buf != NULL);
	line_reader_init(&lr, max);

	while (pos < len) {
		size_t n, room = max > used ? max - used : 0;

		/* The caller's buffer holds at most max bytes (one more when max is 0). */
		if (room == 0)
			room = used == 0 ? 1 : 0;
		CHECK(room > 0);
		x = x * 1103515245u + 12345u;
		n = 1 + (x >> 16) % (room < 64 ? room : 64);
		if (n > len - pos)
			n = len - pos;
		memcpy(buf + used, in + pos, n);
		used += n;
		pos += n;
		for (;;) {
			size_t line_len = 12345, consumed = 12345, c, end;
			const char *lf;
			enum line_result r = line_next(&lr, buf, used, &line_len, &consumed);

			CHECK(consumed <= used);
			total += consumed;
			if (r == LINE_NEED_MORE) {
				/* No progress is only fine while there is room to read more. */
				CHECK(consumed > 0 || used < max || used == 0);
				CHECK(line_len == 0);
			} else {
				/* A reported line must match the model line at REF. */
				lf = memchr(in + ref, '\n', len - ref);
				CHECK(lf != NULL);
				end = (size_t)(lf - in) + 1;
				/* Exactly the line and its terminator went, no more, no less. */
				CHECK(total == end);
				CHECK(r == model(in + ref, end - ref, max, &c));
				if (r == LINE_OK) {
					CHECK(max >= 2 && line_len <= max - 2);
					CHECK(line_len == c);
					CHECK(consumed >= line_len + 1);
					CHECK(memcmp(buf, in + ref, line_len) == 0);
				} else {
					CHECK(line_len == 0);
				}
				ref = end;
			}
			memmove(buf, buf + consumed, used - consumed);
			used -= consumed;
			if (r == LINE_NEED_MORE)
				break;
		}
	}
	/* Every complete line was reported: what is left holds no LF. */
	CHECK(memchr(in + ref, '\n', len - ref) == NULL);
	free(buf);
	return 0;
}
