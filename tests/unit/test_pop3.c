/* Unit tests for lib/pop3.c: command parsing and the wire encoder (S-052, S-053, S-060..S-062). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pop3.h"

#define RETR UINT64_MAX

/* ---- command parser ---- */

/* Parse from an exact-size heap copy so ASan catches any read past LEN (no NUL is there). */
static int parse(const char *line, struct pop3_cmd *cmd, char **copy_r)
{
	size_t len = strlen(line);
	char *copy = malloc(len ? len : 1);

	assert_non_null(copy);
	memcpy(copy, line, len);
	*copy_r = copy;
	return pop3_parse_cmd(copy, len, cmd);
}

static void assert_arg(const struct pop3_cmd *cmd, int i, const char *want)
{
	assert_int_equal(cmd->argl[i], strlen(want));
	assert_memory_equal(cmd->argv[i], want, strlen(want));
}

static void test_cmd_simple(void **state)
{
	struct pop3_cmd cmd;
	char *l;

	(void)state;
	assert_int_equal(parse("STAT", &cmd, &l), 0);
	assert_string_equal(cmd.keyword, "STAT");
	assert_null(cmd.rest);
	assert_int_equal(cmd.rest_len, 0);
	assert_int_equal(cmd.argc, 0);
	assert_false(cmd.bad_spacing);
	free(l);
	assert_int_equal(parse("LIST 1", &cmd, &l), 0);
	assert_string_equal(cmd.keyword, "LIST");
	assert_int_equal(cmd.argc, 1);
	assert_arg(&cmd, 0, "1");
	assert_ptr_equal(cmd.rest, l + 5);
	assert_int_equal(cmd.rest_len, 1);
	assert_false(cmd.bad_spacing);
	free(l);
	assert_int_equal(parse("TOP 1 10", &cmd, &l), 0);
	assert_string_equal(cmd.keyword, "TOP");
	assert_int_equal(cmd.argc, 2);
	assert_arg(&cmd, 0, "1");
	assert_arg(&cmd, 1, "10");
	free(l);
	/* RFC 1939 §3 allows digits in keywords, and 1..4 characters. */
	assert_int_equal(parse("X", &cmd, &l), 0);
	assert_string_equal(cmd.keyword, "X");
	free(l);
	assert_int_equal(parse("A1b2", &cmd, &l), 0);
	assert_string_equal(cmd.keyword, "A1B2");
	free(l);
	assert_int_equal(parse("x y", &cmd, &l), 0);
	assert_string_equal(cmd.keyword, "X");
	assert_int_equal(cmd.argc, 1);
	assert_arg(&cmd, 0, "y");
	free(l);
}

static void test_cmd_case(void **state)
{
	static const char *const spellings[] = {"stat", "StAt", "STAT", "sTaT"};
	struct pop3_cmd cmd;
	char *l;

	(void)state;
	/* S-003 */
	for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
		assert_int_equal(parse(spellings[i], &cmd, &l), 0);
		assert_string_equal(cmd.keyword, "STAT");
		free(l);
	}
	assert_int_equal(parse("uidl 1", &cmd, &l), 0);
	assert_string_equal(cmd.keyword, "UIDL");
	assert_arg(&cmd, 0, "1");
	free(l);
	/* Arguments keep their case. */
	assert_int_equal(parse("user Bob", &cmd, &l), 0);
	assert_arg(&cmd, 0, "Bob");
	free(l);
}

static void test_cmd_spacing(void **state)
{
	struct pop3_cmd cmd;
	char *l;

	(void)state;
	/* S-011: two spaces */
	assert_int_equal(parse("LIST  1", &cmd, &l), 0);
	assert_true(cmd.bad_spacing);
	assert_int_equal(cmd.argc, 2);
	assert_arg(&cmd, 0, "");
	assert_arg(&cmd, 1, "1");
	free(l);
	/* trailing space */
	assert_int_equal(parse("LIST 1 ", &cmd, &l), 0);
	assert_true(cmd.bad_spacing);
	assert_int_equal(cmd.argc, 2);
	assert_arg(&cmd, 0, "1");
	assert_arg(&cmd, 1, "");
	free(l);
	/* empty rest */
	assert_int_equal(parse("LIST ", &cmd, &l), 0);
	assert_true(cmd.bad_spacing);
	assert_int_equal(cmd.argc, 1);
	assert_non_null(cmd.rest);
	assert_int_equal(cmd.rest_len, 0);
	assert_arg(&cmd, 0, "");
	free(l);
	assert_int_equal(parse("TOP 1  2", &cmd, &l), 0);
	assert_true(cmd.bad_spacing);
	assert_int_equal(cmd.argc, 3);
	free(l);
	/* Tabs are not separators: they stay in the argument. */
	assert_int_equal(parse("LIST \t1", &cmd, &l), 0);
	assert_false(cmd.bad_spacing);
	assert_arg(&cmd, 0, "\t1");
	free(l);
}

static void test_cmd_argc(void **state)
{
	struct pop3_cmd cmd;
	char *l;

	(void)state;
	assert_int_equal(parse("LIST 1 2", &cmd, &l), 0);
	assert_int_equal(cmd.argc, 2);
	assert_false(cmd.bad_spacing);
	free(l);
	assert_int_equal(parse("LIST 1 2 3", &cmd, &l), 0);
	assert_int_equal(cmd.argc, 3);
	assert_arg(&cmd, 0, "1");
	assert_arg(&cmd, 1, "2");
	free(l);
	assert_int_equal(parse("APOP a b c d e f", &cmd, &l), 0);
	assert_int_equal(cmd.argc, 6);
	free(l);
}

static void test_cmd_rest(void **state)
{
	struct pop3_cmd cmd;
	char *l;

	(void)state;
	/* S-028: PASS keeps its spaces. */
	assert_int_equal(parse("PASS a b c", &cmd, &l), 0);
	assert_string_equal(cmd.keyword, "PASS");
	assert_int_equal(cmd.rest_len, 5);
	assert_memory_equal(cmd.rest, "a b c", 5);
	assert_int_equal(cmd.argc, 3);
	free(l);
	assert_int_equal(parse("PASS  lead", &cmd, &l), 0);
	assert_int_equal(cmd.rest_len, 5);
	assert_memory_equal(cmd.rest, " lead", 5);
	assert_true(cmd.bad_spacing);
	free(l);
}

static void test_cmd_bad_keyword(void **state)
{
	static const char *const bad[] = {
	    "",       "STATX",  "RETRIEVE", " STAT", "STAT\t1",  "ST@T",    "ST.T",
	    "\tSTAT", "STAT\r", "-ERR",     "+OK",   "\xc3\xa9", "LI\xffT", "STAT_",
	};
	struct pop3_cmd cmd;
	char *l;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &cmd, &l), -1);
		free(l);
	}
	/* A NUL right after the keyword is not a separator. */
	assert_int_equal(pop3_parse_cmd("LIST\0001", 6, &cmd), -1);
	assert_int_equal(pop3_parse_cmd("NOOP", 0, &cmd), -1);
}

/* ---- encoder ---- */

struct outbuf {
	char *p;
	size_t len, cap;
};

static void out_append(struct outbuf *o, const char *p, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2 + 16;
		o->p = realloc(o->p, o->cap);
		assert_non_null(o->p);
	}
	if (n > 0)
		memcpy(o->p + o->len, p, n);
	o->len += n;
}

/* Encode MSG in pieces: at CUT (if nonzero and < len) and then every CHUNK bytes. Each call gets
 * an output buffer of exactly the documented capacity, so ASan catches an overrun. */
static uint64_t encode(const char *msg, size_t len, bool stuff, uint64_t top, size_t cut,
                       size_t chunk, struct outbuf *o)
{
	struct pop3_enc e;
	size_t off = 0;
	char *tmp;
	size_t n;

	memset(o, 0, sizeof(*o));
	pop3_enc_init(&e, stuff, top);
	while (off < len) {
		size_t end = off + chunk < len ? off + chunk : len;

		if (off < cut && cut < end)
			end = cut;
		tmp = malloc(2 * (end - off) + 3);
		assert_non_null(tmp);
		n = pop3_enc_feed(&e, msg + off, end - off, tmp);
		assert_true(n <= 2 * (end - off) + 3);
		out_append(o, tmp, n);
		free(tmp);
		off = end;
	}
	/* An empty chunk changes nothing. */
	assert_int_equal(pop3_enc_feed(&e, msg, 0, NULL), 0);
	tmp = malloc(3);
	assert_non_null(tmp);
	n = pop3_enc_finish(&e, tmp);
	assert_true(n <= 3);
	out_append(o, tmp, n);
	/* finish twice is harmless */
	assert_int_equal(pop3_enc_finish(&e, tmp), 0);
	free(tmp);
	return e.size;
}

/* Undo dot-stuffing the way a client does: drop a '.' that starts a line. */
static void unstuff(const struct outbuf *in, struct outbuf *o)
{
	bool start = true;

	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < in->len; i++) {
		if (start && in->p[i] == '.') {
			start = false;
			continue;
		}
		start = in->p[i] == '\n';
		out_append(o, in->p + i, 1);
	}
}

static void assert_out(const struct outbuf *o, const char *want, size_t want_len)
{
	assert_int_equal(o->len, want_len);
	if (want_len > 0)
		assert_memory_equal(o->p, want, want_len);
}

/* Check MSG encodes to the stuffed WANT with LIST size WANT_SIZE, fed whole, in every chunk size
 * and in every two-piece split; and that size == unstuffed length == pop3_wire_size(). */
static void check_enc(const char *msg, size_t len, uint64_t top, const char *want, size_t want_len,
                      uint64_t want_size)
{
	struct outbuf s, u, un;
	uint64_t size;

	size = encode(msg, len, true, top, 0, len + 1, &s);
	assert_out(&s, want, want_len);
	assert_true(size == want_size);
	unstuff(&s, &un);
	assert_true(un.len == size);
	assert_true(encode(msg, len, false, top, 0, len + 1, &u) == size);
	assert_out(&u, un.p, un.len);
	if (top == RETR)
		assert_true(pop3_wire_size(msg, len) == size);
	/* S-002: every line ends in CRLF, the output as a whole too. */
	for (size_t i = 0; i < u.len; i++)
		if (u.p[i] == '\n')
			assert_true(i > 0 && u.p[i - 1] == '\r');
	if (u.len > 0)
		assert_memory_equal(u.p + u.len - 2, "\r\n", 2);
	free(s.p);
	free(u.p);
	free(un.p);

	for (size_t chunk = 1; chunk <= len; chunk++) {
		size = encode(msg, len, true, top, 0, chunk, &s);
		assert_out(&s, want, want_len);
		assert_true(size == want_size);
		free(s.p);
	}
	for (size_t cut = 1; cut < len; cut++) {
		size = encode(msg, len, true, top, cut, len, &s);
		assert_out(&s, want, want_len);
		assert_true(size == want_size);
		free(s.p);
	}
}

#define CHECK(msg, top, want, size)                                                                \
	check_enc(msg, sizeof(msg) - 1, top, want, sizeof(want) - 1, size)

static void test_enc_line_endings(void **state)
{
	(void)state;
	/* Edge case 1: mixed endings, never \r\r\n. */
	CHECK("a\r\nb\nc\r\n", RETR, "a\r\nb\r\nc\r\n", 9);
	CHECK("a\nb\n", RETR, "a\r\nb\r\n", 6);
	CHECK("a\r\nb\r\n", RETR, "a\r\nb\r\n", 6);
	CHECK("\n\r\n\n", RETR, "\r\n\r\n\r\n", 6);
	CHECK("\n", RETR, "\r\n", 2);
	CHECK("\r\n", RETR, "\r\n", 2);
}

static void test_enc_dots(void **state)
{
	(void)state;
	/* S-053: stuffing dots are not counted. The checklist calls this body 6 octets, but
	 * ".\r\n..\r\n" is 3 + 4 = 7, and 7 is what LIST must say (9 wire bytes - 2 dots). */
	CHECK(".\r\n..\r\n", RETR, "..\r\n...\r\n", 7);
	CHECK(".\n..\n", RETR, "..\r\n...\r\n", 7);
	CHECK(".\r\n.\r\n", RETR, "..\r\n..\r\n", 6);
	/* first line of the message */
	CHECK(".first\nsecond\n", RETR, "..first\r\nsecond\r\n", 16);
	CHECK("a\n.\r\n. \n.\r\r\n", RETR, "a\r\n..\r\n.. \r\n..\r\r\n", 14);
	CHECK("x.\n.y.\n", RETR, "x.\r\n..y.\r\n", 9);
	CHECK("...\n", RETR, "....\r\n", 5);
	/* Only the first dot of a line is doubled. */
	CHECK("a\n..b\n", RETR, "a\r\n...b\r\n", 8);
}

static void test_enc_no_final_newline(void **state)
{
	(void)state;
	/* Edge case 4 / S-069: the added CRLF is counted. */
	CHECK("abc", RETR, "abc\r\n", 5);
	CHECK("a\nb", RETR, "a\r\nb\r\n", 6);
	CHECK(".", RETR, "..\r\n", 3);
	CHECK("a\r\n.", RETR, "a\r\n..\r\n", 6);
}

static void test_enc_empty(void **state)
{
	struct outbuf s;

	(void)state;
	/* Edge case 9: a zero-byte message has no lines. */
	assert_true(encode("", 0, true, RETR, 0, 1, &s) == 0);
	assert_int_equal(s.len, 0);
	free(s.p);
	assert_true(encode("", 0, true, 0, 0, 1, &s) == 0);
	assert_int_equal(s.len, 0);
	free(s.p);
	assert_true(pop3_wire_size("", 0) == 0);
}

static void test_enc_nul(void **state)
{
	(void)state;
	/* Edge case 3 */
	CHECK("a\0b\n", RETR, "a\0b\r\n", 5);
	CHECK("\0\n\0", RETR, "\0\r\n\0\r\n", 6);
	CHECK("H: x\n\n\0.\n.\0\n", RETR, "H: x\r\n\r\n\0.\r\n..\0\r\n", 16);
}

static void test_enc_bare_cr(void **state)
{
	(void)state;
	/* Edge case 2: a bare CR is a plain byte, so it never starts a line and is never stuffed
	 * after; LIST counts it once. */
	CHECK("a\rb\n", RETR, "a\rb\r\n", 5);
	CHECK("a\r.b\n", RETR, "a\r.b\r\n", 6);
	CHECK("\r.\n", RETR, "\r.\r\n", 4);
	CHECK("a\r\r\n", RETR, "a\r\r\n", 4);
	CHECK("\r\r\r\n", RETR, "\r\r\r\n", 4);
	/* Trailing CR: taken as the line end. */
	CHECK("abc\r", RETR, "abc\r\n", 5);
	CHECK("a\n\r", RETR, "a\r\n\r\n", 5);
	CHECK("\r", RETR, "\r\n", 2);
	CHECK("\r\r", RETR, "\r\r\n", 3);
	CHECK("a\n\r.\n", RETR, "a\r\n\r.\r\n", 7);
}

static void test_enc_long_line(void **state)
{
	enum { N = 2000 };
	char *msg = malloc(N + 1), *want = malloc(N + 3);

	(void)state;
	assert_non_null(msg);
	assert_non_null(want);
	/* Edge case 6: no line-length limit in bodies. */
	memset(msg, 'x', N);
	msg[0] = '.';
	msg[N] = '\n';
	want[0] = '.';
	memcpy(want + 1, msg, N);
	memcpy(want + 1 + N, "\r\n", 2);
	check_enc(msg, N + 1, RETR, want, N + 3, N + 2);
	check_enc(msg, N, RETR, want, N + 3, N + 2);
	free(msg);
	free(want);
}

static const char top_msg[] = "H1: a\nH2: b\n\nline1\n.line2\nline3\n";
static const char top_all[] = "H1: a\r\nH2: b\r\n\r\nline1\r\n..line2\r\nline3\r\n";

static void test_enc_top(void **state)
{
	(void)state;
	/* S-061 */
	CHECK(top_msg, 0, "H1: a\r\nH2: b\r\n\r\n", 16);
	CHECK(top_msg, 1, "H1: a\r\nH2: b\r\n\r\nline1\r\n", 23);
	CHECK(top_msg, 2, "H1: a\r\nH2: b\r\n\r\nline1\r\n..line2\r\n", 31);
	CHECK(top_msg, 3, top_all, 38);
	CHECK(top_msg, 4, top_all, 38);
	CHECK(top_msg, 1000000, top_all, 38);
	CHECK(top_msg, UINT64_MAX - 1, top_all, 38);
	CHECK(top_msg, RETR, top_all, 38);
	/* CRLF-stored, and a body line that starts with a dot right after the separator. */
	CHECK("H\r\n\r\n.b\r\nc\r\n", 1, "H\r\n\r\n..b\r\n", 9);
	/* The body's last line has no newline. */
	CHECK("H\n\nb", 1, "H\r\n\r\nb\r\n", 8);
	CHECK("H\n\nb", 5, "H\r\n\r\nb\r\n", 8);
	CHECK("H\n\nb\r", 1, "H\r\n\r\nb\r\n", 8);
	/* The message starts with the blank line: empty header. */
	CHECK("\nbody\n", 0, "\r\n", 2);
	CHECK("\r\nbody\n", 1, "\r\nbody\r\n", 8);
	/* A line holding only a bare CR is not the separator. */
	CHECK("H\n\rx\n\nb\n", 0, "H\r\n\rx\r\n\r\n", 9);
	/* A trailing CR at a line start becomes the separator. */
	CHECK("H\n\r", 0, "H\r\n\r\n", 5);
}

static void test_enc_top_no_blank(void **state)
{
	(void)state;
	/* S-062: no separator, so all of it is header; no blank line is invented. */
	CHECK("H1: a\nH2: b\n", 0, "H1: a\r\nH2: b\r\n", 14);
	CHECK("H1: a\nH2: b", 0, "H1: a\r\nH2: b\r\n", 14);
	CHECK("H1: a\nH2: b", 3, "H1: a\r\nH2: b\r\n", 14);
	/* Header-only message, with and without the separator. */
	CHECK("H: a\n", 0, "H: a\r\n", 6);
	CHECK("H: a\n\n", 0, "H: a\r\n\r\n", 8);
	CHECK("H: a\n\n", 1, "H: a\r\n\r\n", 8);
	CHECK("H: a\n\n", RETR, "H: a\r\n\r\n", 8);
}

static void test_enc_top_done(void **state)
{
	struct pop3_enc e;
	char out[2 * sizeof(top_msg) + 3];
	size_t n;

	(void)state;
	pop3_enc_init(&e, true, 0);
	assert_false(pop3_enc_done(&e));
	n = pop3_enc_feed(&e, top_msg, sizeof(top_msg) - 1, out);
	assert_int_equal(n, 16);
	assert_true(pop3_enc_done(&e));
	/* Further input is ignored and adds nothing. */
	assert_int_equal(pop3_enc_feed(&e, "more\n", 5, out), 0);
	assert_int_equal(pop3_enc_finish(&e, out), 0);
	assert_true(e.size == 16);

	pop3_enc_init(&e, true, RETR);
	n = pop3_enc_feed(&e, top_msg, sizeof(top_msg) - 1, out);
	assert_int_equal(n, 39);
	assert_false(pop3_enc_done(&e));
}

static void test_enc_chunk_boundary_dot(void **state)
{
	struct pop3_enc e;
	char out[32];
	size_t n = 0;

	(void)state;
	/* Edge case 5: a '.' that starts a new write buffer. */
	pop3_enc_init(&e, true, RETR);
	n += pop3_enc_feed(&e, "a\n", 2, out + n);
	n += pop3_enc_feed(&e, ".b\n", 3, out + n);
	n += pop3_enc_feed(&e, "c\r", 2, out + n);
	n += pop3_enc_feed(&e, "\n", 1, out + n);
	n += pop3_enc_feed(&e, ".", 1, out + n);
	n += pop3_enc_finish(&e, out + n);
	assert_int_equal(n, 15);
	assert_memory_equal(out, "a\r\n..b\r\nc\r\n..\r\n", 15);
	assert_true(e.size == 13);
}

/* gannetd's RETR reserves 2 * K + 3 bytes of output for K bytes of input (gannetd/mail.c
 * retr_encode): the worst inputs must reach that bound exactly and never pass it. */
static void test_enc_worst_case_piece(void **state)
{
	enum { K = 16384 };
	char *in = malloc(K), *out = malloc(2 * K + 3);
	struct pop3_enc e;
	size_t n;

	(void)state;
	assert_non_null(in);
	assert_non_null(out);
	/* A CR held from the previous piece, then only bare LFs: every byte doubles. */
	memset(in, '\n', K);
	pop3_enc_init(&e, true, RETR);
	assert_int_equal(pop3_enc_feed(&e, "a\r", 2, out), 1);
	n = pop3_enc_feed(&e, in, K, out);
	assert_int_equal(n, 2 * K);
	assert_memory_equal(out, "\r\n\r\n", 4);
	assert_true(e.size == 1 + 2 * K);
	/* Lines of a lone dot: stuffed and CRLF-terminated, also double. */
	for (size_t i = 0; i < K; i += 2)
		memcpy(in + i, ".\n", 2);
	pop3_enc_init(&e, true, RETR);
	n = pop3_enc_feed(&e, in, K, out);
	assert_int_equal(n, 2 * K);
	assert_memory_equal(out + 2 * K - 4, "..\r\n", 4);
	assert_true(e.size == 3 * K / 2); /* stuffing is not counted in the LIST size */
	/* A piece ending in CR gives that CR back at the next piece, or at the end. */
	memset(in, 'x', K);
	in[K - 1] = '\r';
	pop3_enc_init(&e, true, RETR);
	assert_int_equal(pop3_enc_feed(&e, in, K, out), K - 1);
	assert_int_equal(pop3_enc_finish(&e, out), 2);
	assert_memory_equal(out, "\r\n", 2);
	free(in);
	free(out);
}

static void test_wire_size_big(void **state)
{
	enum { N = 100000 };
	char *msg = malloc(N);
	struct outbuf s;

	(void)state;
	assert_non_null(msg);
	/* Longer than pop3_wire_size's internal chunk, with CRLFs across its boundaries. */
	uint32_t x = 1;

	for (size_t i = 0; i < N; i++) {
		x = x * 1103515245u + 12345u;
		msg[i] = "ab\r\n.\n\rc"[(x >> 16) % 8];
	}
	for (size_t i = 4095; i < N; i += 4096) {
		msg[i] = '\r';
		msg[i + 1] = '\n';
	}
	assert_true(encode(msg, N, false, RETR, 0, 1000, &s) == pop3_wire_size(msg, N));
	assert_true(pop3_wire_size(msg, N) == s.len);
	free(s.p);
	free(msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cmd_simple),
	    cmocka_unit_test(test_cmd_case),
	    cmocka_unit_test(test_cmd_spacing),
	    cmocka_unit_test(test_cmd_argc),
	    cmocka_unit_test(test_cmd_rest),
	    cmocka_unit_test(test_cmd_bad_keyword),
	    cmocka_unit_test(test_enc_line_endings),
	    cmocka_unit_test(test_enc_dots),
	    cmocka_unit_test(test_enc_no_final_newline),
	    cmocka_unit_test(test_enc_empty),
	    cmocka_unit_test(test_enc_nul),
	    cmocka_unit_test(test_enc_bare_cr),
	    cmocka_unit_test(test_enc_long_line),
	    cmocka_unit_test(test_enc_top),
	    cmocka_unit_test(test_enc_top_no_blank),
	    cmocka_unit_test(test_enc_top_done),
	    cmocka_unit_test(test_enc_chunk_boundary_dot),
	    cmocka_unit_test(test_enc_worst_case_piece),
	    cmocka_unit_test(test_wire_size_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
