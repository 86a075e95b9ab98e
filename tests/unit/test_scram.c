/* Unit tests for lib/scram.c: verifiers against independently computed vectors, SASLprep,
 * random salts, and malformed verifier texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gannet_limits.h"
#include "scram.h"

/* The expected verifiers below were computed offline with Python's standard library, not with
 * any code of ours or GNU SASL's:
 *   salted = hashlib.pbkdf2_hmac(h, password.encode(), base64.b64decode(salt_b64), iter)
 *   stored = hashlib.new(h, hmac.new(salted, b"Client Key", h).digest()).hexdigest()
 *   server = hmac.new(salted, b"Server Key", h).hexdigest()
 *   "%d,%s,%s,%s" % (iter, salt_b64, stored, server)
 * The same script reproduces the ServerSignature of RFC 5802 §5 (rmF9pqV8S7suAoZWja4dJRkFsKQ=)
 * and RFC 7677 §3 (6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=) from these ServerKeys. */

/* RFC 5802 §5: SCRAM-SHA-1, password "pencil", salt QSXCR+Q6sek8bf92, 4096 iterations. */
static const char rfc5802_sha1[] = "4096,QSXCR+Q6sek8bf92,"
                                   "e9d94660c39d65c38fbad91c358f14da0eef2bd6,"
                                   "0fe09258b3ac852ba502cc62ba903eaacdbf7d31";

/* RFC 7677 §3: SCRAM-SHA-256, password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096. */
static const char rfc7677_sha256[] =
    "4096,W22ZaJ0SNY7soEsUEjb6gQ==,"
    "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6,"
    "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5";

/* Password "I X" (what SASLprep makes of "I\u00a0X"), salt bytes 00..0f, 4096 iterations. */
static const char ix_sha1[] = "4096,AAECAwQFBgcICQoLDA0ODw==,"
                              "94916e418c8a9f09c17537c50312daac0144645e,"
                              "8a3902430dadcb55db61424d6d55e2bee4ee008d";
static const char ix_sha256[] = "4096,AAECAwQFBgcICQoLDA0ODw==,"
                                "f0c3709a53f118f3bdbba1b1979f24be7ba1afa76234932f78f99a09448457cf,"
                                "c9c445a758981786c5609453c81ddcb3e03a2e98cedf57b9098c63c3e5f5ff63";

/* Password "Correct-Horse-Battery-9", salt bytes 00..0f, 10000 iterations, SHA-256. */
static const char horse_sha256[] =
    "10000,AAECAwQFBgcICQoLDA0ODw==,"
    "7d2c7483be4d7359811b4b3f740093a9b572f99dd05c09dc5293618dfc9a7117,"
    "17fcb0bbbd599d6642f1f73dfcb47987b234a427043d486b58d47687d0466f9a";

static const unsigned char pencil_salt_sha1[] = {0x41, 0x25, 0xc2, 0x47, 0xe4, 0x3a,
                                                 0xb1, 0xe9, 0x3c, 0x6d, 0xff, 0x76};
static const unsigned char pencil_salt_sha256[] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                                   0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
static const unsigned char salt_0_15[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static void make_is(enum scram_hash h, const char *pw, unsigned iter, const unsigned char *salt,
                    size_t salt_len, const char *want)
{
	char field[SCRAM_FIELD_MAX + 1];
	const char *error = NULL;

	if (scram_make_salt(h, pw, strlen(pw), iter, salt, salt_len, field, sizeof(field),
	                    &error) != 0)
		fail_msg("scram_make_salt(%s): %s", pw, error);
	assert_string_equal(field, want);
}

static void test_vectors(void **state)
{
	(void)state;
	make_is(SCRAM_SHA1, "pencil", 4096, pencil_salt_sha1, sizeof(pencil_salt_sha1),
	        rfc5802_sha1);
	make_is(SCRAM_SHA256, "pencil", 4096, pencil_salt_sha256, sizeof(pencil_salt_sha256),
	        rfc7677_sha256);
	make_is(SCRAM_SHA1, "I X", 4096, salt_0_15, sizeof(salt_0_15), ix_sha1);
	make_is(SCRAM_SHA256, "I X", 4096, salt_0_15, sizeof(salt_0_15), ix_sha256);
	make_is(SCRAM_SHA256, "Correct-Horse-Battery-9", 10000, salt_0_15, sizeof(salt_0_15),
	        horse_sha256);
}

static void test_saslprep(void **state)
{
	(void)state;
	/* RFC 4013 §3: U+00A0 NO-BREAK SPACE maps to a space, U+00AD SOFT HYPHEN to nothing. */
	make_is(SCRAM_SHA1, "I\xc2\xa0X", 4096, salt_0_15, sizeof(salt_0_15), ix_sha1);
	make_is(SCRAM_SHA256, "I\xc2\xa0X", 4096, salt_0_15, sizeof(salt_0_15), ix_sha256);
	make_is(SCRAM_SHA1,
	        "pen\xc2\xad"
	        "cil",
	        4096, pencil_salt_sha1, sizeof(pencil_salt_sha1), rfc5802_sha1);
}

static void make_bad(const char *pw, size_t len, unsigned iter, size_t salt_len, size_t size)
{
	unsigned char salt[SCRAM_SALT_MAX + 1] = {0};
	char field[SCRAM_FIELD_MAX + 1];
	const char *error = NULL;

	if (scram_make_salt(SCRAM_SHA256, pw, len, iter, salt, salt_len, field, size, &error) != -1)
		fail_msg("accepted: %.*s", (int)len, pw);
	assert_non_null(error);
}

static void test_make_bad(void **state)
{
	static char big[PASSWORD_MAX + 1];
	char field[SCRAM_FIELD_MAX + 1];
	const char *error = NULL;

	(void)state;
	make_bad("pencil", 6, SCRAM_ITER_MIN - 1, 16, sizeof(field));
	make_bad("pencil", 6, SCRAM_ITER_MAX + 1, 16, sizeof(field));
	make_bad("pencil", 6, 0, 16, sizeof(field));
	make_bad("pencil", 6, 4096, SCRAM_SALT_MIN - 1, sizeof(field));
	make_bad("pencil", 6, 4096, SCRAM_SALT_MAX + 1, sizeof(field));
	make_bad("", 0, 4096, 16, sizeof(field));
	make_bad("pen\0cil", 7, 4096, 16, sizeof(field));
	make_bad("abc\xff", 4, 4096, 16, sizeof(field));            /* not UTF-8 */
	make_bad("a\x01z", 3, 4096, 16, sizeof(field));             /* control character */
	make_bad("a\xc8\xa1z", 4, 4096, 16, sizeof(field));         /* U+0221, unassigned in 3.2 */
	make_bad("a\xf0\x9f\x98\x80z", 6, 4096, 16, sizeof(field)); /* U+1F600, likewise */
	make_bad("\xc2\xad", 2, 4096, 16, sizeof(field));           /* empty after SASLprep */
	make_bad("pencil", 6, 4096, 16, 40);                        /* FIELD too small */
	memset(big, 'a', sizeof(big));
	make_bad(big, PASSWORD_MAX + 1, 4096, 16, sizeof(field));
	/* PASSWORD_MAX itself is fine. */
	assert_int_equal(
	    scram_make(SCRAM_SHA1, big, PASSWORD_MAX, 4096, field, sizeof(field), &error), 0);
	assert_int_equal(
	    scram_make((enum scram_hash)7, "pencil", 6, 4096, field, sizeof(field), &error), -1);
}

static void test_make_random(void **state)
{
	char a[SCRAM_FIELD_MAX + 1], b[SCRAM_FIELD_MAX + 1];
	struct scram_secret sa, sb;
	const char *error = NULL;

	(void)state;
	assert_int_equal(
	    scram_make(SCRAM_SHA256, "pencil", 6, SCRAM_ITER_DEFAULT, a, sizeof(a), &error), 0);
	assert_int_equal(
	    scram_make(SCRAM_SHA256, "pencil", 6, SCRAM_ITER_DEFAULT, b, sizeof(b), &error), 0);
	assert_int_equal(scram_parse(SCRAM_SHA256, a, &sa, &error), 0);
	assert_int_equal(scram_parse(SCRAM_SHA256, b, &sb, &error), 0);
	assert_int_equal(sa.iter, 4096);
	/* 16 bytes of salt are 24 base64 characters; 32-byte keys are 64 hex digits. */
	assert_int_equal(strlen(sa.salt_b64), 24);
	assert_int_equal(strlen(sa.stored_hex), 64);
	assert_int_equal(strlen(sa.server_hex), 64);
	assert_string_not_equal(sa.salt_b64, sb.salt_b64);
	assert_string_not_equal(sa.stored_hex, sb.stored_hex);
	/* 4096 + 1 + 24 + 1 + 64 + 1 + 64 */
	assert_int_equal(strlen(a), 159);

	assert_int_equal(scram_make(SCRAM_SHA1, "pencil", 6, 5000, a, sizeof(a), &error), 0);
	assert_int_equal(scram_parse(SCRAM_SHA1, a, &sa, &error), 0);
	assert_int_equal(sa.iter, 5000);
	assert_int_equal(strlen(sa.stored_hex), 40);
	/* A SHA-1 verifier is not a SHA-256 one. */
	assert_int_equal(scram_parse(SCRAM_SHA256, a, &sa, &error), -1);
}

static void test_parse_ok(void **state)
{
	struct scram_secret s;
	const char *error = NULL;

	(void)state;
	assert_int_equal(scram_parse(SCRAM_SHA1, rfc5802_sha1, &s, &error), 0);
	assert_int_equal(s.iter, 4096);
	assert_string_equal(s.salt_b64, "QSXCR+Q6sek8bf92");
	assert_string_equal(s.stored_hex, "e9d94660c39d65c38fbad91c358f14da0eef2bd6");
	assert_string_equal(s.server_hex, "0fe09258b3ac852ba502cc62ba903eaacdbf7d31");
	assert_int_equal(scram_parse(SCRAM_SHA256, rfc7677_sha256, &s, &error), 0);
	assert_string_equal(s.salt_b64, "W22ZaJ0SNY7soEsUEjb6gQ==");
	assert_int_equal(scram_parse(SCRAM_SHA256, horse_sha256, &s, &error), 0);
	assert_int_equal(s.iter, 10000);
	/* Iteration bounds are inclusive; salt of 8 bytes (12 chars) and 45 bytes (60 chars). */
	assert_int_equal(scram_parse(SCRAM_SHA1,
	                             "1000000,AAAAAAAAAAA=,"
	                             "e9d94660c39d65c38fbad91c358f14da0eef2bd6,"
	                             "0fe09258b3ac852ba502cc62ba903eaacdbf7d31",
	                             &s, &error),
	                 0);
	assert_int_equal(s.iter, 1000000);
	assert_int_equal(scram_parse(SCRAM_SHA1,
	                             "4096,"
	                             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,"
	                             "e9d94660c39d65c38fbad91c358f14da0eef2bd6,"
	                             "0fe09258b3ac852ba502cc62ba903eaacdbf7d31",
	                             &s, &error),
	                 0);
}

static void parse_bad(enum scram_hash h, const char *field, const char *why)
{
	struct scram_secret s;
	const char *error = NULL;

	if (scram_parse(h, field, &s, &error) != -1)
		fail_msg("accepted: %s", field);
	assert_non_null(error);
	if (strstr(error, why) == NULL)
		fail_msg("%s: error \"%s\" does not say \"%s\"", field, error, why);
	assert_int_equal(s.iter, 0);
	assert_string_equal(s.salt_b64, "");
}

#define K1 "e9d94660c39d65c38fbad91c358f14da0eef2bd6"
#define K2 "0fe09258b3ac852ba502cc62ba903eaacdbf7d31"

static void test_parse_bad(void **state)
{
	char big[SCRAM_FIELD_MAX + 2];

	(void)state;
	parse_bad(SCRAM_SHA1, "", "ITER,SALT");
	parse_bad(SCRAM_SHA1, "4096,QSXCR+Q6sek8bf92," K1, "ITER,SALT");
	parse_bad(SCRAM_SHA1, "4096,QSXCR+Q6sek8bf92," K1 "," K2 ",", "ITER,SALT");
	parse_bad(SCRAM_SHA1, "4096,QSXCR+Q6sek8bf92," K1 "," K2 ",x", "ITER,SALT");
	parse_bad(SCRAM_SHA1, "4096;QSXCR+Q6sek8bf92;" K1 ";" K2, "ITER,SALT");
	/* Iteration count: strict decimal within bounds. */
	parse_bad(SCRAM_SHA1, "4095,QSXCR+Q6sek8bf92," K1 "," K2, "iteration");
	parse_bad(SCRAM_SHA1, "1000001,QSXCR+Q6sek8bf92," K1 "," K2, "iteration");
	parse_bad(SCRAM_SHA1, "04096,QSXCR+Q6sek8bf92," K1 "," K2, "iteration");
	parse_bad(SCRAM_SHA1, "+4096,QSXCR+Q6sek8bf92," K1 "," K2, "iteration");
	parse_bad(SCRAM_SHA1, " 4096,QSXCR+Q6sek8bf92," K1 "," K2, "iteration");
	parse_bad(SCRAM_SHA1, "4096x,QSXCR+Q6sek8bf92," K1 "," K2, "iteration");
	parse_bad(SCRAM_SHA1, ",QSXCR+Q6sek8bf92," K1 "," K2, "iteration");
	parse_bad(SCRAM_SHA1, "18446744073709555712,QSXCR+Q6sek8bf92," K1 "," K2, "iteration");
	/* Salt: canonical padded base64 of 8 to 45 bytes. */
	parse_bad(SCRAM_SHA1, "4096,," K1 "," K2, "salt");
	parse_bad(SCRAM_SHA1, "4096,QSXCR+Q6sek8bf9," K1 "," K2, "salt"); /* length 15 */
	parse_bad(SCRAM_SHA1, "4096,AAAAAAAAAA==," K1 "," K2, "salt");    /* 7 bytes */
	parse_bad(SCRAM_SHA1,
	          "4096,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA," K1
	          "," K2,
	          "salt");                                                 /* 48 bytes */
	parse_bad(SCRAM_SHA1, "4096,QSXCR-Q6sek8bf92," K1 "," K2, "salt"); /* base64url */
	parse_bad(SCRAM_SHA1, "4096,QSXCR Q6sek8bf92," K1 "," K2, "salt");
	parse_bad(SCRAM_SHA1, "4096,QSXCR+Q6sek8bf9=," K1 "," K2, "canonical"); /* bits set */
	parse_bad(SCRAM_SHA1, "4096,W22ZaJ0SNY7soEsUEjb6gR==," K1 "," K2, "canonical");
	parse_bad(SCRAM_SHA1, "4096,W22ZaJ0SNY7soEsUEjb6gQ=A," K1 "," K2, "salt");
	parse_bad(SCRAM_SHA1, "4096,W22ZaJ0SNY7soEsUEjb6g===," K1 "," K2, "salt");
	parse_bad(SCRAM_SHA1, "4096,W22ZaJ0SNY7soEsUEjb6gQ," K1 "," K2, "salt"); /* no padding */
	/* Keys: exactly the hash length in lowercase hex. */
	parse_bad(SCRAM_SHA1, "4096,QSXCR+Q6sek8bf92,E9D94660C39D65C38FBAD91C358F14DA0EEF2BD6," K2,
	          "lowercase hex");
	parse_bad(SCRAM_SHA1,
	          "4096,QSXCR+Q6sek8bf92," K1 ",0fe09258b3ac852ba502cc62ba903eaacdbf7d3g",
	          "lowercase hex");
	parse_bad(SCRAM_SHA1, "4096,QSXCR+Q6sek8bf92," K1 "0," K2, "hash length");
	parse_bad(SCRAM_SHA1, "4096,QSXCR+Q6sek8bf92," K1 "," K2 "00", "hash length");
	parse_bad(SCRAM_SHA1, "4096,QSXCR+Q6sek8bf92,," K2, "hash length");
	parse_bad(SCRAM_SHA256, rfc5802_sha1, "hash length");
	parse_bad(SCRAM_SHA1, rfc7677_sha256, "hash length");
	parse_bad((enum scram_hash)7, rfc5802_sha1, "hash");
	/* Longer than SCRAM_FIELD_MAX. */
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	parse_bad(SCRAM_SHA1, big, "longer than 256");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),  cmocka_unit_test(test_saslprep),
	    cmocka_unit_test(test_make_bad), cmocka_unit_test(test_make_random),
	    cmocka_unit_test(test_parse_ok), cmocka_unit_test(test_parse_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
