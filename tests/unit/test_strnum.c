/* Unit tests for lib/strnum.c: strict decimal parsing (S-012). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "strnum.h"

#define SENTINEL 0x5a5a5a5aULL

/* Parse S with both entry points; return the result and check they agree. */
static int parse(const char *s, uint64_t min, uint64_t max, uint64_t *out_r)
{
	uint64_t a = SENTINEL, b = SENTINEL;
	int ra = strnum_u64(s, strlen(s), min, max, &a);
	int rb = strnum_parse(s, min, max, &b);

	assert_int_equal(ra, rb);
	assert_true(a == b);
	/* A failed parse leaves the output alone. */
	if (ra != 0)
		assert_true(a == SENTINEL);
	*out_r = a;
	return ra;
}

static void ok(const char *s, uint64_t min, uint64_t max, uint64_t want)
{
	uint64_t v;

	assert_int_equal(parse(s, min, max, &v), 0);
	assert_true(v == want);
}

static void bad(const char *s, uint64_t min, uint64_t max)
{
	uint64_t v;

	assert_int_equal(parse(s, min, max, &v), -1);
}

static void test_plain(void **state)
{
	(void)state;
	ok("0", 0, UINT32_MAX, 0);
	ok("1", 0, UINT32_MAX, 1);
	ok("42", 0, UINT32_MAX, 42);
	ok("4294967295", 0, UINT32_MAX, UINT32_MAX);
	ok("18446744073709551615", 0, UINT64_MAX, UINT64_MAX);
}

static void test_spelling(void **state)
{
	(void)state;
	/* One spelling per number: no leading zero, sign or space. */
	bad("01", 0, UINT32_MAX);
	bad("00", 0, UINT32_MAX);
	bad("-1", 0, UINT32_MAX);
	bad("+1", 0, UINT32_MAX);
	bad(" 1", 0, UINT32_MAX);
	bad("1 ", 0, UINT32_MAX);
	bad("1\t", 0, UINT32_MAX);
	bad("", 0, UINT32_MAX);
	bad("1x", 0, UINT32_MAX);
	bad("x1", 0, UINT32_MAX);
	bad("0x10", 0, UINT32_MAX);
	bad("1e3", 0, UINT32_MAX);
	bad("1.0", 0, UINT32_MAX);
}

static void test_range(void **state)
{
	(void)state;
	/* LIST 4294967297 must not wrap to message 1. */
	bad("4294967297", 0, UINT32_MAX);
	bad("4294967296", 0, UINT32_MAX);
	bad("18446744073709551616", 0, UINT64_MAX);
	bad("18446744073709551617", 0, UINT64_MAX);
	bad("99999999999999999999", 0, UINT64_MAX);
	bad("100000000000000000000", 0, UINT64_MAX);
	bad("0", 1, UINT32_MAX);
	ok("1", 1, 1, 1);
	bad("2", 1, 1);
	bad("9", 10, 20);
	ok("10", 10, 20, 10);
	ok("20", 10, 20, 20);
	bad("21", 10, 20);
}

static void test_length_bounded(void **state)
{
	uint64_t v = SENTINEL;

	(void)state;
	/* Only LEN bytes are read: the command line is not NUL-terminated. */
	assert_int_equal(strnum_u64("12x", 2, 0, 100, &v), 0);
	assert_true(v == 12);
	assert_int_equal(strnum_u64("1 2", 1, 0, 100, &v), 0);
	assert_true(v == 1);
	assert_int_equal(strnum_u64("5", 0, 0, 100, &v), -1);
	assert_int_equal(strnum_u64("1\0002", 3, 0, 1000, &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_spelling),
	    cmocka_unit_test(test_range),
	    cmocka_unit_test(test_length_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
