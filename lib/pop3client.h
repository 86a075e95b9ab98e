/* POP3 client codec: reply status, response codes, CAPA/STAT/LIST/UIDL parsing, the APOP
 * timestamp, strict base64 checks and the streaming multi-line body decoder. Pure, no I/O. */
#ifndef GANNET_POP3CLIENT_H
#define GANNET_POP3CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gannet_limits.h"

enum pop3c_status {
	POP3C_OK,   /* "+OK" followed by SP or the end of the line */
	POP3C_ERR,  /* "-ERR" followed by SP or the end of the line */
	POP3C_CONT, /* "+" followed by SP or the end: a SASL continuation (RFC 5034 §4) */
	POP3C_BAD,  /* anything else, "+OKAY" included (checklist C-002) */
};

/* Classify reply LINE[0..LEN) (terminator removed), case-insensitively. *TEXT_R and *TEXT_LEN_R
 * receive the text after the status and its SP (empty when there is none). */
enum pop3c_status pop3c_status(const char *line, size_t len, const char **text_r,
                               size_t *text_len_r);

enum pop3c_rcode {
	POP3C_RC_NONE,        /* no "[...]" code at the start of the text */
	POP3C_RC_IN_USE,      /* [IN-USE]: another session holds the maildrop */
	POP3C_RC_LOGIN_DELAY, /* [LOGIN-DELAY]: polled too soon */
	POP3C_RC_SYS_TEMP,    /* [SYS/TEMP]: try again later */
	POP3C_RC_SYS_PERM,    /* [SYS/PERM]: needs the administrator */
	POP3C_RC_AUTH,        /* [AUTH]: the credentials were wrong */
	POP3C_RC_UTF8,        /* [UTF8] (RFC 6856 §5) */
	POP3C_RC_OTHER,       /* a well-formed code we do not act on */
};

/* The response code at the start of TEXT[0..LEN), case-insensitive; sub-levels we do not know
 * are ignored, so "[sys/temp/disk]" is POP3C_RC_SYS_TEMP (RFC 2449 §8, C-028). */
enum pop3c_rcode pop3c_resp_code(const char *text, size_t len);

/* Parse a decimal number allowing leading zeros (servers are not bound by our spelling rule) but
 * no sign or space, into [0, MAX]. 0 or -1. */
int pop3c_number(const char *s, size_t len, uint64_t max, uint64_t *out_r);

/* The "+OK" text of STAT: "COUNT SIZE", anything after a further SP ignored (C-003). 0 or -1. */
int pop3c_parse_stat(const char *text, size_t len, uint64_t *count_r, uint64_t *size_r);
/* The same for a LIST scan line "NUM SIZE" (NUM >= 1). */
int pop3c_parse_list(const char *line, size_t len, uint64_t *num_r, uint64_t *size_r);

/* A UIDL listing line "NUM UID". The unique-id must be 1..70 octets of 0x21..0x7E (C-034); it is
 * copied into UID (NUL-terminated). 0 or -1. */
int pop3c_parse_uidl(const char *line, size_t len, uint64_t *num_r, char uid[POP3_UIDL_MAX + 1]);

/* True when S[0..LEN) is a valid unique-id: 1..70 octets in 0x21..0x7E. */
bool pop3c_uidl_valid(const char *s, size_t len);

/* What a CAPA listing advertised. */
struct pop3c_capa {
	bool answered; /* CAPA returned +OK */
	bool top, uidl, user, stls, pipelining, resp_codes, utf8, utf8_user;
	bool sasl_plain, sasl_login, sasl_scram_sha256, sasl_scram_sha256_plus;
	bool sasl_scram_sha1, sasl_scram_sha1_plus;
	bool sasl_oauthbearer, sasl_xoauth2, sasl_any;
	bool expire_set, expire_never, expire_user;
	uint64_t expire_days;
	bool login_delay_set, login_delay_user;
	uint64_t login_delay; /* seconds */
};

/* Forget every capability (start, and after STLS: RFC 2595 §4, C-011). */
void pop3c_capa_reset(struct pop3c_capa *c);

/* Take one CAPA listing line (already unstuffed, no terminator) into C. Unknown capabilities
 * and malformed arguments of known ones are ignored: the server's CAPA is advice, not law. */
void pop3c_capa_line(struct pop3c_capa *c, const char *line, size_t len);

/* Find the APOP timestamp in greeting text G[0..LEN): the first "<...>" token that holds '@' and
 * no '<', '>', SP or control byte (RFC 1939 §7, C-008/C-009). Returns true and sets *TS_R and
 * *TS_LEN_R (brackets included), or false when the greeting offers none. */
bool pop3c_apop_timestamp(const char *g, size_t len, const char **ts_r, size_t *ts_len_r);

/* True when S[0..LEN) is canonical base64: alphabet only, length a multiple of 4, '=' only as
 * one or two final pad characters (RFC 5034 §4 wants bad challenges refused, C-019). */
bool pop3c_b64_valid(const char *s, size_t len);

/* Find header NAME (case-insensitive) in the header block H[0..LEN) (CRLF or LF lines, ending at
 * the first empty line). *VAL_R and *VAL_LEN_R get the value of its first line, spaces trimmed.
 * Returns false when the header is absent. Used for the TOP n 0 fingerprint. */
bool pop3c_header_find(const char *h, size_t len, const char *name, const char **val_r,
                       size_t *val_len_r);

/* Streaming decoder of a multi-line body (RETR, TOP): removes the dot-stuffing, stops after the
 * terminating ".\r\n" even when it is split across reads (curl's lesson), and optionally turns
 * CRLF into LF. Only CRLF starts a new line; bare CR and LF are ordinary bytes, NULs included. */
struct pop3c_dec {
	int state;
	bool to_lf;
	bool done;
	uint64_t wire; /* body octets in CRLF form, stuffing excluded: comparable with LIST */
	uint64_t out;  /* octets written out */
};

/* Start decoding one body; TO_LF turns each CRLF into LF (bare CRs are kept). */
void pop3c_dec_init(struct pop3c_dec *d, bool to_lf);

/* Decode IN[0..LEN) into OUT (capacity >= LEN + 1: a CR held back from the previous chunk may
 * come out now). Returns the bytes written; *CONSUMED_R is LEN unless the terminator was found,
 * in which case the bytes after it belong to the next reply and d->done is set. */
size_t pop3c_dec_feed(struct pop3c_dec *d, const char *in, size_t len, char *out,
                      size_t *consumed_r);

/* mboxrd quoting for mbox delivery: every line matching ^>*From  gets one more '>' in front, so
 * a reader can undo it and no line of a message can start a new one. Streaming: at most the first
 * four bytes of a "From" at a line start are held back between chunks. Input lines end in LF. */
/* Output one feed of LEN bytes may produce: every line may gain a '>', and a line of "From \n"
 * is 6 bytes, plus up to 4 bytes held from the previous feed and the '>' of a line they start. */
#define POP3C_MBOXRD_SLACK    5
#define POP3C_MBOXRD_CAP(len) ((len) + (len) / 6 + POP3C_MBOXRD_SLACK)

struct pop3c_mboxrd {
	bool line_start; /* the next byte starts a line (after only '>' bytes of it) */
	size_t held;     /* bytes of "From " matched at this line start and held back */
	uint64_t out;    /* bytes written out */
	char last;       /* the last byte written, to end the message with a newline */
};

/* Start quoting one message. */
void pop3c_mboxrd_init(struct pop3c_mboxrd *q);

/* Quote IN[0..LEN) into OUT (capacity >= POP3C_MBOXRD_CAP(LEN)); returns the bytes written. */
size_t pop3c_mboxrd_feed(struct pop3c_mboxrd *q, const char *in, size_t len, char *out);

/* End the message: the held bytes, a newline if the message did not end with one, and the empty
 * line that separates messages, into OUT (capacity >= POP3C_MBOXRD_SLACK + 2). */
size_t pop3c_mboxrd_finish(struct pop3c_mboxrd *q, char *out);

/* The envelope sender for an mbox From_ line from the Return-Path header of the header block
 * H[0..LEN): the address inside <...>, when it is 1..SIZE-1 octets of 0x21..0x7E without '<' or
 * '>'. Copied NUL-terminated into OUT; false when absent, empty ("<>") or unusable. */
bool pop3c_envelope_sender(const char *h, size_t len, char *out, size_t size);

#endif
