/* Internals shared by lib/mbox.c (files, locks, UPDATE) and lib/mbox_parse.c (the parser). */
#ifndef GANNET_MBOX_INT_H
#define GANNET_MBOX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mbox.h"
#include "pop3.h"

/* SHA-256 octets kept per message for its UIDL (32 hex digits). */
#define MBOX_HASH_LEN (MBOX_HASH_UIDL_HEX / 2)

/* Octets fed to the size encoder at a time (its output buffer is twice that plus 3). */
#define MBOX_ENC_PIECE 4096

struct mbox_rec {
	uint64_t from_off; /* start of the From_ line: the message's span runs to the next one */
	uint64_t raw_off;  /* first octet after the From_ line */
	uint64_t raw_len;  /* up to the separator, or EOF */
	uint64_t size;     /* POP3 size */
	unsigned char hash[MBOX_HASH_LEN];
	uint32_t uidl_off; /* in snap->arena */
	uint32_t x_off;    /* X-UIDL candidate in snap->arena (x_len 0: none) */
	uint8_t uidl_len, x_len;
};

/* Where the parser is inside the current line. */
enum mbox_line_state {
	MBOX_LS_HEAD, /* at a line start, holding up to 5 octets until the line is classified */
	MBOX_LS_FROM, /* rest of a From_ line */
	MBOX_LS_TEXT, /* rest of a message line */
};

/* Which part of the current message the current line belongs to. */
enum mbox_zone {
	MBOX_Z_NONE,   /* before the first From_ line */
	MBOX_Z_HEADER, /* header block (up to the first empty line) */
	MBOX_Z_BODY,
};

/* X-UIDL of the current message. */
enum mbox_xstate {
	MBOX_X_NONE,      /* no X-UIDL: header seen yet */
	MBOX_X_CANDIDATE, /* one seen; valid unless the next line continues it */
	MBOX_X_DONE,      /* decided (valid: x_len > 0) */
};

/* Streaming parser state. Only mbox_parse.c looks inside. */
struct mbox_parser {
	struct mbox_snapshot *snap;
	uint64_t pos; /* file offset of the next octet fed */
	enum mbox_line_state ls;
	enum mbox_zone zone;
	bool after_empty; /* the previous line was empty, or this is the start of the file */
	char head[5];     /* octets of the current line held while classifying it */
	size_t head_len;
	uint64_t line_off; /* offset of the current line */
	char pend[2];      /* a held empty line ("\n" or "\r\n"): content, or the separator */
	size_t pend_len;   /* 0: none */
	uint64_t pend_off;
	bool in_msg;         /* a message is open */
	struct mbox_rec cur; /* the open message */
	struct pop3_enc enc;
	EVP_MD_CTX *md;
	bool md_cr; /* a CR held back from the hash (dropped when an LF follows) */
	char hline[MBOX_HDR_LINE_MAX]; /* start of the current header line */
	size_t hline_len;
	bool hline_long;
	enum mbox_xstate xstate;
	char xval[POP3_UIDL_MAX];
	size_t xlen;
	size_t msgs_cap;
	char encbuf[2 * MBOX_ENC_PIECE + 3];
};

/* Start parsing into SNAP (emptied). 0 or an mbox_err with *ERROR_R (no path in it). */
int mbox_parser_init(struct mbox_parser *p, struct mbox_snapshot *snap, const char **error_r);

/* Feed the next LEN octets of the file. */
int mbox_parser_feed(struct mbox_parser *p, const char *data, size_t len, const char **error_r);

/* End of file: close the last message and assign UIDLs. The parser is freed either way. */
int mbox_parser_finish(struct mbox_parser *p, const char **error_r);

/* Give up (after an error of the caller): free the parser and empty SNAP. */
void mbox_parser_abort(struct mbox_parser *p);

/* Format *ERROR_R into the thread-local buffer and return CLS. */
int mbox_fail(int cls, const char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
