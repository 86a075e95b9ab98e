/* libFuzzer target for the fetch client's codec (lib/pop3client.c): reply and listing parsers,
 * CAPA, APOP timestamps, base64 checks, header lookup, and the two streaming coders (body
 * decoder, mboxrd quoter) checked for chunking invariance and against a model. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

static void parsers(const char *s, size_t len)
{
	const char *text, *ts, *v;
	size_t tl, tsl, vl;
	uint64_t a, b;
	char uid[POP3_UIDL_MAX + 1], sender[64];
	struct pop3c_capa c;
	enum pop3c_status st = pop3c_status(s, len, &text, &tl);

	CHECK(text >= s && text + tl <= s + len);
	if (st == POP3C_BAD)
		CHECK(tl == 0);
	(void)pop3c_resp_code(text, tl);
	if (pop3c_parse_stat(s, len, &a, &b) == 0)
		CHECK(memchr(s, ' ', len) != NULL);
	if (pop3c_parse_list(s, len, &a, &b) == 0)
		CHECK(a >= 1);
	if (pop3c_parse_uidl(s, len, &a, uid) == 0)
		CHECK(a >= 1 && pop3c_uidl_valid(uid, strlen(uid)));
	pop3c_capa_reset(&c);
	for (size_t p = 0; p < len;) {
		const char *nl = memchr(s + p, '\n', len - p);
		size_t ll = nl ? (size_t)(nl - s - p) : len - p;
		pop3c_capa_line(&c, s + p, ll);
		p += ll + 1;
	}
	if (pop3c_apop_timestamp(s, len, &ts, &tsl)) {
		CHECK(ts >= s && ts + tsl <= s + len && tsl >= 3);
		CHECK(ts[0] == '<' && ts[tsl - 1] == '>' && memchr(ts, '@', tsl) != NULL);
	}
	if (pop3c_b64_valid(s, len))
		CHECK(len % 4 == 0);
	if (pop3c_header_find(s, len, "Message-ID", &v, &vl))
		CHECK(v >= s && v + vl <= s + len);
	if (pop3c_envelope_sender(s, len, sender, sizeof(sender))) {
		size_t sl = strlen(sender);
		CHECK(sl > 0 && sl < sizeof(sender) && memchr(sender, '>', sl) == NULL);
	}
}

/* Decode IN in chunks whose sizes come from SIZES; heap buffers of exactly the documented
 * capacity so ASan sees an overrun. The output length; *CONSUMED_R the input used. */
static size_t decode(const char *in, size_t len, bool to_lf, const uint8_t *sizes, size_t ns,
                     char *out, size_t *consumed_r, struct pop3c_dec *d)
{
	size_t off = 0, o = 0, i = 0;

	pop3c_dec_init(d, to_lf);
	while (off < len && !d->done) {
		size_t chunk = ns ? (size_t)sizes[i++ % ns] % 37 + 1 : len, used;
		char *tmp;

		if (chunk > len - off)
			chunk = len - off;
		tmp = malloc(chunk + 1);
		CHECK(tmp != NULL);
		size_t n = pop3c_dec_feed(d, in + off, chunk, tmp, &used);
		CHECK(n <= chunk + 1 && used <= chunk);
		memcpy(out + o, tmp, n);
		o += n;
		off += used;
		free(tmp);
		if (!d->done)
			CHECK(used == chunk);
	}
	*consumed_r = off;
	return o;
}

/* The mboxrd model: one more '>' before every line matching ^>*From , a newline when the last
 * line has none, then the empty separator line (an empty message is just that line). */
static size_t mboxrd_model(const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t p = 0; p < len;) {
		const char *nl = memchr(in + p, '\n', len - p);
		size_t ll = nl ? (size_t)(nl - in - p) + 1 : len - p, g = 0;

		while (g < ll && in[p + g] == '>')
			g++;
		if (ll - g >= 5 && memcmp(in + p + g, "From ", 5) == 0)
			out[o++] = '>';
		memcpy(out + o, in + p, ll);
		o += ll;
		p += ll;
	}
	if (o > 0 && out[o - 1] != '\n')
		out[o++] = '\n';
	out[o++] = '\n';
	return o;
}

static size_t quote(const char *in, size_t len, const uint8_t *sizes, size_t ns, char *out)
{
	struct pop3c_mboxrd q;
	size_t off = 0, o = 0, i = 0;
	char *tmp;

	pop3c_mboxrd_init(&q);
	while (off < len) {
		size_t chunk = ns ? (size_t)sizes[i++ % ns] % 11 + 1 : len;

		if (chunk > len - off)
			chunk = len - off;
		tmp = malloc(POP3C_MBOXRD_CAP(chunk));
		CHECK(tmp != NULL);
		size_t n = pop3c_mboxrd_feed(&q, in + off, chunk, tmp);
		CHECK(n <= POP3C_MBOXRD_CAP(chunk));
		memcpy(out + o, tmp, n);
		o += n;
		off += chunk;
		free(tmp);
	}
	tmp = malloc(POP3C_MBOXRD_SLACK + 2);
	CHECK(tmp != NULL);
	size_t n = pop3c_mboxrd_finish(&q, tmp);
	CHECK(n <= POP3C_MBOXRD_SLACK + 2);
	memcpy(out + o, tmp, n);
	o += n;
	free(tmp);
	CHECK(q.out == o);
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sizes;
	const char *in;
	size_t ns, len, c1, c2, n1, n2, m;
	struct pop3c_dec d1, d2;
	char *a, *b;

	if (size < 2)
		return 0;
	ns = data[0] % 8;
	if (size < 1 + ns)
		return 0;
	sizes = data + 1;
	in = (const char *)data + 1 + ns;
	len = size - 1 - ns;
	parsers(in, len);

	/* The body decoder: any chunking gives the same bytes and stops at the same place. */
	a = malloc(len + 1);
	b = malloc(len + 1);
	CHECK(a != NULL && b != NULL);
	bool to_lf = data[0] & 8;
	n1 = decode(in, len, to_lf, NULL, 0, a, &c1, &d1);
	n2 = decode(in, len, to_lf, sizes, ns, b, &c2, &d2);
	CHECK(d1.done == d2.done);
	if (d1.done) {
		CHECK(c1 == c2 && n1 == n2 && memcmp(a, b, n1) == 0 && d1.wire == d2.wire);
		CHECK(n1 <= d1.wire);
	}
	free(a);
	free(b);

	/* The mboxrd quoter: the model's bytes, whatever the chunking. */
	a = malloc(2 * len + 2);
	b = malloc(2 * len + 2);
	CHECK(a != NULL && b != NULL);
	m = mboxrd_model(in, len, a);
	n1 = quote(in, len, sizes, ns, b);
	CHECK(n1 == m && memcmp(a, b, m) == 0);
	free(a);
	free(b);
	return 0;
}
