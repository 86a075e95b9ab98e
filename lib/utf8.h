/* UTF-8 checks for RFC 6856 (POP3 UTF8): strict UTF-8 validation, SASLprep of user names and
 * passwords through GNU SASL, and the scan that tells whether a message header needs UTF-8 mode. */
#ifndef GANNET_UTF8_H
#define GANNET_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a message read to find the end of its header block (RFC 6856 §2.1). A header longer
 * than this is judged by its first UTF8_HEADER_SCAN_MAX bytes: real headers are a few KiB, and
 * the bound keeps one RETR from reading a huge message twice. */
#define UTF8_HEADER_SCAN_MAX (1024 * 1024)

/* True when S[0..LEN) is well-formed UTF-8 (RFC 3629 §4): no overlong forms, no surrogates,
 * nothing above U+10FFFF, no truncated sequence. NUL counts as valid here. */
bool utf8_valid(const char *s, size_t len);

/* True when every byte of S[0..LEN) is below 0x80. */
bool utf8_is_ascii(const char *s, size_t len);

/* SASLprep (RFC 4013) IN[0..LEN) into OUT (capacity SIZE, NUL-terminated). STORED selects the
 * stored-string profile (no unassigned code points, RFC 3454 §7); otherwise the query profile.
 * Fails on invalid UTF-8, NUL, prohibited output (RFC 4013 §2.3: controls, U+200E and the
 * like), bidi violations, an empty result, or one that does not fit. 0, or -1 with *ERROR_R. */
int utf8_saslprep(const char *in, size_t len, bool stored, char *out, size_t size,
                  const char **error_r);

/* Streaming scan of a stored message for 8-bit bytes in its header block, which ends at the
 * first empty line (LF or CRLF; the same rule TOP uses). */
struct utf8_hdr_scan {
	bool line_start; /* the next byte starts a line */
	bool cr_start;   /* a line started with CR: an LF next makes it the empty line */
	bool done;       /* decided: the header ended, or an 8-bit byte was found */
	bool eight_bit;  /* an 8-bit byte was found in the header */
};

void utf8_hdr_init(struct utf8_hdr_scan *h);

/* Feed BUF[0..LEN); returns h->done. */
bool utf8_hdr_feed(struct utf8_hdr_scan *h, const char *buf, size_t len);

#endif
