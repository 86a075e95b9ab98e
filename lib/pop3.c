/* POP3 codec: command-line parsing and the stored-message to wire-form encoder. */
#include "pop3.h"

#include <string.h>

/* Locale-free on purpose: isalnum() would accept bytes above 0x7F in some locales. */
static bool is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static char to_upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

int pop3_parse_cmd(const char *line, size_t len, struct pop3_cmd *cmd)
{
	size_t k = 0;
	const char *p, *end;

	memset(cmd, 0, sizeof(*cmd));
	while (k < len && k <= POP3_KEYWORD_MAX && is_alnum(line[k]))
		k++;
	if (k == 0 || k > POP3_KEYWORD_MAX)
		return -1;
	/* "STAT\t" or "STAT@" is not STAT with an argument; only SP separates (RFC 2449 §3). */
	if (k < len && line[k] != ' ')
		return -1;
	for (size_t i = 0; i < k; i++)
		cmd->keyword[i] = to_upper(line[i]);
	cmd->keyword[k] = '\0';
	if (k == len)
		return 0;

	cmd->rest = line + k + 1;
	cmd->rest_len = len - k - 1;
	p = cmd->rest;
	end = cmd->rest + cmd->rest_len;
	/* Every field counts, empty ones too, so "LIST 1 " is seen as two arguments with one
	 * empty: the handler refuses it instead of quietly reading "LIST 1" (S-011). */
	for (;;) {
		const char *sp = memchr(p, ' ', (size_t)(end - p));
		const char *fend = sp != NULL ? sp : end;

		if (fend == p)
			cmd->bad_spacing = true;
		if (cmd->argc < 2) {
			cmd->argv[cmd->argc] = p;
			cmd->argl[cmd->argc] = (size_t)(fend - p);
		}
		/* Saturate: AUTH lines may be long, and only 0, 1, 2 or "more" matters. */
		if (cmd->argc < 0x7fff)
			cmd->argc++;
		if (sp == NULL)
			break;
		p = sp + 1;
	}
	return 0;
}

void pop3_enc_init(struct pop3_enc *e, bool stuff, uint64_t top_lines)
{
	memset(e, 0, sizeof(*e));
	e->line_start = true;
	e->stuff = stuff;
	e->body_lines_left = top_lines;
}

/* One line has been written out; EMPTY says it had no content. Counts TOP's lines. */
static void enc_end_line(struct pop3_enc *e, bool empty)
{
	e->line_start = true;
	if (!e->in_body) {
		/* RFC 5322 §2.1: the first empty line separates header and body. */
		if (empty) {
			e->in_body = true;
			if (e->body_lines_left == 0)
				e->done = true;
		}
		return;
	}
	if (e->body_lines_left == UINT64_MAX)
		return;
	if (--e->body_lines_left == 0)
		e->done = true;
}

size_t pop3_enc_feed(struct pop3_enc *e, const char *in, size_t inlen, char *out)
{
	size_t p = 0, o = 0, dots = 0;

	if (e->done || inlen == 0)
		return 0;
	e->any = true;

	if (e->pending_cr) {
		/* The previous chunk ended in CR: only now do we know whether it ended a line. */
		e->pending_cr = false;
		out[o++] = '\r';
		if (in[0] == '\n') {
			out[o++] = '\n';
			p = 1;
			enc_end_line(e, e->line_start);
		} else {
			e->line_start = false;
		}
	}

	while (p < inlen && !e->done) {
		const char *nl = memchr(in + p, '\n', inlen - p);
		size_t lf, n;

		/* RFC 1939 §3: stuff every line start, also the first line and the first line of a
		 * chunk; line_start survives between calls for exactly that reason. */
		if (e->line_start && e->stuff && in[p] == '.') {
			out[o++] = '.';
			dots++;
		}
		if (nl == NULL) {
			n = inlen - p;
			/* Hold a final CR: if the next chunk starts with LF it is a CRLF, not a
			 * bare CR followed by a bare LF (which would become CR CR LF). */
			if (in[inlen - 1] == '\r') {
				e->pending_cr = true;
				n--;
			}
			memcpy(out + o, in + p, n);
			o += n;
			if (n > 0)
				e->line_start = false;
			p = inlen;
			break;
		}
		lf = (size_t)(nl - in);
		n = (lf > p && in[lf - 1] == '\r') ? lf - 1 - p : lf - p;
		memcpy(out + o, in + p, n);
		o += n;
		out[o++] = '\r';
		out[o++] = '\n';
		enc_end_line(e, e->line_start && n == 0);
		p = lf + 1;
	}
	e->size += o - dots;
	return o;
}

size_t pop3_enc_finish(struct pop3_enc *e, char *out)
{
	size_t o = 0;

	/* A TOP cut only ever happens right after a line ending, so nothing is missing. */
	if (e->done)
		return 0;
	/* A message ending in CR gets that CR as the start of a CRLF: the CR was going to be the
	 * last byte of the last line anyway, and this keeps the wire free of a bare CR before the
	 * terminating ".\r\n" (RFC 1939 §3 demands CRLF there). */
	if (e->pending_cr) {
		e->pending_cr = false;
		out[o++] = '\r';
		out[o++] = '\n';
		enc_end_line(e, e->line_start);
	} else if (e->any && !e->line_start) {
		/* Edge case 4 / S-069: the terminating "." must stand on a line of its own, and
		 * LIST counts the CRLF we add here. */
		out[o++] = '\r';
		out[o++] = '\n';
		enc_end_line(e, false);
	}
	e->size += o;
	return o;
}

bool pop3_enc_done(const struct pop3_enc *e)
{
	return e->done;
}

uint64_t pop3_wire_size(const char *msg, size_t len)
{
	/* The real encoder, not a separate counting formula, so that LIST and RETR cannot
	 * disagree (S-052). */
	enum { CHUNK = 4096 };
	char out[2 * CHUNK + 3];
	struct pop3_enc e;

	pop3_enc_init(&e, false, UINT64_MAX);
	for (size_t off = 0; off < len; off += CHUNK) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;

		pop3_enc_feed(&e, msg + off, n, out);
	}
	pop3_enc_finish(&e, out);
	return e.size;
}
