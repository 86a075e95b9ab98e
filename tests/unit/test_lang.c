/* Unit tests for gannetd/lang.c: the catalogue's languages agree on status, response code and
 * printf conversions (lang_reply formats them with the same arguments), English stays ASCII,
 * LANG range lookup, and cutting long replies on a character boundary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

/* lang.c and its helper client.c live in gannetd/, outside libgannet.a. */
#include "../../gannetd/client.c"
#include "../../gannetd/lang.c"

#include "utf8.h"

/* The conversions of FMT, e.g. "zu,PRIu64": what vsnprintf will read from the arguments. */
static void conversions(const char *fmt, char *out, size_t size)
{
	size_t n = 0;

	out[0] = '\0';
	for (const char *p = fmt; (p = strchr(p, '%')) != NULL;) {
		size_t k = strspn(p + 1, "-+ #0123456789.hlLqjzt");

		if (p[1] == '%') {
			p += 2;
			continue;
		}
		n += (size_t)snprintf(out + n, size - n, "%.*s,", (int)k + 1, p + 1);
		assert_true(n < size);
		p += k + 2;
	}
}

/* "+OK", "-ERR", then a response code "[...]" when there is one. */
static void head(const char *fmt, char *out, size_t size)
{
	const char *sp = strchr(fmt, ' ');
	size_t n = sp ? (size_t)(sp - fmt) : strlen(fmt);

	if (sp != NULL && sp[1] == '[') {
		const char *end = strchr(sp, ']');
		assert_non_null(end);
		n = (size_t)(end - fmt) + 1;
	}
	assert_true(n < size);
	memcpy(out, fmt, n);
	out[n] = '\0';
}

static void test_catalogue(void **state)
{
	(void)state;
	for (int id = 0; id < TXT_COUNT; id++) {
		const char *en = catalogue[id][LANG_EN];
		char conv_en[64], conv[64], head_en[64], h[64];

		if (en == NULL)
			fail_msg("text %d has no English", id);
		assert_true(strncmp(en, "+OK", 3) == 0 || strncmp(en, "-ERR", 4) == 0);
		assert_true(utf8_is_ascii(en, strlen(en)));
		conversions(en, conv_en, sizeof(conv_en));
		head(en, head_en, sizeof(head_en));
		for (int l = 1; l < LANG_COUNT; l++) {
			const char *t = catalogue[id][l];

			if (t == NULL)
				fail_msg("text %d has no %s", id, langs[l].tag);
			assert_true(utf8_valid(t, strlen(t)));
			conversions(t, conv, sizeof(conv));
			if (strcmp(conv, conv_en) != 0)
				fail_msg("text %d: %s has %s, en %s", id, langs[l].tag, conv,
				         conv_en);
			head(t, h, sizeof(h));
			if (strcmp(h, head_en) != 0)
				fail_msg("text %d: %s starts %s, en %s", id, langs[l].tag, h,
				         head_en);
			/* Whole replies in Japanese stay within 512 octets without a cut. */
			assert_true(strlen(t) + 2 < POP3_RESP_MAX / 2);
		}
	}
}

static void test_lookup(void **state)
{
	(void)state;
#define L(s) lang_lookup(s, strlen(s))
	assert_int_equal(L("en"), LANG_EN);
	assert_int_equal(L("EN"), LANG_EN);
	assert_int_equal(L("ja"), LANG_JA);
	assert_int_equal(L("Ja-JP"), LANG_JA);
	assert_int_equal(L("en-GB-oxendict"), LANG_EN);
	assert_int_equal(L("ja-x-private"), LANG_JA);
	assert_int_equal(L("*"), LANG_DEFAULT);
	assert_int_equal(L("xx"), -1);
	assert_int_equal(L("es"), -1);
	assert_int_equal(L("e"), -1);
	assert_int_equal(L(""), -1);
	assert_int_equal(L("en-"), -1);
	assert_int_equal(L("-en"), -1);
	assert_int_equal(L("en--GB"), -1);
	assert_int_equal(L("1en"), -1);
	assert_int_equal(L("abcdefghi"), -1);
	assert_int_equal(L("*-en"), -1);
	assert_int_equal(L("en_GB"), -1);
	assert_int_equal(L("x-ja"), -1);
#undef L
	assert_int_equal(lang_from_tag("ja"), LANG_JA);
	assert_int_equal(lang_from_tag("JA"), -1);
	assert_string_equal(lang_tag(LANG_EN), "en");
	assert_false(lang_needs_utf8(LANG_EN));
	assert_true(lang_needs_utf8(LANG_JA));
}

static char *drain(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	size_t n = evbuffer_get_length(out);
	char *s = malloc(n + 1);

	assert_non_null(s);
	evbuffer_unfreeze(out, 1); /* a socket bufferevent keeps its output's front for itself */
	assert_int_equal(evbuffer_remove(out, s, n), (int)n);
	evbuffer_freeze(out, 1);
	s[n] = '\0';
	return s;
}

static void test_reply(void **state)
{
	struct event_base *base = event_base_new();
	struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
	char arg[600];
	char *s;

	(void)state;
	lang_reply(bev, LANG_JA, TXT_MSG_DELETED, (uint64_t)7);
	s = drain(bev);
	assert_string_equal(s, "-ERR メッセージ 7 は削除済みです\r\n");
	free(s);
	lang_reply(bev, LANG_EN, TXT_MAILDROP, (size_t)3, (uint64_t)1200);
	s = drain(bev);
	assert_string_equal(s, "+OK 3 messages (1200 octets)\r\n");
	free(s);
	/* A reply past 512 octets is cut before a character, never inside one. */
	for (int shift = 0; shift < 3; shift++) {
		size_t n = (size_t)shift;

		memset(arg, 'a', n);
		while (n + 3 < sizeof(arg)) {
			memcpy(arg + n, "日", 3);
			n += 3;
		}
		arg[n] = '\0';
		lang_reply(bev, LANG_JA, TXT_USAGE, arg);
		s = drain(bev);
		assert_true(strlen(s) <= POP3_RESP_MAX);
		assert_true(strlen(s) >= POP3_RESP_MAX - 4);
		assert_string_equal(s + strlen(s) - 2, "\r\n");
		assert_true(utf8_valid(s, strlen(s)));
		free(s);
	}
	bufferevent_free(bev);
	event_base_free(base);
}

static void test_cmd(void **state)
{
	struct event_base *base = event_base_new();
	struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
	struct pop3_cmd cmd;
	enum lang cur = LANG_EN;
	char *s;

	(void)state;
	assert_int_equal(pop3_parse_cmd("LANG ja", 7, &cmd), 0);
	assert_int_equal(lang_cmd(bev, &cmd, false, &cur), CMD_OK);
	assert_int_equal(cur, LANG_EN); /* Japanese needs UTF-8 mode */
	s = drain(bev);
	assert_string_equal(s, "-ERR This language needs UTF-8 mode: send UTF8 first\r\n");
	free(s);
	assert_int_equal(lang_cmd(bev, &cmd, true, &cur), CMD_OK);
	assert_int_equal(cur, LANG_JA);
	s = drain(bev);
	assert_string_equal(s, "+OK ja 言語を日本語に変更しました\r\n");
	free(s);
	assert_int_equal(pop3_parse_cmd("LANG", 4, &cmd), 0);
	assert_int_equal(lang_cmd(bev, &cmd, false, &cur), CMD_OK);
	s = drain(bev);
	assert_string_equal(s, "+OK 言語の一覧です\r\nen English\r\nja\r\n.\r\n");
	free(s);
	assert_int_equal(pop3_parse_cmd("LANG a b", 8, &cmd), 0);
	assert_int_equal(lang_cmd(bev, &cmd, true, &cur), CMD_ERR);
	assert_int_equal(cur, LANG_JA);
	free(drain(bev));
	bufferevent_free(bev);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_catalogue),
	    cmocka_unit_test(test_lookup),
	    cmocka_unit_test(test_reply),
	    cmocka_unit_test(test_cmd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
