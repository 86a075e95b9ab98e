/* Line reading and reply writing on client bufferevents, shared by login and mail processes. */
#include "client.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gannet_limits.h"
#include "log.h"

enum line_result client_read_line(struct evbuffer *in, struct line_reader *lr, char *line,
                                  size_t line_size, size_t *len_r)
{
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		size_t n = avail < lr->max ? avail : lr->max;
		size_t len = 0, consumed = 0;
		const char *data;
		enum line_result r;

		if (avail == 0)
			return LINE_NEED_MORE;
		data = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
		if (data == NULL)
			return LINE_NEED_MORE;
		r = line_next(lr, data, n, &len, &consumed);
		if (r == LINE_OK) {
			if (len >= line_size)
				len = line_size - 1; /* cannot happen: line_size > lr->max */
			memcpy(line, data, len);
			line[len] = '\0';
			*len_r = len;
		}
		evbuffer_drain(in, consumed);
		if (r != LINE_NEED_MORE)
			return r;
		if (consumed == 0)
			return LINE_NEED_MORE;
	}
}

void client_reply(struct bufferevent *bev, const char *fmt, ...)
{
	char buf[POP3_RESP_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(buf) - 3)
		n = (int)(sizeof(buf) - 3);
	buf[n++] = '\r';
	buf[n++] = '\n';
	bufferevent_write(bev, buf, (size_t)n);
}

void client_reply_dropped(struct bufferevent *bev, enum lang lang, enum line_result r)
{
	lang_reply(bev, lang, r == LINE_TOO_LONG ? TXT_LINE_TOO_LONG : TXT_BAD_CHARS);
}

bool client_bad_command(struct bufferevent *bev, enum lang lang, unsigned *bad, long limit,
                        const char *session, const char *ip)
{
	if (++*bad < (unsigned long)limit)
		return false;
	lang_reply(bev, lang, TXT_TOO_MANY_BAD);
	log_info("session=%s ip=%s event=too_many_bad_commands", session, ip);
	return true;
}

const struct cmd_def *cmd_lookup(const struct cmd_def *table, const char *keyword)
{
	for (; table->keyword != NULL; table++)
		if (strcmp(table->keyword, keyword) == 0)
			return table;
	return NULL;
}

struct timeval client_tv(long seconds)
{
	struct timeval tv = {seconds, 0};
	return tv;
}
