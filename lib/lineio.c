/* Bounded command-line extraction: finds one CRLF/LF-terminated line, drops over-long ones. */
#include "lineio.h"

#include <string.h>

void line_reader_init(struct line_reader *lr, size_t max)
{
	lr->max = max;
	lr->discarding = false;
}

enum line_result line_next(struct line_reader *lr, const char *data, size_t len, size_t *line_len_r,
                           size_t *consumed_r)
{
	const char *nl;
	size_t lf, content;

	*line_len_r = 0;
	*consumed_r = 0;
	/* memchr() must not see a NULL pointer, even for zero bytes. */
	if (len == 0)
		return LINE_NEED_MORE;
	nl = memchr(data, '\n', len);

	if (lr->discarding) {
		if (nl == NULL) {
			/* A CR at the end does not matter here: only the LF ends the junk. */
			*consumed_r = len;
			return LINE_NEED_MORE;
		}
		lr->discarding = false;
		*consumed_r = (size_t)(nl - data) + 1;
		return LINE_TOO_LONG;
	}

	if (nl == NULL) {
		/* With max bytes and no LF the line can no longer fit, so drop what we have instead
		 * of making the caller buffer more (S-006). Below that, keep everything: a trailing
		 * CR may be the first half of a CRLF split across reads (edge case 16). */
		if (len >= lr->max) {
			lr->discarding = true;
			*consumed_r = len;
		}
		return LINE_NEED_MORE;
	}

	lf = (size_t)(nl - data);
	content = (lf > 0 && data[lf - 1] == '\r') ? lf - 1 : lf;
	*consumed_r = lf + 1;
	/* The terminator always counts as two octets, even a bare LF, so that "NOOP\n" and
	 * "NOOP\r\n" hit the RFC 2449 §4 limit at the same content length. */
	if (lr->max < 2 || content > lr->max - 2)
		return LINE_TOO_LONG;
	/* A bare CR is refused rather than tolerated: a proxy that ends lines at CR would see a
	 * different command stream than we do (edge case 18, S-013). NUL would cut C strings. */
	if (memchr(data, '\0', content) != NULL || memchr(data, '\r', content) != NULL)
		return LINE_BAD_BYTE;
	*line_len_r = content;
	return LINE_OK;
}
