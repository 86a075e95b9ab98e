/* libFuzzer target for the POP3 wire encoder: chunking, sizes, stuffing and TOP against models. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

struct out {
	char *p;
	size_t len;
};

/* Encode MSG with chunk sizes drawn from SIZES[0..NSIZES) in turn (0 = one byte). Each call
 * gets a heap buffer of exactly the documented capacity so ASan sees any overrun. */
static uint64_t encode(const char *msg, size_t len, bool stuff, uint64_t top, const uint8_t *sizes,
                       size_t nsizes, struct out *o)
{
	struct pop3_enc e;
	size_t off = 0, i = 0, n;
	char *tmp;

	o->p = malloc(2 * len + 3);
	o->len = 0;
	CHECK(o->p != NULL);
	pop3_enc_init(&e, stuff, top);
	while (off < len) {
		size_t chunk = nsizes ? (size_t)sizes[i++ % nsizes] * 3 + 1 : len;

		if (chunk > len - off)
			chunk = len - off;
		tmp = malloc(2 * chunk + 3);
		CHECK(tmp != NULL);
		n = pop3_enc_feed(&e, msg + off, chunk, tmp);
		CHECK(n <= 2 * chunk + 3);
		CHECK(o->len + n <= 2 * len + 3);
		memcpy(o->p + o->len, tmp, n);
		o->len += n;
		free(tmp);
		off += chunk;
		if (pop3_enc_done(&e))
			CHECK(top != UINT64_MAX);
	}
	tmp = malloc(3);
	CHECK(tmp != NULL);
	n = pop3_enc_finish(&e, tmp);
	CHECK(n <= 3 && o->len + n <= 2 * len + 3);
	memcpy(o->p + o->len, tmp, n);
	o->len += n;
	free(tmp);
	return e.size;
}

/* Well-formed wire text: every LF preceded by CR, ends in CRLF unless empty. */
static void check_crlf(const struct out *o)
{
	for (size_t i = 0; i < o->len; i++)
		if (o->p[i] == '\n')
			CHECK(i > 0 && o->p[i - 1] == '\r');
	if (o->len > 0)
		CHECK(o->len >= 2 && o->p[o->len - 2] == '\r' && o->p[o->len - 1] == '\n');
}

/* A client's view: drop the '.' that starts a line; also no line may be a lone "." (it would
 * end the response early). */
static void check_unstuff(const struct out *s, const struct out *u)
{
	size_t j = 0;
	bool start = true;

	for (size_t i = 0; i < s->len; i++) {
		if (start && s->p[i] == '.') {
			CHECK(i + 1 < s->len && s->p[i + 1] == '.');
			start = false;
			continue;
		}
		start = s->p[i] == '\n';
		CHECK(j < u->len && u->p[j] == s->p[i]);
		j++;
	}
	CHECK(j == u->len);
}

/* TOP n from the RETR output U: lines up to and including the first empty one, then n more. */
static size_t top_model(const struct out *u, uint64_t n)
{
	size_t pos = 0;
	bool in_body = false;

	while (pos < u->len) {
		const char *lf = memchr(u->p + pos, '\n', u->len - pos);
		size_t next = (size_t)(lf - u->p) + 1;

		CHECK(lf != NULL);
		if (in_body) {
			if (n == 0)
				return pos;
			n--;
		} else if (next - pos == 2) {
			in_body = true;
		}
		pos = next;
		if (in_body && n == 0)
			return pos;
	}
	return pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct out s, u, w, t;
	const char *msg;
	size_t len, nsizes;
	uint64_t size_s, size_u, size_w, top;

	if (size < 4)
		return 0;
	/* Byte 0: TOP line count; byte 1: how many chunk-size bytes follow (0..7). */
	top = data[0] == 0xff ? UINT64_MAX - 1 : data[0] % 8;
	nsizes = data[1] % 8;
	if (size < 2 + nsizes)
		return 0;
	msg = (const char *)data + 2 + nsizes;
	len = size - 2 - nsizes;

	size_s = encode(msg, len, true, UINT64_MAX, data + 2, nsizes, &s);
	size_u = encode(msg, len, false, UINT64_MAX, data + 2, nsizes, &u);
	size_w = encode(msg, len, true, UINT64_MAX, NULL, 0, &w);
	/* S-052: LIST size == unstuffed RETR bytes, whatever the chunking. */
	CHECK(size_s == u.len && size_u == u.len && size_w == u.len);
	CHECK(pop3_wire_size(msg, len) == u.len);
	CHECK(s.len == w.len && memcmp(s.p, w.p, s.len) == 0);
	CHECK((len == 0) == (u.len == 0));
	check_crlf(&u);
	check_crlf(&s);
	check_unstuff(&s, &u);

	/* TOP: a prefix of RETR ending on a line end, stuffed the same way. */
	encode(msg, len, false, top, data + 2, nsizes, &t);
	CHECK(t.len == top_model(&u, top));
	CHECK(memcmp(t.p, u.p, t.len) == 0);
	free(t.p);
	encode(msg, len, true, top, data + 2, nsizes, &t);
	CHECK(t.len <= s.len && memcmp(t.p, s.p, t.len) == 0);
	check_crlf(&t);

	free(s.p);
	free(u.p);
	free(w.p);
	free(t.p);
	return 0;
}
