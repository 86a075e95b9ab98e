/* The reply catalogue (English, Japanese) and the LANG command of RFC 6856 §3. */
#include "lang.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "gannet_limits.h"

struct lang_info {
	const char *tag;
	const char *name; /* in the language itself (RFC 6856 §3.2 language listing) */
	bool needs_utf8;
};

static const struct lang_info langs[LANG_COUNT] = {
    [LANG_EN] = {"en", "English", false},
    [LANG_JA] = {"ja", "日本語", true},
};

/* Designated initialisers keep each id next to its texts; test_lang.c checks that both
 * languages have every entry, the same status and response code, and the same conversions. */
static const char *const catalogue[TXT_COUNT][LANG_COUNT] = {
    [TXT_AUTH_FAILED] = {"-ERR [AUTH] Authentication failed", "-ERR [AUTH] 認証に失敗しました"},
    [TXT_AUTH_UNAVAILABLE] = {"-ERR [SYS/TEMP] Authentication service unavailable",
                              "-ERR [SYS/TEMP] 認証サービスを利用できません"},
    [TXT_AUTH_TEMPFAIL] = {"-ERR [SYS/TEMP] Authentication temporarily unavailable",
                           "-ERR [SYS/TEMP] 認証が一時的に利用できません"},
    [TXT_AUTH_BLOCKED] = {"-ERR [SYS/TEMP] Too many failed logins from your address; try "
                          "again later",
                          "-ERR [SYS/TEMP] このアドレスからのログイン失敗が多すぎます。"
                          "しばらくしてからやり直してください"},
    [TXT_AUTH_CANCELLED] = {"-ERR Authentication cancelled", "-ERR 認証を取り消しました"},
    [TXT_AUTH_MALFORMED] = {"-ERR Authentication response too long or malformed",
                            "-ERR 認証応答が長すぎるか、形式が正しくありません"},
    [TXT_AUTH_LIST] = {"+OK Authentication mechanisms follow", "+OK 認証方式の一覧です"},
    [TXT_APOP_OFF] = {"-ERR APOP is not offered", "-ERR APOP は提供していません"},
    [TXT_B64_INITIAL] = {"-ERR Invalid base64 in the initial response",
                         "-ERR 初期応答の base64 が正しくありません"},
    [TXT_B64_RESPONSE] = {"-ERR Invalid base64 in the authentication response",
                          "-ERR 認証応答の base64 が正しくありません"},
    [TXT_BAD_CHARS] = {"-ERR Invalid characters in command",
                       "-ERR コマンドに使えない文字があります"},
    [TXT_BAD_LINES] = {"-ERR Invalid number of lines", "-ERR 行数が正しくありません"},
    [TXT_BAD_MSGNUM] = {"-ERR Invalid message number", "-ERR メッセージ番号が正しくありません"},
    [TXT_BAD_PASSWORD] = {"-ERR Password is not UTF-8 that SASLprep accepts",
                          "-ERR パスワードが SASLprep で使える UTF-8 ではありません"},
    [TXT_BAD_USER] = {"-ERR Invalid user name", "-ERR ユーザー名が正しくありません"},
    [TXT_BYE] = {"+OK Bye", "+OK さようなら"},
    [TXT_BYE_DELETED] = {"+OK Bye, %zu messages deleted",
                         "+OK さようなら。%zu 件のメッセージを削除しました"},
    [TXT_BYE_EXPIRED] = {"+OK Bye, %zu messages deleted, %zu expired",
                         "+OK さようなら。%zu 件を削除し、%zu 件を期限切れで削除しました"},
    [TXT_CAPA_HEAD] = {"+OK Capability list follows", "+OK 機能の一覧です"},
    [TXT_INTERNAL_PERM] = {"-ERR [SYS/PERM] Internal error", "-ERR [SYS/PERM] 内部エラーです"},
    [TXT_INTERNAL_TEMP] = {"-ERR [SYS/TEMP] Internal error", "-ERR [SYS/TEMP] 内部エラーです"},
    [TXT_IN_USE] = {"-ERR [IN-USE] Mailbox is in use by another POP3 session",
                    "-ERR [IN-USE] メールボックスはほかの POP3 セッションが使用中です"},
    [TXT_LANG_LIST] = {"+OK Language listing follows", "+OK 言語の一覧です"},
    [TXT_LANG_NEEDS_UTF8] = {"-ERR This language needs UTF-8 mode: send UTF8 first",
                             "-ERR この言語には UTF-8 モードが必要です。先に UTF8 を送って"
                             "ください"},
    [TXT_LANG_OK] = {"+OK %s Language changed to English", "+OK %s 言語を日本語に変更しました"},
    [TXT_LANG_UNKNOWN] = {"-ERR Unknown or unsupported language",
                          "-ERR 不明な言語か、対応していない言語です"},
    [TXT_LINE_TOO_LONG] = {"-ERR Command line too long", "-ERR コマンド行が長すぎます"},
    [TXT_LOCK_LOST] = {"-ERR [IN-USE] Mailbox lock lost, nothing deleted",
                       "-ERR [IN-USE] メールボックスのロックを失ったため、何も削除していません"},
    [TXT_LOGGED_IN] = {"+OK Logged in, %zu messages (%" PRIu64 " octets)",
                       "+OK ログインしました。%zu 件のメッセージ (%" PRIu64 " オクテット)"},
    [TXT_LOGIN_DELAY] = {"-ERR [LOGIN-DELAY] Logins are %ld seconds apart; try again in %ld "
                         "seconds",
                         "-ERR [LOGIN-DELAY] ログインの間隔は %ld 秒です。%ld 秒後にやり直して"
                         "ください"},
    [TXT_MAILBOX_PERM] = {"-ERR [SYS/PERM] Mailbox unavailable, contact the administrator",
                          "-ERR [SYS/PERM] メールボックスを利用できません。管理者に連絡して"
                          "ください"},
    [TXT_MAILBOX_TEMP] = {"-ERR [SYS/TEMP] Mailbox temporarily unavailable",
                          "-ERR [SYS/TEMP] メールボックスが一時的に利用できません"},
    [TXT_MAILDROP] = {"+OK %zu messages (%" PRIu64 " octets)",
                      "+OK %zu 件のメッセージ (%" PRIu64 " オクテット)"},
    [TXT_MECH_NEEDS_TLS] = {"-ERR %s needs TLS", "-ERR %s には TLS が必要です"},
    [TXT_MECH_UNSUPPORTED] = {"-ERR Unsupported authentication mechanism",
                              "-ERR 対応していない認証方式です"},
    [TXT_MSG_DELETED] = {"-ERR Message %" PRIu64 " is deleted",
                         "-ERR メッセージ %" PRIu64 " は削除済みです"},
    [TXT_MSG_DELETED_OK] = {"+OK Message %zu deleted", "+OK メッセージ %zu を削除しました"},
    [TXT_MSG_NEEDS_UTF8] = {"-ERR [UTF8] Message %zu has a UTF-8 header; log in after the "
                            "UTF8 command to retrieve it",
                            "-ERR [UTF8] メッセージ %zu のヘッダーは UTF-8 です。UTF8 "
                            "コマンドの後にログインすると取り出せます"},
    [TXT_MSG_REMOVED] = {"-ERR [SYS/TEMP] Message %zu was removed by another program",
                         "-ERR [SYS/TEMP] メッセージ %zu はほかのプログラムに削除されました"},
    [TXT_MSG_UNREADABLE] = {"-ERR [SYS/TEMP] Message %zu cannot be read",
                            "-ERR [SYS/TEMP] メッセージ %zu を読めません"},
    [TXT_NOT_BEFORE_LOGIN] = {"-ERR Command not valid before login",
                              "-ERR このコマンドはログインの前には使えません"},
    [TXT_NO_ARGS] = {"-ERR %s takes no arguments", "-ERR %s に引数は要りません"},
    [TXT_NO_MEMORY] = {"-ERR [SYS/TEMP] Out of memory", "-ERR [SYS/TEMP] メモリが足りません"},
    [TXT_NO_SUCH_MSG] = {"-ERR No such message", "-ERR そのメッセージはありません"},
    [TXT_PIPELINED_LOGIN] = {"-ERR Too many pipelined commands during login",
                             "-ERR ログイン中に送られたコマンドが多すぎます"},
    [TXT_PLAINTEXT_OFF] = {"-ERR [AUTH] Plaintext authentication disallowed on non-secure "
                           "connection",
                           "-ERR [AUTH] 暗号化されていない接続では平文の認証はできません"},
    [TXT_PLAINTEXT_OFF_STLS] = {"-ERR [AUTH] Plaintext authentication disallowed on "
                                "non-secure connection; use STLS or port 995",
                                "-ERR [AUTH] 暗号化されていない接続では平文の認証はできません。"
                                "STLS かポート 995 を使ってください"},
    [TXT_RETR_OCTETS] = {"+OK %" PRIu64 " octets", "+OK %" PRIu64 " オクテット"},
    [TXT_STLS_AFTER_UTF8] = {"-ERR STLS is not allowed after UTF8",
                             "-ERR UTF8 の後に STLS は使えません"},
    [TXT_STLS_GO] = {"+OK Begin TLS negotiation", "+OK TLS のネゴシエーションを始めてください"},
    [TXT_TLS_ACTIVE] = {"-ERR TLS is already active", "-ERR TLS はすでに有効です"},
    [TXT_TLS_OFF] = {"-ERR TLS is not configured", "-ERR TLS は設定されていません"},
    [TXT_TOO_MANY_BAD] = {"-ERR Too many bad commands, closing connection",
                          "-ERR 不正なコマンドが多すぎるため、接続を閉じます"},
    [TXT_TOP_FOLLOWS] = {"+OK Top of message follows", "+OK メッセージの先頭です"},
    [TXT_UIDL_LIST] = {"+OK Unique-ID listing follows", "+OK 固有 ID の一覧です"},
    [TXT_UNKNOWN_COMMAND] = {"-ERR Unknown command", "-ERR 不明なコマンドです"},
    [TXT_UPDATE_FAILED] = {"-ERR [%s] %zu deleted messages were not removed",
                           "-ERR [%s] 削除したメッセージのうち %zu 件を消せませんでした"},
    [TXT_USAGE] = {"-ERR Usage: %s", "-ERR 使い方: %s"},
    [TXT_USER_FIRST] = {"-ERR USER first", "-ERR 先に USER を送ってください"},
    [TXT_UTF8_OK] = {"+OK UTF-8 mode enabled", "+OK UTF-8 モードを有効にしました"},
    [TXT_WRONG_STATE] = {"-ERR Command not valid in this state",
                         "-ERR このコマンドはこの状態では使えません"},
};

const char *lang_fmt(enum lang l, enum txt_id id)
{
	if ((unsigned)l >= LANG_COUNT)
		l = LANG_DEFAULT;
	if ((unsigned)id >= TXT_COUNT)
		return "-ERR";
	return catalogue[id][l];
}

/* The length of S[0..LEN) without a last character that the cut at LEN split. */
static size_t utf8_cut(const char *s, size_t len)
{
	size_t p = len, need;
	unsigned char c;

	while (p > 0 && ((unsigned char)s[p - 1] & 0xc0) == 0x80)
		p--;
	if (p == 0)
		return 0;
	c = (unsigned char)s[p - 1];
	need = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	return p - 1 + need <= len ? len : p - 1;
}

/* The formats are our own constants, not input; test_lang.c checks their conversions agree. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
void lang_reply(struct bufferevent *bev, enum lang l, enum txt_id id, ...)
{
	char buf[POP3_RESP_MAX - 2]; /* what client_reply keeps: CRLF must fit in 512 octets */
	va_list ap;
	int n;

	va_start(ap, id);
	n = vsnprintf(buf, sizeof(buf), lang_fmt(l, id), ap);
	va_end(ap);
	if (n < 0)
		buf[0] = '\0';
	else if ((size_t)n >= sizeof(buf))
		buf[utf8_cut(buf, sizeof(buf) - 1)] = '\0';
	client_reply(bev, "%s", buf);
}
#pragma GCC diagnostic pop

const char *lang_tag(enum lang l)
{
	return langs[(unsigned)l < LANG_COUNT ? l : LANG_DEFAULT].tag;
}

bool lang_needs_utf8(enum lang l)
{
	return langs[(unsigned)l < LANG_COUNT ? l : LANG_DEFAULT].needs_utf8;
}

int lang_from_tag(const char *tag)
{
	for (int l = 0; l < LANG_COUNT; l++)
		if (strcmp(langs[l].tag, tag) == 0)
			return l;
	return -1;
}

/* RFC 4647 §2.1: 1*8ALPHA *("-" 1*8alphanum). */
static bool range_valid(const char *r, size_t len)
{
	size_t sub = 0;
	bool first = true;

	if (len == 0 || len > LANG_RANGE_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)r[i];

		if (c == '-') {
			if (sub == 0 || i + 1 == len)
				return false;
			sub = 0;
			first = false;
			continue;
		}
		if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (!first && c >= '0' && c <= '9')))
			return false;
		if (++sub > 8)
			return false;
	}
	return true;
}

int lang_lookup(const char *range, size_t len)
{
	if (len == 1 && range[0] == '*')
		return LANG_DEFAULT;
	if (!range_valid(range, len))
		return -1;
	while (len > 0) {
		for (int l = 0; l < LANG_COUNT; l++)
			if (strlen(langs[l].tag) == len &&
			    strncasecmp(langs[l].tag, range, len) == 0)
				return l;
		/* Drop the last subtag (and a single-letter one before it, RFC 4647 §3.4). */
		while (len > 0 && range[len - 1] != '-')
			len--;
		if (len > 0)
			len--;
		if (len >= 2 && range[len - 2] == '-')
			len -= 2;
	}
	return -1;
}

/* The language listing: "tag description". A description that is not ASCII is left out before
 * UTF8 (RFC 6856 §2.1; it is optional in §3.2), so the tag still shows what is served. */
static void lang_list(struct bufferevent *bev, bool utf8, enum lang cur)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	lang_reply(bev, cur, TXT_LANG_LIST);
	for (int l = 0; l < LANG_COUNT; l++) {
		if (utf8 || !langs[l].needs_utf8)
			evbuffer_add_printf(out, "%s %s\r\n", langs[l].tag, langs[l].name);
		else
			evbuffer_add_printf(out, "%s\r\n", langs[l].tag);
	}
	evbuffer_add(out, ".\r\n", 3);
}

int lang_cmd(struct bufferevent *bev, const struct pop3_cmd *cmd, bool utf8, enum lang *cur)
{
	int l;

	if (cmd->argc == 0) {
		lang_list(bev, utf8, *cur);
		return CMD_OK;
	}
	if (cmd->argc != 1 || cmd->bad_spacing)
		return lang_reply(bev, *cur, TXT_USAGE, "LANG [language]"), CMD_ERR;
	if ((l = lang_lookup(cmd->argv[0], cmd->argl[0])) < 0)
		return lang_reply(bev, *cur, TXT_LANG_UNKNOWN), CMD_OK;
	/* A failed LANG keeps the language in use (RFC 6856 §3.2, S-133). */
	if (langs[l].needs_utf8 && !utf8)
		return lang_reply(bev, *cur, TXT_LANG_NEEDS_UTF8), CMD_OK;
	*cur = (enum lang)l;
	lang_reply(bev, *cur, TXT_LANG_OK, langs[l].tag);
	return CMD_OK;
}
