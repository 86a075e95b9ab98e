/* Unit tests for lib/utf8.c: strict UTF-8, SASLprep profiles, the 8-bit header scan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "utf8.h"

#define V(s) utf8_valid(s, sizeof(s) - 1)

static void test_valid(void **state)
{
	(void)state;
	assert_true(V(""));
	assert_true(V("abc"));
	assert_true(V("\xc3\xa9"));
	assert_true(V("\xe6\x97\xa5\xe6\x9c\xac"));
	assert_true(V("\xf0\x9f\x98\x80"));
	assert_true(V("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
	assert_false(V("\xc3\x28"));
	assert_false(V("\xc3"));             /* truncated */
	assert_false(V("\xe6\x97"));         /* truncated */
	assert_false(V("\x80"));             /* lone continuation */
	assert_false(V("\xc0\xaf"));         /* overlong '/' */
	assert_false(V("\xc1\xbf"));         /* overlong */
	assert_false(V("\xe0\x80\xaf"));     /* overlong '/' */
	assert_false(V("\xf0\x80\x80\xaf")); /* overlong '/' */
	assert_false(V("\xed\xa0\x80"));     /* U+D800 */
	assert_false(V("\xf4\x90\x80\x80")); /* above U+10FFFF */
	assert_false(V("\xf5\x80\x80\x80"));
	assert_false(V("\xff"));
	assert_true(utf8_is_ascii("abc\x7f", 4));
	assert_false(utf8_is_ascii("ab\xc3\xa9", 4));
}

static void prep_is(const char *in, bool stored, const char *want)
{
	char out[64];
	const char *error = NULL;

	if (utf8_saslprep(in, strlen(in), stored, out, sizeof(out), &error) != 0)
		fail_msg("\"%s\" refused: %s", in, error);
	assert_string_equal(out, want);
}

static void prep_bad(const char *in, size_t len, bool stored)
{
	char out[64];
	const char *error = NULL;

	if (utf8_saslprep(in, len, stored, out, sizeof(out), &error) != -1)
		fail_msg("\"%s\" accepted as \"%s\"", in, out);
	assert_non_null(error);
}

static void test_saslprep(void **state)
{
	(void)state;
	/* RFC 4013 §3 examples. */
	prep_is("I\xc2\xad"
	        "X",
	        true, "IX");
	prep_is("user", true, "user");
	prep_is("USER", true, "USER");
	prep_is("\xc2\xaa", true, "a");
	prep_is("\xe2\x85\xa8", true, "IX");
	prep_is("I\xc2\xa0X", false, "I X");
	prep_bad("\x07", 1, false);
	prep_bad("\xd8\xa7"
	         "1",
	         3, false);                  /* bidi: RandALCat then L/EN */
	prep_bad("a\xe2\x80\x8e", 4, false); /* U+200E */
	prep_bad("\xc3\x28", 2, false);
	prep_bad("a\0b", 3, false);
	prep_bad("\xc2\xad", 2, false); /* empty after mapping */
	/* An unassigned code point: a query may hold it, a stored string may not. */
	prep_bad("a\xcd\xb8", 3, true);
	prep_is("a\xcd\xb8", false, "a\xcd\xb8");
	{
		char out[4];
		const char *error;
		assert_int_equal(utf8_saslprep("abcd", 4, true, out, sizeof(out), &error), -1);
	}
}

static bool hdr8(const char *msg, size_t len, size_t split)
{
	struct utf8_hdr_scan h;

	utf8_hdr_init(&h);
	utf8_hdr_feed(&h, msg, split);
	utf8_hdr_feed(&h, msg + split, len - split);
	return h.eight_bit;
}

static void check_hdr(const char *msg, bool want)
{
	size_t len = strlen(msg);

	for (size_t k = 0; k <= len; k++)
		if (hdr8(msg, len, k) != want)
			fail_msg("\"%s\" split at %zu: expected %d", msg, k, want);
}

static void test_header_scan(void **state)
{
	(void)state;
	check_hdr("Subject: hi\n\nbody \xc3\xa9\n", false);
	check_hdr("Subject: hi\r\n\r\nbody \xc3\xa9\r\n", false);
	check_hdr("Subject: h\xc3\xa9\n\nbody\n", true);
	check_hdr("Subject: h\xc3\xa9\r\n\r\nbody\r\n", true);
	check_hdr("\nbody \xc3\xa9\n", false); /* no header at all */
	check_hdr("\r\nbody \xc3\xa9\n", false);
	check_hdr("A: b\r\r\nC: \xc3\xa9\n\n", true); /* "\r\r\n" is not an empty line */
	check_hdr("A: b\n\rX: \xc3\xa9\n\n", true);   /* CR then a byte: not empty */
	check_hdr("A: b\nC: d", false);               /* all header, ASCII */
	check_hdr("A: b\nC: \xff", true);             /* all header, 8-bit */
	check_hdr("", false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_saslprep),
	    cmocka_unit_test(test_header_scan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
