/* Response texts in English and Japanese, and the UTF8/LANG commands (RFC 6856) that the login
 * and mail processes share. Every human-readable reply text after the greeting comes from here,
 * looked up by the session's language. */
#ifndef GANNETD_LANG_H
#define GANNETD_LANG_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>

#include "pop3.h"

/* The languages served. The default is English: LANG * selects it, and it never depends on the
 * user (RFC 6856 §7, S-136). */
enum lang { LANG_EN = 0, LANG_JA, LANG_COUNT };
#define LANG_DEFAULT LANG_EN

/* Longest language tag served, for buffers that carry one (MSG_HANDOVER, MSG_SESSION). */
#define LANG_TAG_MAX 8

/* Longest language range accepted in LANG (RFC 4647 basic range; RFC 5646 tags stay far
 * below). */
#define LANG_RANGE_MAX 64

/* Reply texts. Each is a printf format holding the whole reply line without CRLF: the status,
 * a response code when there is one (the same in every language), then the text. */
enum txt_id {
	TXT_AUTH_FAILED,
	TXT_AUTH_UNAVAILABLE,
	TXT_AUTH_TEMPFAIL,
	TXT_AUTH_BLOCKED,
	TXT_AUTH_CANCELLED,
	TXT_AUTH_MALFORMED,
	TXT_AUTH_LIST,
	TXT_APOP_OFF,
	TXT_B64_INITIAL,
	TXT_B64_RESPONSE,
	TXT_BAD_CHARS,
	TXT_BAD_LINES,
	TXT_BAD_MSGNUM,
	TXT_BAD_PASSWORD,
	TXT_BAD_USER,
	TXT_BYE,
	TXT_BYE_DELETED,
	TXT_BYE_EXPIRED,
	TXT_CAPA_HEAD,
	TXT_INTERNAL_PERM,
	TXT_INTERNAL_TEMP,
	TXT_IN_USE,
	TXT_LANG_LIST,
	TXT_LANG_NEEDS_UTF8,
	TXT_LANG_OK,
	TXT_LANG_UNKNOWN,
	TXT_LINE_TOO_LONG,
	TXT_LOCK_LOST,
	TXT_LOGGED_IN,
	TXT_LOGIN_DELAY,
	TXT_MAILBOX_PERM,
	TXT_MAILBOX_TEMP,
	TXT_MAILDROP,
	TXT_MECH_NEEDS_TLS,
	TXT_MECH_UNSUPPORTED,
	TXT_MSG_DELETED,
	TXT_MSG_DELETED_OK,
	TXT_MSG_NEEDS_UTF8,
	TXT_MSG_REMOVED,
	TXT_MSG_UNREADABLE,
	TXT_NOT_BEFORE_LOGIN,
	TXT_NO_ARGS,
	TXT_NO_MEMORY,
	TXT_NO_SUCH_MSG,
	TXT_PIPELINED_LOGIN,
	TXT_PLAINTEXT_OFF,
	TXT_PLAINTEXT_OFF_STLS,
	TXT_RETR_OCTETS,
	TXT_STLS_AFTER_UTF8,
	TXT_STLS_GO,
	TXT_TLS_ACTIVE,
	TXT_TLS_OFF,
	TXT_TOO_MANY_BAD,
	TXT_TOP_FOLLOWS,
	TXT_UIDL_LIST,
	TXT_UNKNOWN_COMMAND,
	TXT_UPDATE_FAILED,
	TXT_USAGE,
	TXT_USER_FIRST,
	TXT_UTF8_OK,
	TXT_WRONG_STATE,
	TXT_COUNT
};

/* The format of ID in language L (L out of range reads as the default). */
const char *lang_fmt(enum lang l, enum txt_id id);

/* Queue the reply ID in language L, formatted with the arguments its format names (the same in
 * every language: tests/unit/test_lang.c checks that). Cut to RFC 2449's 512 octets on a UTF-8
 * character boundary. */
void lang_reply(struct bufferevent *bev, enum lang l, enum txt_id id, ...);

/* Tag ("en") and description in the language itself ("日本語"). */
const char *lang_tag(enum lang l);

/* True when the language's texts are not ASCII, so it may only be used in UTF-8 mode (RFC 6856
 * §2.1: no non-ASCII bytes are sent before UTF8). */
bool lang_needs_utf8(enum lang l);

/* The language whose tag is exactly TAG (as sent between processes), or -1. */
int lang_from_tag(const char *tag);

/* RFC 4647 §3.4 lookup of the basic language range RANGE[0..LEN): "*" is the default; otherwise
 * the range, then the range with its last subtag dropped, and so on, compared without regard to
 * case. The language, or -1 when the range is malformed or matches nothing. */
int lang_lookup(const char *range, size_t len);

/* The capability lines this server adds for RFC 6856, each with CRLF: UTF-8 user names and
 * passwords are accepted (§2.2), and LANG (§3). */
#define LANG_CAPA_LINES "UTF8 USER\r\nLANG\r\n"

/* LANG (RFC 6856 §3, valid in AUTHORIZATION and TRANSACTION): list, select or refuse, with *CUR
 * the session's language (changed only on success) and UTF8 whether UTF-8 mode is on. Returns a
 * cmd_result (client.h). */
int lang_cmd(struct bufferevent *bev, const struct pop3_cmd *cmd, bool utf8, enum lang *cur);

#endif
