/* Client connection helpers shared by the login and mail processes: bounded line reading from a
 * bufferevent, reply formatting within RFC 2449's 512-octet limit, and the command table type. */
#ifndef GANNETD_CLIENT_H
#define GANNETD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "lang.h"
#include "lineio.h"
#include "pop3.h"

/* Take one line out of IN into LINE (capacity LINE_SIZE > lr->max). Returns LINE_OK with
 * *LEN_R set, LINE_NEED_MORE when the caller must wait for input, or LINE_TOO_LONG /
 * LINE_BAD_BYTE for a line that was dropped (the caller answers -ERR). */
enum line_result client_read_line(struct evbuffer *in, struct line_reader *lr, char *line,
                                  size_t line_size, size_t *len_r);

/* Queue one reply line: FMT is formatted, cut to fit 512 octets with CRLF, and CRLF appended. */
void client_reply(struct bufferevent *bev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* How a command may be used; one table per protocol state (popa3d). */
enum cmd_flags {
	CMD_BAD =
	    1, /* valid POP3 but not in this state: answered "-ERR ... not valid in this state" */
};

struct cmd_def {
	const char *keyword;
	int (*handler)(void *sess, struct pop3_cmd *cmd);
	unsigned flags;
};

/* Find KEYWORD in TABLE (terminated by a NULL keyword). */
const struct cmd_def *cmd_lookup(const struct cmd_def *table, const char *keyword);

/* Handler results: the loop counts bad commands and closes when they reach the limit. */
enum cmd_result {
	CMD_OK = 0,       /* answered, keep reading */
	CMD_ERR = 1,      /* answered -ERR for bad input: counts towards max_bad_commands */
	CMD_SUSPEND = 2,  /* waiting for something (auth, a RETR in progress): stop reading */
	CMD_CLOSE = 3,    /* close once the output is flushed */
	CMD_DETACHED = 4, /* the session object is gone (handed over or freed) */
};

/* Answer a line the reader dropped (LINE_TOO_LONG or LINE_BAD_BYTE) with its -ERR in LANG. */
void client_reply_dropped(struct bufferevent *bev, enum lang lang, enum line_result r);

/* Count one bad command in *BAD. At LIMIT, queue the closing -ERR (in LANG), log it for
 * SESSION/IP and return true: the caller then closes after flushing. */
bool client_bad_command(struct bufferevent *bev, enum lang lang, unsigned *bad, long limit,
                        const char *session, const char *ip);

/* Timeval helper. */
struct timeval client_tv(long seconds);

#endif
