/* POP3 protocol codec: command parsing, and the stored-message -> wire transform
 * (LF->CRLF, final line termination, dot-stuffing) with exact size counting. Pure, fuzzed. */
#ifndef GANNET_POP3_H
#define GANNET_POP3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gannet_limits.h"

/* A parsed command line. KEYWORD is upper-cased; ARGS points into the caller's line. */
struct pop3_cmd {
	char keyword[POP3_KEYWORD_MAX + 1];
	const char *rest; /* everything after the first SP (NULL when no SP) */
	size_t rest_len;
	int argc; /* arguments split on single SP, at most 2 kept */
	const char *argv[2];
	size_t argl[2];
	bool bad_spacing; /* empty argument: two SPs in a row, a trailing SP, or "LIST " */
};

/* Parse LINE[0..LEN) (terminator already removed; no NUL needed). The keyword is 1..4 letters or
 * digits, matched case-insensitively, followed by the end of the line or SP. Returns 0, or -1
 * when the keyword is malformed. argc counts every argument, empty ones and those beyond two
 * included: "LIST 1 2" gives 2, "LIST 1 2 3" gives 3, "LIST " gives 1 (empty, bad_spacing). */
int pop3_parse_cmd(const char *line, size_t len, struct pop3_cmd *cmd);

/* Streaming transform of a stored message into POP3 wire form. Feed the file in chunks; the
 * encoder turns bare LF into CRLF, keeps CRLF, passes a CR that is not followed by LF through as
 * a plain byte (it never ends a line, so no '.' after it is stuffed), stuffs a '.' at the start of
 * every line when STUFF is set, and at the end terminates a last line that has no newline. Output
 * never exceeds 2 * input + 3 bytes per call. */
struct pop3_enc {
	bool line_start; /* next byte starts a line */
	bool pending_cr; /* previous chunk ended in CR */
	bool any;        /* at least one byte seen */
	bool stuff;      /* dot-stuff (false when only counting sizes) */
	/* TOP support: lines of the body still to send, or UINT64_MAX for all. */
	uint64_t body_lines_left;
	bool in_body;  /* the blank header/body separator has been passed */
	bool done;     /* TOP limit reached: ignore further input */
	uint64_t size; /* wire octets produced so far, stuffing excluded (the LIST size) */
};

/* Start encoding; STUFF selects dot-stuffing. TOP_LINES = UINT64_MAX for RETR. For TOP, the
 * header ends at the first empty line; that line is sent, then at most TOP_LINES body lines. A
 * message with no empty line is all header and is sent whole, no blank line invented (S-062). */
void pop3_enc_init(struct pop3_enc *e, bool stuff, uint64_t top_lines);

/* Encode IN[0..INLEN) into OUT (capacity >= 2 * INLEN + 3). Returns bytes written. */
size_t pop3_enc_feed(struct pop3_enc *e, const char *in, size_t inlen, char *out);

/* End of input: write the final CRLF if the message did not end in one (OUT capacity >= 3). A
 * message ending in a bare CR gets "\r\n" for that CR (the CR is taken as a line end). Nothing is
 * written for an empty message, or after a TOP cut (which always falls on a line end). */
size_t pop3_enc_finish(struct pop3_enc *e, char *out);

/* True once a TOP limit has been reached and no more input is needed. */
bool pop3_enc_done(const struct pop3_enc *e);

/* Wire size of a whole in-memory message (what LIST reports). */
uint64_t pop3_wire_size(const char *msg, size_t len);

#endif
