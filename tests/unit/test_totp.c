/* Unit tests for lib/totp.c: RFC 6238 vectors, oathtool agreement, replay, URI, QR, recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pty.h>
#include <unistd.h>

#include <cmocka.h>
#include <qrencode.h>

#include "totp.h"

/* RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890". */
#define RFC_SECRET "12345678901234567890"

/* Made with the OATH Toolkit's own CLI, not with our code:
 *   oathtool --totp -b JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP -N @T
 * for T = 1699999940, 1699999970, 1700000000, 1700000030, 1700000060, i.e. time steps
 * 56666664 .. 56666668; 1700000000 lies in step 56666666. The secret is the 20 bytes
 * 48656c6c6f21deadbeef48656c6c6f21deadbeef. */
#define OATH_B32      "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
#define OATH_NOW      1700000000
#define OATH_STEP     56666666
#define OATH_CODE_M2  "735133"
#define OATH_CODE_M1  "797823"
#define OATH_CODE     "406058"
#define OATH_CODE_P1  "661763"
#define OATH_CODE_P2  "996875"
#define STEP_SENTINEL INT64_C(0x5a5a5a5a5a)

static const unsigned char oath_secret[TOTP_SECRET_LEN] = {
    0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x21, 0xde, 0xad, 0xbe, 0xef,
    0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x21, 0xde, 0xad, 0xbe, 0xef,
};

static int verify(const unsigned char *secret, const char *code, time_t now, int64_t last,
                  int64_t *step_r)
{
	*step_r = STEP_SENTINEL;
	return totp_verify(secret, TOTP_SECRET_LEN, code, now, last, step_r);
}

static void test_rfc6238_vectors(void **state)
{
	/* Appendix B gives 8 digits; 6-digit TOTP is the same value mod 10^6: the last six. */
	static const struct {
		time_t t;
		const char *code;
	} v[] = {
	    {59, "287082"},         /* 94287082 */
	    {1111111109, "081804"}, /* 07081804 */
	    {1111111111, "050471"}, /* 14050471 */
	    {1234567890, "005924"}, /* 89005924 */
	    {2000000000, "279037"}, /* 69279037 */
	};
	const unsigned char *s = (const unsigned char *)RFC_SECRET;
	int64_t step;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(verify(s, v[i].code, v[i].t, -1, &step), 1);
		assert_true(step == (int64_t)(v[i].t / TOTP_STEP));
	}
	assert_true(step == 66666666);
	/* One wrong digit fails. */
	assert_int_equal(verify(s, "279038", 2000000000, -1, &step), 0);
	assert_true(step == STEP_SENTINEL);
}

static void test_oathtool_agrees(void **state)
{
	unsigned char secret[TOTP_SECRET_LEN];
	size_t len = 0;
	int64_t step;

	(void)state;
	assert_int_equal(totp_base32_decode(OATH_B32, secret, sizeof(secret), &len), 0);
	assert_int_equal(len, TOTP_SECRET_LEN);
	assert_memory_equal(secret, oath_secret, TOTP_SECRET_LEN);
	assert_int_equal(verify(secret, OATH_CODE, OATH_NOW, -1, &step), 1);
	assert_true(step == OATH_STEP);
	/* The last second of the same step. */
	assert_int_equal(verify(secret, OATH_CODE, (time_t)OATH_STEP * 30 + 29, -1, &step), 1);
	assert_true(step == OATH_STEP);
}

static void test_window_edges(void **state)
{
	int64_t step;

	(void)state;
	assert_int_equal(verify(oath_secret, OATH_CODE_M1, OATH_NOW, -1, &step), 1);
	assert_true(step == OATH_STEP - 1);
	assert_int_equal(verify(oath_secret, OATH_CODE_P1, OATH_NOW, -1, &step), 1);
	assert_true(step == OATH_STEP + 1);
	assert_int_equal(verify(oath_secret, OATH_CODE_M2, OATH_NOW, -1, &step), 0);
	assert_true(step == STEP_SENTINEL);
	assert_int_equal(verify(oath_secret, OATH_CODE_P2, OATH_NOW, -1, &step), 0);
	assert_true(step == STEP_SENTINEL);
	/* The same codes are one step off when seen from the neighbouring steps. */
	assert_int_equal(verify(oath_secret, OATH_CODE_M2, OATH_NOW - 30, -1, &step), 1);
	assert_true(step == OATH_STEP - 2);
	assert_int_equal(verify(oath_secret, OATH_CODE_P2, OATH_NOW + 30, -1, &step), 1);
	assert_true(step == OATH_STEP + 2);
}

static void test_replay(void **state)
{
	int64_t step;

	(void)state;
	/* Same step refused, older refused, newer accepted. */
	assert_int_equal(verify(oath_secret, OATH_CODE, OATH_NOW, OATH_STEP, &step), 0);
	assert_true(step == STEP_SENTINEL);
	assert_int_equal(verify(oath_secret, OATH_CODE, OATH_NOW, OATH_STEP + 1, &step), 0);
	assert_int_equal(verify(oath_secret, OATH_CODE_M1, OATH_NOW, OATH_STEP, &step), 0);
	assert_int_equal(verify(oath_secret, OATH_CODE, OATH_NOW, OATH_STEP - 1, &step), 1);
	assert_true(step == OATH_STEP);
	/* The next code, already valid through the window, is newer than the one just used. */
	assert_int_equal(verify(oath_secret, OATH_CODE_P1, OATH_NOW, OATH_STEP, &step), 1);
	assert_true(step == OATH_STEP + 1);
	assert_int_equal(verify(oath_secret, OATH_CODE, OATH_NOW, -1, &step), 1);
}

static void test_bad_codes(void **state)
{
	static const char *const bad[] = {
	    "",
	    "40605",
	    "4060580",
	    "40605a",
	    " 406058",
	    "406058 ",
	    "406058\n",
	    "+06058",
	    "-06058",
	    "40 058",
	    "４06058",
	    "4O6058",
	    "\x34\x30\x36\x30\x35\xb8",
	    "0406058",
	    "00406058",
	};
	int64_t step;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(verify(oath_secret, bad[i], OATH_NOW, -1, &step), 0);
		assert_true(step == STEP_SENTINEL);
	}
}

static void test_verify_errors(void **state)
{
	int64_t step = STEP_SENTINEL;

	(void)state;
	assert_int_equal(
	    totp_verify(oath_secret, TOTP_SECRET_MIN - 1, OATH_CODE, OATH_NOW, -1, &step), -1);
	assert_int_equal(totp_verify(oath_secret, 0, OATH_CODE, OATH_NOW, -1, &step), -1);
	assert_int_equal(
	    totp_verify(oath_secret, TOTP_SECRET_MAX + 1, OATH_CODE, OATH_NOW, -1, &step), -1);
	assert_int_equal(verify(oath_secret, OATH_CODE, -1, -1, &step), -1);
	assert_int_equal(verify(oath_secret, OATH_CODE, OATH_NOW, -2, &step), -1);
	assert_int_equal(totp_verify(NULL, TOTP_SECRET_LEN, OATH_CODE, OATH_NOW, -1, &step), -1);
	assert_int_equal(totp_verify(oath_secret, TOTP_SECRET_LEN, NULL, OATH_NOW, -1, &step), -1);
	assert_int_equal(totp_verify(oath_secret, TOTP_SECRET_LEN, OATH_CODE, OATH_NOW, -1, NULL),
	                 -1);
	assert_true(step == STEP_SENTINEL);
}

static void test_early_time(void **state)
{
	const unsigned char *s = (const unsigned char *)RFC_SECRET;
	int64_t step;

	(void)state;
	/* At t=29 (step 0) the step-1 code is one step ahead; there is no step -1 to look at. */
	assert_int_equal(verify(s, "287082", 29, -1, &step), 1);
	assert_true(step == 1);
	assert_int_equal(verify(s, "287082", 0, -1, &step), 1);
	assert_true(step == 1);
	assert_int_equal(verify(s, "287082", 0, 1, &step), 0);
}

static void test_new_secret(void **state)
{
	unsigned char a[TOTP_SECRET_MAX], b[TOTP_SECRET_MAX];
	int64_t step;

	(void)state;
	assert_int_equal(totp_new_secret(a, TOTP_SECRET_LEN), 0);
	assert_int_equal(totp_new_secret(b, TOTP_SECRET_LEN), 0);
	assert_memory_not_equal(a, b, TOTP_SECRET_LEN);
	assert_int_equal(totp_new_secret(a, TOTP_SECRET_MAX), 0);
	assert_int_equal(totp_new_secret(a, TOTP_SECRET_MIN - 1), -1);
	assert_int_equal(totp_new_secret(a, TOTP_SECRET_MAX + 1), -1);
	assert_int_equal(totp_new_secret(NULL, TOTP_SECRET_LEN), -1);
	/* A fresh secret is usable: any well-formed code gives 0 or 1, never an error. */
	assert_int_not_equal(verify(b, "000000", OATH_NOW, -1, &step), -1);
}

static void b32_ok(const char *bin, const char *b32)
{
	unsigned char out[TOTP_SECRET_MAX];
	char enc[TOTP_BASE32_MAX];
	size_t len = 999;

	assert_int_equal(
	    totp_base32_encode((const unsigned char *)bin, strlen(bin), enc, sizeof(enc)), 0);
	assert_string_equal(enc, b32);
	assert_int_equal(totp_base32_decode(b32, out, sizeof(out), &len), 0);
	assert_int_equal(len, strlen(bin));
	assert_memory_equal(out, bin, len);
}

static void test_base32_round_trip(void **state)
{
	unsigned char secret[TOTP_SECRET_MAX], back[TOTP_SECRET_MAX];
	char enc[TOTP_BASE32_MAX];
	size_t len, n;
	int i;

	(void)state;
	/* RFC 4648 §10 test vectors, without padding. */
	b32_ok("f", "MY");
	b32_ok("fo", "MZXQ");
	b32_ok("foo", "MZXW6");
	b32_ok("foob", "MZXW6YQ");
	b32_ok("fooba", "MZXW6YTB");
	b32_ok("foobar", "MZXW6YTBOI");
	b32_ok(RFC_SECRET, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
	/* Random secrets of every allowed length round-trip. */
	for (i = 0; i < 200; i++) {
		n = 1 + (size_t)i % TOTP_SECRET_MAX;
		assert_int_equal(totp_new_secret(secret, TOTP_SECRET_MAX), 0);
		assert_int_equal(totp_base32_encode(secret, n, enc, sizeof(enc)), 0);
		assert_int_equal(strlen(enc), (n * 8 + 4) / 5);
		assert_int_equal(totp_base32_decode(enc, back, sizeof(back), &len), 0);
		assert_int_equal(len, n);
		assert_memory_equal(secret, back, n);
	}
	/* The longest secret needs exactly TOTP_BASE32_MAX bytes. */
	assert_int_equal(totp_base32_encode(secret, TOTP_SECRET_MAX, enc, TOTP_BASE32_MAX), 0);
	assert_int_equal(strlen(enc), TOTP_BASE32_MAX - 1);
	assert_int_equal(totp_base32_decode(enc, back, TOTP_SECRET_MAX, &len), 0);
	assert_int_equal(len, TOTP_SECRET_MAX);
	assert_memory_equal(secret, back, TOTP_SECRET_MAX);
	assert_int_equal(totp_base32_decode(enc, back, TOTP_SECRET_MAX - 1, &len), -1);
	assert_int_equal(totp_base32_encode(secret, TOTP_SECRET_MAX, enc, TOTP_BASE32_MAX - 1), -1);
	assert_string_equal(enc, "");
}

static void test_base32_bad(void **state)
{
	static const char *const bad[] = {
	    "",           /* empty */
	    "my",         /* lower case */
	    "MY======",   /* padding */
	    "MZXW6===",   /* padding */
	    "M",          /* 1 mod 8: not whole bytes */
	    "MZX",        /* 3 mod 8 */
	    "MZXW6Y",     /* 6 mod 8 */
	    "A",          /* 1 mod 8, even with zero bits */
	    "MAA",        /* 3 mod 8, even with zero bits */
	    "MZXW6A",     /* 6 mod 8, even with zero bits */
	    "AAAAAAAAA",  /* 9 = 1 mod 8 */
	    "MZ",         /* nonzero trailing bits */
	    "MZXR",       /* nonzero trailing bits */
	    "MZ XQ",      /* space */
	    "MZXQ\n",     /* newline */
	    "M1",         /* '1' is not base32 */
	    "M8",         /* '8' is not base32 */
	    "M0",         /* '0' is not base32 */
	    "MY\xc3\xa9", /* non-ASCII */
	};
	unsigned char out[TOTP_SECRET_MAX + 8];
	char longer[TOTP_BASE32_MAX + 2];
	char enc[TOTP_BASE32_MAX];
	size_t len = 777, i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(totp_base32_decode(bad[i], out, sizeof(out), &len), -1);
	assert_int_equal(len, 777);
	/* Too long: 104 characters would be 65 bytes. */
	memset(longer, 'A', sizeof(longer));
	longer[TOTP_BASE32_MAX] = '\0';
	assert_int_equal(totp_base32_decode(longer, out, sizeof(out), &len), -1);
	longer[TOTP_BASE32_MAX + 1] = '\0';
	longer[TOTP_BASE32_MAX] = 'A';
	assert_int_equal(totp_base32_decode(longer, out, sizeof(out), &len), -1);
	/* The output does not fit. */
	assert_int_equal(totp_base32_decode("MZXW6YTBOI", out, 5, &len), -1);
	assert_int_equal(totp_base32_decode("MZXW6YTBOI", out, 6, &len), 0);
	assert_int_equal(len, 6);
	/* Encoding: zero length, too long, too small. */
	assert_int_equal(totp_base32_encode(out, 0, enc, sizeof(enc)), -1);
	assert_int_equal(totp_base32_encode(out, TOTP_SECRET_MAX + 1, enc, sizeof(enc)), -1);
	assert_int_equal(totp_base32_encode((const unsigned char *)"foobar", 6, enc, 10), -1);
	assert_string_equal(enc, "");
	assert_int_equal(totp_base32_encode((const unsigned char *)"foobar", 6, enc, 11), 0);
	assert_string_equal(enc, "MZXW6YTBOI");
}

#define URI_ALICE                                                                                  \
	"otpauth://totp/Gannet%20Mail:alice%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" \
	"&issuer=Gannet%20Mail&algorithm=SHA1&digits=6&period=30"

static void test_uri(void **state)
{
	const unsigned char *s = (const unsigned char *)RFC_SECRET;
	char out[TOTP_URI_MAX], name[TOTP_URI_MAX + 1];

	(void)state;
	assert_int_equal(totp_uri("Gannet Mail", "alice@example.org", s, 20, out, sizeof(out)), 0);
	assert_string_equal(out, URI_ALICE);
	/* ':' in a label part cannot split the label; '/', '?', '&', '#', '+', '%' and UTF-8 are
	 * escaped; unreserved "-._~" are not. */
	assert_int_equal(totp_uri("a:b/c", "x?y&z#+%é-._~", s, 20, out, sizeof(out)), 0);
	assert_string_equal(out, "otpauth://totp/a%3Ab%2Fc:x%3Fy%26z%23%2B%25%C3%A9-._~"
	                         "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=a%3Ab%2Fc"
	                         "&algorithm=SHA1&digits=6&period=30");
	/* Exactly fits, one byte short. */
	assert_int_equal(
	    totp_uri("Gannet Mail", "alice@example.org", s, 20, out, sizeof(URI_ALICE)), 0);
	assert_string_equal(out, URI_ALICE);
	assert_int_equal(
	    totp_uri("Gannet Mail", "alice@example.org", s, 20, out, sizeof(URI_ALICE) - 1), -1);
	assert_string_equal(out, "");
	/* Bad labels and secrets. */
	assert_int_equal(totp_uri("", "alice", s, 20, out, sizeof(out)), -1);
	assert_int_equal(totp_uri("Gannet", "", s, 20, out, sizeof(out)), -1);
	assert_int_equal(totp_uri("Gannet", "al\nice", s, 20, out, sizeof(out)), -1);
	assert_int_equal(totp_uri("Gan\x7fnet", "alice", s, 20, out, sizeof(out)), -1);
	assert_int_equal(totp_uri("Gannet", "alice", s, TOTP_SECRET_MIN - 1, out, sizeof(out)), -1);
	assert_int_equal(totp_uri(NULL, "alice", s, 20, out, sizeof(out)), -1);
	assert_int_equal(totp_uri("Gannet", "alice", s, 20, out, 0), -1);
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(totp_uri("Gannet", name, s, 20, out, sizeof(out)), -1);
}

/* Print TEXT to a temporary file and return its contents (malloc'd, NUL-terminated). */
static char *qr_capture(const char *text, int *rc_r)
{
	FILE *f = tmpfile();
	char *buf;
	long n;

	assert_non_null(f);
	*rc_r = totp_qr_print(f, text);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Decode one printed cell back to (top dark, bottom dark); -1 for anything else. */
static int cell_value(const char **p)
{
	static const char *const cell[4] = {"\xe2\x96\x88", "\xe2\x96\x84", "\xe2\x96\x80", " "};
	int i;

	for (i = 0; i < 4; i++) {
		size_t n = strlen(cell[i]);

		if (strncmp(*p, cell[i], n) == 0) {
			*p += n;
			return i;
		}
	}
	return -1;
}

/* Check the printout of TEXT: LINES lines of COLS cells, a light quiet zone of 4 modules, and
 * modules equal to libqrencode's own matrix for the same text. */
static void qr_check(const char *text, int want_width)
{
	QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	int rc, side, x, y, lines = 0;
	const char *p;
	char *out;

	assert_non_null(qr);
	assert_int_equal(qr->width, want_width);
	side = want_width + 2 * TOTP_QR_QUIET;
	out = qr_capture(text, &rc);
	assert_int_equal(rc, 0);
	p = out;
	for (y = 0; *p != '\0'; y += 2, lines++) {
		for (x = 0; x < side; x++) {
			int v = cell_value(&p);
			int mx = x - TOTP_QR_QUIET, top = y - TOTP_QR_QUIET, bot = top + 1;
			int want = 0;

			assert_int_not_equal(v, -1);
			if (mx >= 0 && mx < qr->width && top >= 0 && top < qr->width)
				want |= qr->data[top * qr->width + mx] & 1;
			if (mx >= 0 && mx < qr->width && bot >= 0 && bot < qr->width)
				want |= (qr->data[bot * qr->width + mx] & 1) << 1;
			assert_int_equal(v, want);
		}
		assert_int_equal(*p, '\n');
		p++;
	}
	assert_int_equal(lines, (side + 1) / 2);
	QRcode_free(qr);
	free(out);
}

static void test_qr_structure(void **state)
{
	const char *p;
	char *out, big[TOTP_QR_TEXT_MAX + 2];
	int rc, i;

	(void)state;
	/* "HELLO" is version 1 (21 modules): 29 columns, 15 lines. */
	qr_check("HELLO", 21);
	out = qr_capture("HELLO", &rc);
	assert_int_equal(rc, 0);
	/* The first two lines are quiet zone: 29 full blocks each. */
	p = out;
	for (i = 0; i < 2 * 29; i++) {
		assert_memory_equal(p, "\xe2\x96\x88", 3);
		p += 3;
		if (i % 29 == 28) {
			assert_int_equal(*p, '\n');
			p++;
		}
	}
	/* Third line: 4 quiet blocks, then the top-left finder's first two rows (7 dark over
	 * dark-5 light-dark): blank, 5 lower halves, blank. */
	assert_memory_equal(p,
	                    "\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88 "
	                    "\xe2\x96\x84\xe2\x96\x84\xe2\x96\x84\xe2\x96\x84\xe2\x96\x84 ",
	                    4 * 3 + 1 + 5 * 3 + 1);
	/* No escape sequences when not writing to a terminal. */
	assert_null(strchr(out, '\033'));
	free(out);
	/* The URI test's string is version 8 (49 modules): 57 columns, 29 lines. */
	qr_check(URI_ALICE, 49);
	/* The longest accepted text (version 18 at level M). */
	memset(big, 'a', sizeof(big));
	big[TOTP_QR_TEXT_MAX] = '\0';
	qr_check(big, 89);
	/* Too long, empty, no file. */
	big[TOTP_QR_TEXT_MAX] = 'a';
	big[TOTP_QR_TEXT_MAX + 1] = '\0';
	out = qr_capture(big, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(out, "");
	free(out);
	out = qr_capture("", &rc);
	assert_int_equal(rc, -1);
	free(out);
	assert_int_equal(totp_qr_print(NULL, "HELLO"), -1);
}

static void test_qr_terminal_colours(void **state)
{
	char buf[8192];
	size_t got = 0;
	ssize_t n;
	int master, slave;
	FILE *f;

	(void)state;
	/* A terminal gets each line in forced colours, so a light theme does not invert the code.
	 */
	assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
	f = fdopen(slave, "w");
	assert_non_null(f);
	/* 15 lines of about 100 bytes fit the pty buffer, so the write cannot block. */
	assert_int_equal(totp_qr_print(f, "HELLO"), 0);
	fclose(f);
	while (got < sizeof(buf) - 1 && (n = read(master, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(master);
	assert_true(strncmp(buf, "\033[97;40m", 8) == 0);
	assert_non_null(strstr(buf, "\033[0m\r\n\033[97;40m"));
}

static int cmp_codes(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_recovery_codes(void **state)
{
	static char codes[1000][TOTP_RECOVERY_TEXT_MAX];
	char norm[TOTP_RECOVERY_TEXT_MAX];
	size_t i, j;

	(void)state;
	for (i = 0; i < 1000; i++) {
		const char *c = codes[i];

		assert_int_equal(totp_recovery_new(codes[i], sizeof(codes[i])), 0);
		assert_int_equal(strlen(c), 19);
		for (j = 0; j < 19; j++) {
			if (j % 5 == 4)
				assert_int_equal(c[j], '-');
			else
				assert_non_null(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c[j]));
		}
		/* It normalises to its 16 symbols. */
		assert_int_equal(totp_code_normalise(c, norm, sizeof(norm)), 0);
		assert_int_equal(strlen(norm), TOTP_RECOVERY_SYMBOLS);
	}
	qsort(codes, 1000, sizeof(codes[0]), cmp_codes);
	for (i = 1; i < 1000; i++)
		assert_string_not_equal(codes[i - 1], codes[i]);
	/* The buffer must hold 19 characters and the NUL. */
	assert_int_equal(totp_recovery_new(norm, 19), -1);
	assert_int_equal(totp_recovery_new(norm, 20), 0);
	assert_int_equal(totp_recovery_new(NULL, 20), -1);
}

static void test_normalise(void **state)
{
	char out[TOTP_RECOVERY_TEXT_MAX], typed[TOTP_TYPED_MAX + 2];

	(void)state;
	assert_int_equal(totp_code_normalise("ab12-cd34-ef56-gh78", out, sizeof(out)), 0);
	assert_string_equal(out, "AB12CD34EF56GH78");
	assert_int_equal(totp_code_normalise(" AB12 cd34--EF56 gh78 ", out, sizeof(out)), 0);
	assert_string_equal(out, "AB12CD34EF56GH78");
	assert_int_equal(totp_code_normalise("x", out, sizeof(out)), 0);
	assert_string_equal(out, "X");
	/* Other characters. */
	assert_int_equal(totp_code_normalise("AB12_CD34", out, sizeof(out)), -1);
	assert_string_equal(out, "");
	assert_int_equal(totp_code_normalise("AB12\tCD34", out, sizeof(out)), -1);
	assert_int_equal(totp_code_normalise("AB12\nCD34", out, sizeof(out)), -1);
	assert_int_equal(totp_code_normalise("AB12CD\xc3\xa9", out, sizeof(out)), -1);
	assert_int_equal(totp_code_normalise("AB12.CD34", out, sizeof(out)), -1);
	/* Nothing left. */
	assert_int_equal(totp_code_normalise("", out, sizeof(out)), -1);
	assert_int_equal(totp_code_normalise(" - -", out, sizeof(out)), -1);
	/* Too long for OUT: 4 characters need 5 bytes. */
	assert_int_equal(totp_code_normalise("ab-cd", out, 4), -1);
	assert_int_equal(totp_code_normalise("ab-cd", out, 5), 0);
	assert_string_equal(out, "ABCD");
	/* Too long as typed, even if it would shrink to fit. */
	memset(typed, ' ', sizeof(typed));
	typed[0] = 'A';
	typed[TOTP_TYPED_MAX] = '\0';
	assert_int_equal(totp_code_normalise(typed, out, sizeof(out)), 0);
	assert_string_equal(out, "A");
	typed[TOTP_TYPED_MAX] = ' ';
	typed[TOTP_TYPED_MAX + 1] = '\0';
	assert_int_equal(totp_code_normalise(typed, out, sizeof(out)), -1);
	assert_int_equal(totp_code_normalise(NULL, out, sizeof(out)), -1);
	assert_int_equal(totp_code_normalise("A", out, 0), -1);
}

static void test_split(void **state)
{
	char code[TOTP_DIGITS + 1] = "xxxxxx";
	size_t pwlen = 99;

	(void)state;
	assert_int_equal(totp_split("hunter2123456", 13, &pwlen, code), 1);
	assert_int_equal(pwlen, 7);
	assert_string_equal(code, "123456");
	/* One character of password is enough. */
	assert_int_equal(totp_split("x000000", 7, &pwlen, code), 1);
	assert_int_equal(pwlen, 1);
	assert_string_equal(code, "000000");
	/* Only digits, but longer than a code: the leading digits are the password. */
	assert_int_equal(totp_split("1234567", 7, &pwlen, code), 1);
	assert_int_equal(pwlen, 1);
	assert_string_equal(code, "234567");
	/* LEN counts, not the NUL: a password with a NUL byte in it. */
	assert_int_equal(totp_split("a\0b654321", 9, &pwlen, code), 1);
	assert_int_equal(pwlen, 3);
	assert_string_equal(code, "654321");
	/* Not split: only the code, too short, a non-digit among the last six, LEN shorter. */
	pwlen = 99;
	memcpy(code, "xxxxxx", sizeof(code));
	assert_int_equal(totp_split("123456", 6, &pwlen, code), 0);
	assert_int_equal(totp_split("12345", 5, &pwlen, code), 0);
	assert_int_equal(totp_split("", 0, &pwlen, code), 0);
	assert_int_equal(totp_split("hunter212345a", 13, &pwlen, code), 0);
	assert_int_equal(totp_split("hunter2a23456", 13, &pwlen, code), 0);
	assert_int_equal(totp_split("hunter212345 ", 13, &pwlen, code), 0);
	assert_int_equal(totp_split("hunter2123456", 6, &pwlen, code), 0);
	assert_int_equal(totp_split("abcdefg123456", 10, &pwlen, code), 0);
	assert_int_equal(pwlen, 99);
	assert_string_equal(code, "xxxxxx");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc6238_vectors),
	    cmocka_unit_test(test_oathtool_agrees),
	    cmocka_unit_test(test_window_edges),
	    cmocka_unit_test(test_replay),
	    cmocka_unit_test(test_bad_codes),
	    cmocka_unit_test(test_verify_errors),
	    cmocka_unit_test(test_early_time),
	    cmocka_unit_test(test_new_secret),
	    cmocka_unit_test(test_base32_round_trip),
	    cmocka_unit_test(test_base32_bad),
	    cmocka_unit_test(test_uri),
	    cmocka_unit_test(test_qr_structure),
	    cmocka_unit_test(test_qr_terminal_colours),
	    cmocka_unit_test(test_recovery_codes),
	    cmocka_unit_test(test_normalise),
	    cmocka_unit_test(test_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
