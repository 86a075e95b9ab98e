/* Unit tests for lib/lineio.c: line framing, limits, splits across reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lineio.h"

#define MAX_EVENTS 64

struct event {
	enum line_result r;
	char line[512];
	size_t len;
};

struct run {
	struct event ev[MAX_EVENTS];
	size_t nev;
	size_t peak;     /* most bytes the caller ever held */
	size_t leftover; /* bytes of an unfinished line at the end */
};

/* Plays the caller: a buffer of exactly MAX bytes, filled by "reads" of at most STEP bytes that
 * never cross SPLIT (so a read boundary falls exactly there), drained by line_next. */
static void drive(size_t max, const char *in, size_t inlen, size_t split, size_t step,
                  struct run *run)
{
	struct line_reader lr;
	char *buf = malloc(max);
	size_t used = 0, pos = 0;

	assert_non_null(buf);
	memset(run, 0, sizeof(*run));
	line_reader_init(&lr, max);
	while (pos < inlen) {
		size_t n = max - used;
		size_t limit = pos < split ? split : inlen;

		if (n > step)
			n = step;
		if (n > limit - pos)
			n = limit - pos;
		/* The reader must always leave room: a full buffer with no progress is a hang. */
		assert_true(n > 0);
		memcpy(buf + used, in + pos, n);
		used += n;
		pos += n;
		if (used > run->peak)
			run->peak = used;
		for (;;) {
			size_t line_len = 99999, consumed = 99999;
			enum line_result r = line_next(&lr, buf, used, &line_len, &consumed);

			assert_true(consumed <= used);
			if (r == LINE_OK) {
				assert_true(line_len + 1 <= consumed);
				assert_true(line_len + 2 <= max);
			} else {
				assert_int_equal(line_len, 0);
			}
			if (r != LINE_NEED_MORE) {
				assert_true(run->nev < MAX_EVENTS);
				run->ev[run->nev].r = r;
				run->ev[run->nev].len = r == LINE_OK ? line_len : 0;
				if (r == LINE_OK)
					memcpy(run->ev[run->nev].line, buf, line_len);
				run->nev++;
			}
			memmove(buf, buf + consumed, used - consumed);
			used -= consumed;
			if (r == LINE_NEED_MORE)
				break;
		}
	}
	run->leftover = used;
	free(buf);
}

static void assert_event(const struct run *run, size_t i, enum line_result r, const char *line)
{
	assert_true(i < run->nev);
	assert_int_equal(run->ev[i].r, r);
	if (line != NULL) {
		assert_int_equal(run->ev[i].len, strlen(line));
		assert_memory_equal(run->ev[i].line, line, strlen(line));
	}
}

/* One call on a fresh reader. */
static enum line_result next1(size_t max, const char *data, size_t len, size_t *line_len_r,
                              size_t *consumed_r)
{
	struct line_reader lr;

	line_reader_init(&lr, max);
	return line_next(&lr, data, len, line_len_r, consumed_r);
}

static void test_pipelined_every_split(void **state)
{
	static const char in[] = "STAT\r\nLIST 1\r\nRETR 2\r\n";
	size_t len = sizeof(in) - 1;
	struct run run;

	(void)state;
	for (size_t split = 0; split <= len; split++) {
		for (size_t step = 1; step <= len; step += len - 1) {
			drive(255, in, len, split, step, &run);
			assert_int_equal(run.nev, 3);
			assert_event(&run, 0, LINE_OK, "STAT");
			assert_event(&run, 1, LINE_OK, "LIST 1");
			assert_event(&run, 2, LINE_OK, "RETR 2");
			assert_int_equal(run.leftover, 0);
		}
	}
}

static void test_pipelined_one_call(void **state)
{
	static const char in[] = "STAT\r\nLIST 1\r\n";
	struct line_reader lr;
	size_t ll, c;

	(void)state;
	line_reader_init(&lr, 255);
	assert_int_equal(line_next(&lr, in, 14, &ll, &c), LINE_OK);
	assert_int_equal(ll, 4);
	assert_int_equal(c, 6);
	assert_int_equal(line_next(&lr, in + 6, 8, &ll, &c), LINE_OK);
	assert_int_equal(ll, 6);
	assert_int_equal(c, 8);
	assert_memory_equal(in + 6, "LIST 1", 6);
}

static void test_split_word(void **state)
{
	static const char in[] = "RETR 1\r\n";
	struct run run;

	(void)state;
	/* Edge case 16 / S-014: "RE" then "TR 1\r\n". */
	drive(255, in, 8, 2, 255, &run);
	assert_int_equal(run.nev, 1);
	assert_event(&run, 0, LINE_OK, "RETR 1");
}

static void test_cr_lf_split(void **state)
{
	size_t ll = 7, c = 7;

	(void)state;
	/* The CR at the end may be half a CRLF: keep everything, drop nothing. */
	assert_int_equal(next1(255, "NOOP\r", 5, &ll, &c), LINE_NEED_MORE);
	assert_int_equal(c, 0);
	assert_int_equal(ll, 0);
	assert_int_equal(next1(255, "NOOP\r\n", 6, &ll, &c), LINE_OK);
	assert_int_equal(ll, 4);
	assert_int_equal(c, 6);
}

static void test_bare_lf(void **state)
{
	size_t ll, c;
	struct run run;

	(void)state;
	assert_int_equal(next1(255, "NOOP\n", 5, &ll, &c), LINE_OK);
	assert_int_equal(ll, 4);
	assert_int_equal(c, 5);
	drive(255, "USER a\nPASS b c\r\nQUIT\n", 22, 0, 1, &run);
	assert_int_equal(run.nev, 3);
	assert_event(&run, 0, LINE_OK, "USER a");
	assert_event(&run, 1, LINE_OK, "PASS b c");
	assert_event(&run, 2, LINE_OK, "QUIT");
}

static void test_cr_alone_never_ends_line(void **state)
{
	size_t ll, c;

	(void)state;
	assert_int_equal(next1(255, "NOOP\rSTAT", 9, &ll, &c), LINE_NEED_MORE);
	assert_int_equal(c, 0);
	assert_int_equal(next1(255, "\r", 1, &ll, &c), LINE_NEED_MORE);
	assert_int_equal(c, 0);
}

static void test_nul(void **state)
{
	static const char in[] = "USER a\0b\r\nNOOP\r\n";
	struct run run;
	size_t ll, c;

	(void)state;
	assert_int_equal(next1(255, in, 16, &ll, &c), LINE_BAD_BYTE);
	assert_int_equal(c, 10);
	assert_int_equal(ll, 0);
	/* Reported only when the terminator arrives, then the next line is fine. */
	assert_int_equal(next1(255, in, 9, &ll, &c), LINE_NEED_MORE);
	assert_int_equal(c, 0);
	drive(255, in, 16, 0, 1, &run);
	assert_int_equal(run.nev, 2);
	assert_event(&run, 0, LINE_BAD_BYTE, NULL);
	assert_event(&run, 1, LINE_OK, "NOOP");
	assert_int_equal(next1(255, "\0\n", 2, &ll, &c), LINE_BAD_BYTE);
	assert_int_equal(c, 2);
}

static void test_bare_cr(void **state)
{
	size_t ll, c;
	struct run run;

	(void)state;
	assert_int_equal(next1(255, "NO\rOP\r\n", 7, &ll, &c), LINE_BAD_BYTE);
	assert_int_equal(c, 7);
	/* CR CR LF: the first CR is bare. */
	assert_int_equal(next1(255, "NOOP\r\r\n", 7, &ll, &c), LINE_BAD_BYTE);
	assert_int_equal(c, 7);
	assert_int_equal(next1(255, "\r\r\n", 3, &ll, &c), LINE_BAD_BYTE);
	assert_int_equal(next1(255, "NOOP\r\n\r\n", 8, &ll, &c), LINE_OK);
	assert_int_equal(c, 6);
	drive(255, "NO\rOP\nSTAT\r\n", 12, 3, 255, &run);
	assert_int_equal(run.nev, 2);
	assert_event(&run, 0, LINE_BAD_BYTE, NULL);
	assert_event(&run, 1, LINE_OK, "STAT");
}

static void test_empty_line(void **state)
{
	size_t ll = 9, c = 9;

	(void)state;
	assert_int_equal(next1(255, "\r\n", 2, &ll, &c), LINE_OK);
	assert_int_equal(ll, 0);
	assert_int_equal(c, 2);
	assert_int_equal(next1(255, "\n", 1, &ll, &c), LINE_OK);
	assert_int_equal(ll, 0);
	assert_int_equal(c, 1);
	assert_int_equal(next1(255, "", 0, &ll, &c), LINE_NEED_MORE);
	assert_int_equal(c, 0);
}

/* A line of CONTENT bytes ('x') plus TERM, through the reader with max 255, split everywhere. */
static void check_length(size_t content, const char *term, enum line_result want)
{
	size_t tl = strlen(term);
	size_t len = content + tl + 6;
	char *in = malloc(len);
	struct run run;

	assert_non_null(in);
	memset(in, 'x', content);
	memcpy(in + content, term, tl);
	memcpy(in + content + tl, "NOOP\r\n", 6);
	for (size_t split = 0; split <= len; split++) {
		drive(255, in, len, split, 255, &run);
		assert_int_equal(run.nev, 2);
		assert_event(&run, 0, want, NULL);
		if (want == LINE_OK)
			assert_int_equal(run.ev[0].len, content);
		assert_event(&run, 1, LINE_OK, "NOOP");
		assert_true(run.peak <= 255);
	}
	free(in);
}

static void test_lengths(void **state)
{
	(void)state;
	/* RFC 2449 §4: 255 octets with CRLF is the longest accepted line (S-004). */
	check_length(252, "\r\n", LINE_OK);
	check_length(253, "\r\n", LINE_OK);
	check_length(254, "\r\n", LINE_TOO_LONG);
	check_length(255, "\r\n", LINE_TOO_LONG);
	/* A bare LF counts as two octets, like CRLF. */
	check_length(253, "\n", LINE_OK);
	check_length(254, "\n", LINE_TOO_LONG);
	check_length(255, "\n", LINE_TOO_LONG);
	check_length(256, "\n", LINE_TOO_LONG);
	check_length(0, "\r\n", LINE_OK);
}

static void test_length_direct(void **state)
{
	char in[260];
	size_t ll, c;
	struct line_reader lr;

	(void)state;
	memset(in, 'x', sizeof(in));
	/* 253 bytes and a CR: the LF may still come and make a 255-octet line. */
	in[253] = '\r';
	assert_int_equal(next1(255, in, 254, &ll, &c), LINE_NEED_MORE);
	assert_int_equal(c, 0);
	in[254] = '\n';
	assert_int_equal(next1(255, in, 255, &ll, &c), LINE_OK);
	assert_int_equal(ll, 253);
	assert_int_equal(c, 255);
	/* 255 bytes and no LF cannot fit any more: discard them at once. */
	memset(in, 'x', sizeof(in));
	line_reader_init(&lr, 255);
	assert_int_equal(line_next(&lr, in, 255, &ll, &c), LINE_NEED_MORE);
	assert_int_equal(c, 255);
	assert_true(lr.discarding);
	assert_int_equal(line_next(&lr, "yy\r", 3, &ll, &c), LINE_NEED_MORE);
	assert_int_equal(c, 3);
	assert_int_equal(line_next(&lr, "\nNOOP\r\n", 7, &ll, &c), LINE_TOO_LONG);
	assert_int_equal(c, 1);
	assert_false(lr.discarding);
	assert_int_equal(line_next(&lr, "NOOP\r\n", 6, &ll, &c), LINE_OK);
	assert_int_equal(ll, 4);
	/* An over-long line that arrives whole is reported at once, no discarding state. */
	in[258] = '\r';
	in[259] = '\n';
	line_reader_init(&lr, 255);
	assert_int_equal(line_next(&lr, in, 260, &ll, &c), LINE_TOO_LONG);
	assert_int_equal(c, 260);
	assert_false(lr.discarding);
}

static void test_too_long_beats_bad_byte(void **state)
{
	char in[300];
	size_t ll, c;

	(void)state;
	memset(in, 0, sizeof(in));
	in[299] = '\n';
	assert_int_equal(next1(255, in, 300, &ll, &c), LINE_TOO_LONG);
	assert_int_equal(c, 300);
}

static void test_huge_line(void **state)
{
	enum { HUGE = 100000 };
	size_t len = HUGE + 2 + 6;
	char *in = malloc(len);
	struct run run;

	(void)state;
	assert_non_null(in);
	memset(in, 'A', HUGE);
	memcpy(in + HUGE, "\r\nNOOP\r\n", 8);
	/* S-006: 100 kB without CRLF: bounded memory, one error, then NOOP still works. */
	for (size_t step = 1; step <= 4096; step *= 4) {
		drive(255, in, len, 50000, step, &run);
		assert_int_equal(run.nev, 2);
		assert_event(&run, 0, LINE_TOO_LONG, NULL);
		assert_event(&run, 1, LINE_OK, "NOOP");
		assert_true(run.peak <= 255);
		assert_int_equal(run.leftover, 0);
	}
	/* Split right between the CR and the LF of the long line. */
	drive(255, in, len, HUGE + 1, 255, &run);
	assert_int_equal(run.nev, 2);
	assert_event(&run, 0, LINE_TOO_LONG, NULL);
	assert_event(&run, 1, LINE_OK, "NOOP");
	/* No terminator at all: nothing reported, nothing kept beyond the limit. */
	drive(255, in, HUGE, 0, 1000, &run);
	assert_int_equal(run.nev, 0);
	assert_true(run.peak <= 255);
	assert_true(run.leftover < 255);
	free(in);
}

static void test_small_max(void **state)
{
	size_t ll, c;

	(void)state;
	/* Degenerate limits must not underflow. */
	assert_int_equal(next1(2, "\r\n", 2, &ll, &c), LINE_OK);
	assert_int_equal(next1(2, "a\n", 2, &ll, &c), LINE_TOO_LONG);
	assert_int_equal(next1(1, "\n", 1, &ll, &c), LINE_TOO_LONG);
	assert_int_equal(c, 1);
	assert_int_equal(next1(0, "", 0, &ll, &c), LINE_NEED_MORE);
	assert_int_equal(c, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pipelined_every_split),
	    cmocka_unit_test(test_pipelined_one_call),
	    cmocka_unit_test(test_split_word),
	    cmocka_unit_test(test_cr_lf_split),
	    cmocka_unit_test(test_bare_lf),
	    cmocka_unit_test(test_cr_alone_never_ends_line),
	    cmocka_unit_test(test_nul),
	    cmocka_unit_test(test_bare_cr),
	    cmocka_unit_test(test_empty_line),
	    cmocka_unit_test(test_lengths),
	    cmocka_unit_test(test_length_direct),
	    cmocka_unit_test(test_too_long_beats_bad_byte),
	    cmocka_unit_test(test_huge_line),
	    cmocka_unit_test(test_small_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
