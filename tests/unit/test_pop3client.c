/* Unit tests for lib/pop3client.c: reply parsing, the multi-line body decoder (C-001..C-041), and
 * the mboxrd quoter and envelope sender of mbox delivery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pop3client.h"

#define S(x) x, (sizeof(x) - 1)

static void test_status(void **state)
{
	const char *t;
	size_t tl;

	(void)state;
	assert_int_equal(pop3c_status(S("+OK"), &t, &tl), POP3C_OK);
	assert_int_equal(tl, 0);
	assert_int_equal(pop3c_status(S("+OK 2 320"), &t, &tl), POP3C_OK);
	assert_int_equal(tl, 5);
	assert_memory_equal(t, "2 320", 5);
	assert_int_equal(pop3c_status(S("+ok fine"), &t, &tl), POP3C_OK);
	assert_int_equal(pop3c_status(S("-ERR"), &t, &tl), POP3C_ERR);
	assert_int_equal(pop3c_status(S("-ERR [IN-USE] busy"), &t, &tl), POP3C_ERR);
	assert_int_equal(pop3c_status(S("+ "), &t, &tl), POP3C_CONT);
	assert_int_equal(pop3c_status(S("+ Zm9v"), &t, &tl), POP3C_CONT);
	assert_int_equal(tl, 4);
	assert_int_equal(pop3c_status(S("+"), &t, &tl), POP3C_CONT);
	/* C-002: +OKAY is not +OK. */
	assert_int_equal(pop3c_status(S("+OKAY"), &t, &tl), POP3C_BAD);
	assert_int_equal(pop3c_status(S("-ERROR"), &t, &tl), POP3C_BAD);
	assert_int_equal(pop3c_status(S("OK"), &t, &tl), POP3C_BAD);
	assert_int_equal(pop3c_status(S(""), &t, &tl), POP3C_BAD);
}

static void test_resp_code(void **state)
{
	(void)state;
	assert_int_equal(pop3c_resp_code(S("[IN-USE] locked")), POP3C_RC_IN_USE);
	assert_int_equal(pop3c_resp_code(S("[login-delay] wait")), POP3C_RC_LOGIN_DELAY);
	/* C-028: case-insensitive, unknown sub-levels ignored. */
	assert_int_equal(pop3c_resp_code(S("[sys/temp/disk] full")), POP3C_RC_SYS_TEMP);
	assert_int_equal(pop3c_resp_code(S("[SYS/PERM] gone")), POP3C_RC_SYS_PERM);
	assert_int_equal(pop3c_resp_code(S("[AUTH] wrong")), POP3C_RC_AUTH);
	assert_int_equal(pop3c_resp_code(S("[UTF8]")), POP3C_RC_UTF8);
	assert_int_equal(pop3c_resp_code(S("[SYS] what")), POP3C_RC_OTHER);
	assert_int_equal(pop3c_resp_code(S("[FOO/BAR] x")), POP3C_RC_OTHER);
	assert_int_equal(pop3c_resp_code(S("no code")), POP3C_RC_NONE);
	assert_int_equal(pop3c_resp_code(S("[unterminated")), POP3C_RC_NONE);
	assert_int_equal(pop3c_resp_code(S("[]")), POP3C_RC_NONE);
	assert_int_equal(pop3c_resp_code(S("[IN USE]")), POP3C_RC_NONE);
}

static void test_numbers(void **state)
{
	uint64_t a, b;
	char uid[POP3_UIDL_MAX + 1];

	(void)state;
	/* C-003, C-004 */
	assert_int_equal(pop3c_parse_stat(S("2 320 extra"), &a, &b), 0);
	assert_true(a == 2 && b == 320);
	assert_int_equal(pop3c_parse_stat(S("1 5000000000"), &a, &b), 0);
	assert_true(b == 5000000000ULL);
	assert_int_equal(pop3c_parse_stat(S("0 0"), &a, &b), 0);
	assert_int_equal(pop3c_parse_stat(S("007 0"), &a, &b), 0);
	assert_true(a == 7);
	assert_int_equal(pop3c_parse_stat(S("1 99999999999999999999"), &a, &b), -1);
	assert_int_equal(pop3c_parse_stat(S("-1 2"), &a, &b), -1);
	assert_int_equal(pop3c_parse_stat(S("1"), &a, &b), -1);
	assert_int_equal(pop3c_parse_stat(S("1  2"), &a, &b), -1);
	assert_int_equal(pop3c_parse_stat(S(""), &a, &b), -1);
	assert_int_equal(pop3c_parse_list(S("0 10"), &a, &b), -1);
	assert_int_equal(pop3c_parse_list(S("3 10"), &a, &b), 0);

	assert_int_equal(pop3c_parse_uidl(S("1 whqtswO00WBw418f9t5JxYwZ"), &a, uid), 0);
	assert_string_equal(uid, "whqtswO00WBw418f9t5JxYwZ");
	assert_int_equal(pop3c_parse_uidl(S("2 ../../etc/x"), &a, uid),
	                 0); /* valid; escaped later */
	assert_int_equal(pop3c_parse_uidl(S("2 a\x01"), &a, uid), -1);
	assert_int_equal(pop3c_parse_uidl(S("2 "), &a, uid), -1);
	assert_int_equal(pop3c_parse_uidl(S("0 x"), &a, uid), -1);
	char line[100];
	memset(line, 'u', sizeof(line));
	line[0] = '1';
	line[1] = ' ';
	assert_int_equal(pop3c_parse_uidl(line, 2 + 70, &a, uid), 0);
	assert_int_equal(pop3c_parse_uidl(line, 2 + 71, &a, uid), -1);
}

static void test_capa(void **state)
{
	struct pop3c_capa c;
	static const char *const lines[] = {"TOP",
	                                    "uidl",
	                                    "SASL PLAIN  SCRAM-SHA-256 xoauth2",
	                                    "EXPIRE 30 USER",
	                                    "LOGIN-DELAY 900",
	                                    "PIPELINING",
	                                    "IMPLEMENTATION shiny",
	                                    "UTF8 USER",
	                                    "X-WEIRD a b c"};

	(void)state;
	pop3c_capa_reset(&c);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		pop3c_capa_line(&c, lines[i], strlen(lines[i]));
	assert_true(c.top && c.uidl && c.pipelining && c.sasl_plain && c.sasl_scram_sha256);
	assert_true(c.sasl_xoauth2 && !c.sasl_login && !c.stls && !c.user);
	assert_true(c.expire_set && c.expire_days == 30 && c.expire_user && !c.expire_never);
	assert_true(c.login_delay_set && c.login_delay == 900 && !c.login_delay_user);
	assert_true(c.utf8 && c.utf8_user);
	pop3c_capa_reset(&c);
	pop3c_capa_line(&c, S("EXPIRE NEVER"));
	assert_true(c.expire_set && c.expire_never);
	pop3c_capa_reset(&c);
	pop3c_capa_line(&c, S("EXPIRE soon"));
	assert_false(c.expire_set);
}

static void test_apop(void **state)
{
	const char *ts;
	size_t tl;

	(void)state;
	/* C-008: the whole <...> token, brackets included. */
	assert_true(pop3c_apop_timestamp(S("POP3 server ready <1896.697170952@dbc.mtview.ca.us>"),
	                                 &ts, &tl));
	assert_int_equal(tl, strlen("<1896.697170952@dbc.mtview.ca.us>"));
	assert_memory_equal(ts, "<1896.697170952@dbc.mtview.ca.us>", tl);
	/* A bracketed word without '@' is skipped; the real timestamp after it is used. */
	assert_true(pop3c_apop_timestamp(S("ready <beta> <a.b@c>"), &ts, &tl));
	assert_memory_equal(ts, "<a.b@c>", tl);
	assert_true(pop3c_apop_timestamp(S("x <<1@2>"), &ts, &tl));
	assert_memory_equal(ts, "<1@2>", tl);
	/* C-009: no timestamp, no APOP. */
	assert_false(pop3c_apop_timestamp(S("POP3 ready"), &ts, &tl));
	assert_false(pop3c_apop_timestamp(S("ready <a b@c>"), &ts, &tl));
	assert_false(pop3c_apop_timestamp(S("ready <a@b"), &ts, &tl));
}

static void test_b64(void **state)
{
	(void)state;
	assert_true(pop3c_b64_valid(S("")));
	assert_true(pop3c_b64_valid(S("Zm9v")));
	assert_true(pop3c_b64_valid(S("Zm8=")));
	assert_true(pop3c_b64_valid(S("Zg==")));
	assert_false(pop3c_b64_valid(S("Zm9v!")));  /* C-019 */
	assert_false(pop3c_b64_valid(S("Zm9")));    /* length */
	assert_false(pop3c_b64_valid(S("Z=9v")));   /* misplaced pad */
	assert_false(pop3c_b64_valid(S("Z===")));   /* three pads */
	assert_false(pop3c_b64_valid(S("Zm 9v")));  /* space */
	assert_false(pop3c_b64_valid(S("Zm9vYg"))); /* missing pad */
}

static void test_header(void **state)
{
	const char *v;
	size_t vl;
	static const char h[] =
	    "Subject: hi\r\nmessage-id:   <x@y>  \r\nDate: Mon\r\n\r\nMessage-ID: no";

	(void)state;
	assert_true(pop3c_header_find(S(h), "Message-ID", &v, &vl));
	assert_int_equal(vl, 5);
	assert_memory_equal(v, "<x@y>", 5);
	assert_true(pop3c_header_find(S(h), "date", &v, &vl));
	assert_memory_equal(v, "Mon", 3);
	assert_false(pop3c_header_find(S(h), "From", &v, &vl));
	assert_false(pop3c_header_find(S("A: b\n\nFrom: x\n"), "From", &v, &vl));
}

/* Decode WIRE split into chunks of CHUNK bytes; return the output and the consumed count. */
static size_t decode(const char *wire, size_t len, size_t chunk, bool to_lf, char *out,
                     size_t *consumed_r, bool *done_r)
{
	struct pop3c_dec d;
	size_t o = 0, pos = 0;
	char tmp[4096];

	pop3c_dec_init(&d, to_lf);
	while (pos < len && !d.done) {
		size_t n = len - pos < chunk ? len - pos : chunk, used;
		size_t w = pop3c_dec_feed(&d, wire + pos, n, tmp, &used);
		assert_true(w <= n + 1);
		memcpy(out + o, tmp, w);
		o += w;
		pos += used;
		if (!d.done)
			assert_int_equal(used, n);
	}
	*consumed_r = pos;
	*done_r = d.done;
	return o;
}

static void dec_case(const char *wire, size_t wlen, const char *want, size_t want_len, bool to_lf,
                     size_t want_consumed)
{
	char out[4096];

	for (size_t chunk = 1; chunk <= wlen; chunk++) {
		size_t consumed;
		bool done;
		size_t n = decode(wire, wlen, chunk, to_lf, out, &consumed, &done);
		assert_true(done);
		assert_int_equal(consumed, want_consumed);
		assert_int_equal(n, want_len);
		assert_memory_equal(out, want, n);
	}
}

static void test_decoder(void **state)
{
	(void)state;
	/* C-001: "..", ".x", "..." unstuffed; the lone "." ends the body. */
	dec_case(S("..\r\n.x\r\n...\r\n.\r\n"), S(".\r\nx\r\n..\r\n"), false, 16);
	dec_case(S("..\r\n.x\r\n...\r\n.\r\n"), S(".\nx\n..\n"), true, 16);
	/* Empty body; bytes after the terminator belong to the next reply. */
	dec_case(S(".\r\n+OK next\r\n"), S(""), false, 3);
	/* C-041: NUL, 0xff and a bare CR pass through; a bare LF is not a line start. */
	dec_case(S("a\0b\xff\rc\r\nd\n.e\r\n.\r\n"), S("a\0b\xff\rc\nd\n.e\n"), true, 17);
	/* ".\rX" is a stuffed dot followed by a data CR. */
	dec_case(S(".\rX\r\n.\r\n"), S("\rX\r\n"), false, 8);
	dec_case(S(".\r\r\n.\r\n"), S("\r\n"), true, 7);
	dec_case(S("x\r\r\n.\r\n"), S("x\r\n"), true, 7);
	/* "\r\n.\r\n" split at every position is handled by the chunk loop in dec_case. */
	dec_case(S("line\r\n.\r\n"), S("line\r\n"), false, 9);
}

static void test_decoder_wire_count(void **state)
{
	struct pop3c_dec d;
	char out[64];
	size_t used;
	static const char w[] = "ab\r\n..c\r\n\r\n.\r\n";

	(void)state;
	pop3c_dec_init(&d, true);
	pop3c_dec_feed(&d, w, sizeof(w) - 1, out, &used);
	assert_true(d.done);
	/* LIST counts "ab\r\n.c\r\n\r\n" = 10 octets even when we store LF. */
	assert_true(d.wire == 10);
	assert_true(d.out == 7);
}

static void test_decoder_never_ends(void **state)
{
	struct pop3c_dec d;
	char out[64];
	size_t used;

	(void)state;
	pop3c_dec_init(&d, false);
	for (int i = 0; i < 1000; i++) {
		pop3c_dec_feed(&d, S("..\r\n.x\r\n"), out, &used);
		assert_false(d.done);
		assert_int_equal(used, 8);
	}
	pop3c_dec_feed(&d, S(".\r\n"), out, &used);
	assert_true(d.done);
}

static void test_capa_scram(void **state)
{
	struct pop3c_capa c;

	(void)state;
	pop3c_capa_reset(&c);
	pop3c_capa_line(&c, S("SASL SCRAM-SHA-256-PLUS scram-sha-1 SCRAM-SHA-1-PLUS OAUTHBEARER"));
	assert_true(c.sasl_scram_sha256_plus && c.sasl_scram_sha1 && c.sasl_scram_sha1_plus);
	assert_true(c.sasl_oauthbearer && c.sasl_any);
	assert_false(c.sasl_scram_sha256 || c.sasl_plain || c.sasl_xoauth2);
	pop3c_capa_reset(&c);
	pop3c_capa_line(&c, S("SASL SCRAM-SHA-1-PLUSX SCRAM-SHA"));
	assert_false(c.sasl_scram_sha1 || c.sasl_scram_sha1_plus || c.sasl_scram_sha256);
	assert_true(c.sasl_any);
}

/* Quote IN with chunks of STEP bytes (0: all at once) into OUT; the total length. */
static size_t quote_all(const char *in, size_t len, size_t step, char *out)
{
	struct pop3c_mboxrd q;
	size_t o = 0;

	pop3c_mboxrd_init(&q);
	for (size_t off = 0; off < len;) {
		size_t n = step == 0 || step > len - off ? len - off : step;
		o += pop3c_mboxrd_feed(&q, in + off, n, out + o);
		off += n;
	}
	o += pop3c_mboxrd_finish(&q, out + o);
	assert_int_equal(q.out, o);
	return o;
}

static void test_mboxrd(void **state)
{
	static const char in[] = "From x\n>From y\n>>From z\nFrom\n From\nFromage\n>Fro\nx From \n";
	static const char want[] =
	    ">From x\n>>From y\n>>>From z\nFrom\n From\nFromage\n>Fro\nx From \n\n";
	char out[256];

	(void)state;
	for (size_t step = 0; step < 9; step++) {
		size_t n = quote_all(in, sizeof(in) - 1, step, out);
		assert_int_equal(n, sizeof(want) - 1);
		assert_memory_equal(out, want, n);
	}
	/* no final newline: one is added before the separator; a held "From" is let out */
	assert_int_equal(quote_all(S("a\nFrom"), 0, out), 8);
	assert_memory_equal(out, "a\nFrom\n\n", 8);
	/* an empty message is only the separator line */
	assert_int_equal(quote_all("", 0, 0, out), 1);
	assert_memory_equal(out, "\n", 1);
}

static void test_mboxrd_capacity(void **state)
{
	/* Every line "From \n" grows by one byte: the worst case the capacity macro allows for. */
	char in[6 * 100], *out;
	struct pop3c_mboxrd q;
	size_t n;

	(void)state;
	for (size_t i = 0; i < 100; i++)
		memcpy(in + 6 * i, "From \n", 6);
	out = malloc(POP3C_MBOXRD_CAP(sizeof(in)));
	assert_non_null(out);
	pop3c_mboxrd_init(&q);
	n = pop3c_mboxrd_feed(&q, in, sizeof(in), out);
	assert_int_equal(n, 700);
	assert_true(n <= POP3C_MBOXRD_CAP(sizeof(in)));
	/* four bytes held, then the fifth: five in, six out */
	pop3c_mboxrd_init(&q);
	assert_int_equal(pop3c_mboxrd_feed(&q, S("From"), out), 0);
	assert_int_equal(pop3c_mboxrd_feed(&q, S(" "), out), 6);
	assert_memory_equal(out, ">From ", 6);
	free(out);
}

static void test_envelope_sender(void **state)
{
	char out[32];

	(void)state;
	assert_true(pop3c_envelope_sender(S("Subject: x\r\nReturn-Path:  <a+b@c.example>\r\n\r\n"),
	                                  out, sizeof(out)));
	assert_string_equal(out, "a+b@c.example");
	assert_true(pop3c_envelope_sender(S("return-path: x <y@z>\n"), out, sizeof(out)));
	assert_string_equal(out, "y@z");
	assert_false(pop3c_envelope_sender(S("Return-Path: <>\n"), out, sizeof(out)));
	assert_false(pop3c_envelope_sender(S("Return-Path: a@b\n"), out, sizeof(out)));
	assert_false(pop3c_envelope_sender(S("Return-Path: <a b@c>\n"), out, sizeof(out)));
	assert_false(pop3c_envelope_sender(S("Return-Path: <a@b\n"), out, sizeof(out)));
	assert_false(
	    pop3c_envelope_sender(S("Subject: x\n\nReturn-Path: <a@b>\n"), out, sizeof(out)));
	/* 31 octets fit in 32 bytes with the NUL, 32 do not */
	assert_true(pop3c_envelope_sender(S("Return-Path: <aaaaaaaaaaaaaaaaaaaaaaaaaa@b.cc>\n"),
	                                  out, sizeof(out)));
	assert_false(pop3c_envelope_sender(S("Return-Path: <aaaaaaaaaaaaaaaaaaaaaaaaaaa@b.cc>\n"),
	                                   out, sizeof(out)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status),
	    cmocka_unit_test(test_resp_code),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_capa),
	    cmocka_unit_test(test_apop),
	    cmocka_unit_test(test_b64),
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_decoder),
	    cmocka_unit_test(test_decoder_wire_count),
	    cmocka_unit_test(test_decoder_never_ends),
	    cmocka_unit_test(test_capa_scram),
	    cmocka_unit_test(test_mboxrd),
	    cmocka_unit_test(test_mboxrd_capacity),
	    cmocka_unit_test(test_envelope_sender),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
