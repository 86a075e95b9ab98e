/* Bounded extraction of command lines from a byte stream; pure functions, no I/O (fuzzed). */
#ifndef GANNET_LINEIO_H
#define GANNET_LINEIO_H

#include <stdbool.h>
#include <stddef.h>

enum line_result {
	LINE_OK,        /* a complete line: data[0..*line_len_r) without its terminator */
	LINE_NEED_MORE, /* no complete line yet; *consumed_r bytes may be dropped (discarding) */
	LINE_TOO_LONG,  /* the terminator of an over-long line was found; line dropped */
	LINE_BAD_BYTE,  /* a complete line holding NUL or a bare CR; line dropped */
};

/* State between calls: whether we are throwing away the rest of an over-long line. */
struct line_reader {
	size_t max; /* longest accepted line, terminator included (e.g. POP3_CMD_MAX) */
	bool discarding;
};

void line_reader_init(struct line_reader *lr, size_t max);

/* Look for one line at the start of DATA[0..LEN). A line ends in CRLF or in a bare LF (tolerated
 * for telnet users; a CR alone never ends a line). *CONSUMED_R says how many bytes the caller must
 * remove from its buffer (line and terminator, or discarded junk). A line longer than lr->max is
 * dropped up to its LF and reported once as LINE_TOO_LONG; the terminator counts as two octets
 * even when it is a bare LF, so max 255 accepts 253 content bytes. A line holding NUL or a CR not
 * followed by LF is LINE_BAD_BYTE once its LF arrives. NEED_MORE with *CONSUMED_R 0 means: keep
 * the bytes and read more (a final CR may be half a CRLF). Once LEN reaches lr->max without an LF
 * the bytes are consumed as junk, so the caller never has to buffer more than lr->max bytes. */
enum line_result line_next(struct line_reader *lr, const char *data, size_t len, size_t *line_len_r,
                           size_t *consumed_r);

#endif
