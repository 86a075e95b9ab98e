/* UTF-8 validation, SASLprep of credentials, and the 8-bit header scan (RFC 6856). */
#include "utf8.h"

#include <string.h>

#include <gsasl.h>

#include "gannet_limits.h"

bool utf8_is_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

/* Length of the sequence led by C and the smallest value it may encode (overlong check), or 0
 * for a byte that cannot lead one. */
static size_t seq_len(unsigned char c, uint32_t *min_r, uint32_t *cp_r)
{
	if (c >= 0xc2 && c <= 0xdf)
		return *min_r = 0x80, *cp_r = c & 0x1fu, 2;
	if (c >= 0xe0 && c <= 0xef)
		return *min_r = 0x800, *cp_r = c & 0x0fu, 3;
	if (c >= 0xf0 && c <= 0xf4)
		return *min_r = 0x10000, *cp_r = c & 0x07u, 4;
	return 0;
}

bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		uint32_t min, cp;
		size_t n;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = seq_len(p[i], &min, &cp)) == 0 || len - i < n)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3fu);
		}
		/* Overlong forms hide '/' or NUL from byte-wise checks; surrogates are not
		 * characters (RFC 3629 §3). */
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

/* One SASLprep run; the result is malloc'd by GNU SASL. */
static int prep_once(const char *in, int flags, char **out_r)
{
	*out_r = NULL;
	return gsasl_saslprep(in, (Gsasl_saslprep_flags)flags, out_r, NULL);
}

/* GNU SASL hands its flag to libidn inverted (GSASL_ALLOW_UNASSIGNED means
 * STRINGPREP_NO_UNASSIGNED, see lib/scram.c), so both readings run: a query string passes when
 * either does, a stored string only when both do and agree (then nothing is unassigned). */
static int prep_both(const char *in, bool stored, char **out_r)
{
	char *a = NULL, *b = NULL;
	int ra = prep_once(in, 0, &a);
	int rb = prep_once(in, GSASL_ALLOW_UNASSIGNED, &b);
	int ret = -1;

	if (ra == GSASL_OK && rb == GSASL_OK && strcmp(a, b) == 0) {
		*out_r = a, a = NULL, ret = 0;
	} else if (!stored && (ra == GSASL_OK || rb == GSASL_OK)) {
		*out_r = ra == GSASL_OK ? a : b;
		if (ra == GSASL_OK)
			a = NULL;
		else
			b = NULL;
		ret = 0;
	}
	gsasl_free(a);
	gsasl_free(b);
	return ret;
}

int utf8_saslprep(const char *in, size_t len, bool stored, char *out, size_t size,
                  const char **error_r)
{
	char copy[PASSWORD_MAX + 1]; /* the longest string prepared is a password */
	char *prepped = NULL;
	size_t plen;

	if (len >= sizeof(copy) || memchr(in, '\0', len) != NULL || !utf8_valid(in, len)) {
		*error_r = "not well-formed UTF-8, holding NUL, or too long";
		return -1;
	}
	memcpy(copy, in, len);
	copy[len] = '\0';
	if (prep_both(copy, stored, &prepped) < 0) {
		explicit_bzero(copy, sizeof(copy));
		*error_r = "SASLprep refused it (a prohibited or unassigned character, or bidi)";
		return -1;
	}
	explicit_bzero(copy, sizeof(copy));
	plen = strlen(prepped);
	if (plen == 0 || plen >= size) {
		explicit_bzero(prepped, plen);
		gsasl_free(prepped);
		*error_r = plen == 0 ? "empty after SASLprep" : "too long after SASLprep";
		return -1;
	}
	memcpy(out, prepped, plen + 1);
	explicit_bzero(prepped, plen);
	gsasl_free(prepped);
	return 0;
}

void utf8_hdr_init(struct utf8_hdr_scan *h)
{
	memset(h, 0, sizeof(*h));
	h->line_start = true;
}

bool utf8_hdr_feed(struct utf8_hdr_scan *h, const char *buf, size_t len)
{
	for (size_t i = 0; i < len && !h->done; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c >= 0x80) {
			h->eight_bit = h->done = true;
		} else if (c == '\n') {
			/* LF or CRLF alone on a line: the header block is over. */
			h->done = h->line_start || h->cr_start;
			h->line_start = true;
			h->cr_start = false;
		} else {
			h->cr_start = h->line_start && c == '\r';
			h->line_start = false;
		}
	}
	return h->done;
}
