/* Unit tests for lib/pwhash.c: every scheme against hashes made by independent tools. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gannet_limits.h"
#include "pwhash.h"

/* Each vector was made by a tool other than libxcrypt or our code where one exists:
 *   argon2 (Debian "argon2", the reference CLI):
 *     echo -n secret | argon2 somesalt -id -t 2 -m 16 -e
 *     echo -n secret | argon2 somesalt -i -t 2 -m 12 -e
 *     echo -n 'pass word' | argon2 saltsalt12345678 -id -t 3 -m 16 -p 1 -l 32 -e
 *     echo -n 'pass word' | argon2 c29tZXNhbHQxMjM -i -t 3 -m 12 -e
 *     printf 'a%.0s' $(seq 127) | argon2 somesalt -id -t 2 -m 12 -e   (the CLI's longest)
 *     echo -n secret | argon2 somesalt -i -t 2 -m 12 -v 10 -e   (version 1.0, "v=16")
 *   openssl passwd -6 / -5 -salt saltsalt secret; openssl passwd -6 -salt saltsalt 'pass word'
 *   htpasswd -nbB -C 5 u secret; htpasswd -nbB -C 4 u 'pass word' (APR's own bcrypt)
 *   mkpasswd -m yescrypt secret; mkpasswd -m sha512crypt -R 10000 -S saltsalt secret */
#define ARGON2ID_SECRET                                                                            \
	"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$yNJF2pJbh37EBw6oDO/wis71FeCjmQyRJnx2pBCp5Jk"
#define ARGON2I_SECRET                                                                             \
	"$argon2i$v=19$m=4096,t=2,p=1$c29tZXNhbHQ$4btq4Bd5qGJ00WSjsKcfhGLKY+16JlIWKdTcVlLD6mE"
#define ARGON2ID_SPACE                                                                             \
	"$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQxMjM0NTY3OA$"                                   \
	"6eaae7TcCtsHZHb6QO0bANj97I+VIOf0ow8+byGy78I"
#define ARGON2I_SPACE                                                                              \
	"$argon2i$v=19$m=4096,t=3,p=1$YzI5dFpYTmhiSFF4TWpN$4WdDDrUqLniW+"                          \
	"aomDbATt9CY9OT68bfNv4o2aWxvX9s"
#define ARGON2ID_A127                                                                              \
	"$argon2id$v=19$m=4096,t=2,p=1$c29tZXNhbHQ$ADu/Zw35MBf6zZZ3nAHsqg6BXKdBJms+vLUDNA+vrGw"
#define ARGON2I_V16_SECRET                                                                         \
	"$argon2i$v=16$m=4096,t=2,p=1$c29tZXNhbHQ$k8lsCR1AHJO6xod4oyUDYPTTqhfnhBeCqWaF9MsgmRo"
#define SHA512_SECRET                                                                              \
	"$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN."   \
	"Pq."                                                                                      \
	"H91p5hVO1"
#define SHA512_SPACE                                                                               \
	"$6$saltsalt$cc1KsgmlKYtCcnNH8.sv7Fe8mca8fAso5fHlNrb1VZa5WYQ.L3ChTcx06ID."                 \
	"LoaXZAf9CZNraK43XCp"                                                                      \
	"7LxKHl1"
#define SHA512_ROUNDS_SECRET                                                                       \
	"$6$rounds=10000$saltsalt$WowrPBpEDVlCoruBosYlrZycTCx3//"                                  \
	"TyDHYqEhX9DUHHt0XTztUqzQDDUuvUGRA8aUe9p55hcAxeGcu58sm3u."
#define SHA256_SECRET   "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA"
#define BLF_SECRET      "$2y$05$ambUDXQkEmhQmsSwww.1J.C2.orAHHDDE0chO7PG8fnsIsRv5okQy"
#define BLF_SECRET_2B   "$2b$05$ambUDXQkEmhQmsSwww.1J.C2.orAHHDDE0chO7PG8fnsIsRv5okQy"
#define BLF_SPACE       "$2y$04$mWviGez/uNLKc9nApJdt7.R3c/.97ArL4G9CmZdjEVE.O46ZczIry"
#define YESCRYPT_SECRET "$y$j9T$3YU95PUJO4P7XlgSI1EyA0$.acsTlkXsXZWEZFXD0CXPF98VL3KuZsftAmOPomsMJ6"

static int verify(const char *pw, const char *stored)
{
	const char *error = NULL;
	int ret = pwhash_verify(pw, strlen(pw), stored, &error);

	if (ret < 0)
		assert_non_null(error);
	return ret;
}

static void test_known_good(void **state)
{
	static const struct {
		const char *stored, *pw;
	} v[] = {
	    {"{ARGON2ID}" ARGON2ID_SECRET, "secret"},
	    {"{ARGON2I}" ARGON2I_SECRET, "secret"},
	    {"{ARGON2ID}" ARGON2ID_SPACE, "pass word"},
	    {"{ARGON2I}" ARGON2I_SPACE, "pass word"},
	    {"{ARGON2I}" ARGON2I_V16_SECRET, "secret"},
	    {"{SHA512-CRYPT}" SHA512_SECRET, "secret"},
	    {"{SHA512-CRYPT}" SHA512_SPACE, "pass word"},
	    {"{SHA512-CRYPT}" SHA512_ROUNDS_SECRET, "secret"},
	    {"{SHA256-CRYPT}" SHA256_SECRET, "secret"},
	    {"{BLF-CRYPT}" BLF_SECRET, "secret"},
	    {"{BLF-CRYPT}" BLF_SECRET_2B, "secret"},
	    {"{BLF-CRYPT}" BLF_SPACE, "pass word"},
	    {"{CRYPT}" YESCRYPT_SECRET, "secret"},
	    {"{CRYPT}" SHA512_SECRET, "secret"},
	    {"{CRYPT}" BLF_SECRET, "secret"},
	    {"{PLAIN}secret", "secret"},
	    {"{CLEAR}pass word", "pass word"},
	    /* No prefix means CRYPT. */
	    {SHA512_SECRET, "secret"},
	    {YESCRYPT_SECRET, "secret"},
	    /* Scheme names are case-insensitive. */
	    {"{argon2i}" ARGON2I_SECRET, "secret"},
	    {"{Sha512-Crypt}" SHA512_SECRET, "secret"},
	    {"{plain}secret", "secret"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(verify(v[i].pw, v[i].stored), 1);
		assert_int_equal(verify("Secret", v[i].stored), 0);
		assert_int_equal(verify("", v[i].stored), 0);
	}
}

static void test_wrong_password(void **state)
{
	(void)state;
	assert_int_equal(verify("secret ", "{SHA512-CRYPT}" SHA512_SECRET), 0);
	assert_int_equal(verify("secre", "{SHA256-CRYPT}" SHA256_SECRET), 0);
	assert_int_equal(verify("pass", "{BLF-CRYPT}" BLF_SPACE), 0);
	assert_int_equal(verify("secret", "{ARGON2ID}" ARGON2ID_SPACE), 0);
	assert_int_equal(verify("secre", "{PLAIN}secret"), 0);
	assert_int_equal(verify("secrets", "{PLAIN}secret"), 0);
	assert_int_equal(verify("secreT", "{PLAIN}secret"), 0);
	assert_int_equal(verify("x", "{CRYPT}" YESCRYPT_SECRET), 0);
}

/* A NUL would end the C string libxcrypt sees: "secret\0junk" must not pass as "secret". */
static void test_nul_and_long_password(void **state)
{
	static const char with_nul[] = "secret\0junk";
	const char *error;
	char big[PASSWORD_MAX + 2];

	(void)state;
	assert_int_equal(
	    pwhash_verify(with_nul, sizeof(with_nul) - 1, "{SHA512-CRYPT}" SHA512_SECRET, &error),
	    0);
	assert_int_equal(pwhash_verify(with_nul, sizeof(with_nul) - 1, "{PLAIN}secret", &error), 0);
	assert_int_equal(pwhash_verify(with_nul, 7, "{PLAIN}secret", &error), 0);
	assert_int_equal(pwhash_verify(with_nul, 7, "{BLF-CRYPT}" BLF_SECRET, &error), 0);
	assert_int_equal(pwhash_verify(with_nul, 7, "{ARGON2I}" ARGON2I_SECRET, &error), 0);

	/* 127 bytes: the longest the argon2 CLI hashes. */
	memset(big, 'a', 127);
	big[127] = '\0';
	assert_int_equal(verify(big, "{ARGON2ID}" ARGON2ID_A127), 1);
	big[126] = 'b';
	assert_int_equal(verify(big, "{ARGON2ID}" ARGON2ID_A127), 0);

	/* Over PASSWORD_MAX: refused even when the stored value would match. */
	memset(big, 'a', PASSWORD_MAX + 1);
	big[PASSWORD_MAX + 1] = '\0';
	{
		char stored[PWHASH_MAX + 1];
		/* PLAIN can hold at most PWHASH_MAX - 7 bytes; longer stored strings are refused.
		 */
		memcpy(stored, "{PLAIN}", 7);
		memset(stored + 7, 'a', PWHASH_MAX - 7);
		stored[PWHASH_MAX] = '\0';
		assert_int_equal(pwhash_verify(big, PWHASH_MAX - 7, stored, &error), 1);
		assert_int_equal(pwhash_verify(big, PASSWORD_MAX + 1, stored, &error), 0);
	}
	/* libxcrypt takes at most 511 bytes: a longer password cannot match a crypt hash. */
	assert_int_equal(verify(big, "{SHA512-CRYPT}" SHA512_SECRET), 0);
}

static void bad(const char *stored)
{
	const char *error = NULL;

	assert_int_equal(pwhash_verify("secret", 6, stored, &error), -1);
	assert_non_null(error);
	assert_true(error[0] != '\0');
}

static void test_unusable_hash(void **state)
{
	char huge[PWHASH_MAX + 2];

	(void)state;
	bad("{MD5}1a1dc91c907325c69271ddf0c944bc72");
	bad("{SSHA512}abc");
	bad("{}secret");
	bad("{PLAIN secret");
	bad("{YESCRYPT}" YESCRYPT_SECRET); /* not a Dovecot name: "{CRYPT}$y$..." is */
	bad("{SHA512-CRYPT}" SHA256_SECRET);
	bad("{SHA256-CRYPT}" SHA512_SECRET);
	bad("{BLF-CRYPT}" SHA512_SECRET);
	bad("{SHA512-CRYPT}$6$");
	bad("{SHA512-CRYPT}$6$saltsalt");
	/* Truncated or padded hashes are malformed, not merely wrong. */
	bad("{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5s");
	bad("{SHA256-CRYPT}" SHA256_SECRET "x");
	bad("{BLF-CRYPT}$2y$05$ambUDXQkEmhQmsSwww.1J.C2.orAHHDDE0chO7PG8fnsIsRv5okQ");
	bad("{CRYPT}");
	bad("");
	bad("{CRYPT}$9$nosuchmethod$abc");
	bad("{ARGON2ID}garbage");
	bad("{ARGON2ID}" ARGON2I_SECRET);
	bad("{ARGON2I}" ARGON2ID_SECRET);
	bad("{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$!!!");
	bad("{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ");
	bad("{ARGON2I}$argon2i$v=x$m=4096,t=2,p=1$c29tZXNhbHQ$"
	    "k8lsCR1AHJO6xod4oyUDYPTTqhfnhBeCqWaF9MsgmRo");
	bad("{ARGON2I}$argon2i$v=17$m=4096,t=2,p=1$c29tZXNhbHQ$"
	    "k8lsCR1AHJO6xod4oyUDYPTTqhfnhBeCqWaF9MsgmRo");
	bad("{ARGON2ID}$argon2id$v=19$m=x,t=2,p=1$c29tZXNhbHQ$yNJF2pJbh37EBw6oDO/"
	    "wis71FeCjmQyRJnx2p");
	/* Bounded cost: a stored 4 GiB memory cost is refused rather than allocated. */
	bad("{ARGON2ID}$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$"
	    "yNJF2pJbh37EBw6oDO/wis71FeCjmQyRJnx2pBCp5Jk");
	bad("{ARGON2ID}$argon2id$v=19$m=65536,t=1000,p=1$c29tZXNhbHQ$"
	    "yNJF2pJbh37EBw6oDO/wis71FeCjmQyRJnx2pBCp5Jk");
	memcpy(huge, "{PLAIN}", 7);
	memset(huge + 7, 'x', sizeof(huge) - 8);
	huge[sizeof(huge) - 1] = '\0';
	bad(huge);
}

static void round_trip(const char *scheme, const char *pw, size_t len, const char *want_prefix)
{
	char out[PWHASH_MAX + 1];
	const char *error = NULL;

	if (pwhash_make(pw, len, scheme, out, sizeof(out), &error) != 0)
		fail_msg("pwhash_make %s: %s", scheme != NULL ? scheme : "(default)", error);
	assert_true(strncmp(out, want_prefix, strlen(want_prefix)) == 0);
	assert_int_equal(pwhash_verify(pw, len, out, &error), 1);
	assert_int_equal(pwhash_verify("wrong", 5, out, &error), 0);
	if (len > 0)
		assert_int_equal(pwhash_verify(pw, len - 1, out, &error), 0);
}

static void test_round_trip(void **state)
{
	(void)state;
	round_trip(NULL, "secret", 6, "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$");
	round_trip("argon2id", "pass word", 9, "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$");
	round_trip("SHA512-CRYPT", "pass word", 9, "{SHA512-CRYPT}$6$rounds=656000$");
	round_trip("SHA256-CRYPT", "pass word", 9, "{SHA256-CRYPT}$5$rounds=535000$");
	round_trip("BLF-CRYPT", "pass word", 9, "{BLF-CRYPT}$2y$11$");
	round_trip("YESCRYPT", "pass word", 9, "{CRYPT}$y$");
	round_trip("PLAIN", "pass word", 9, "{PLAIN}pass word");
	round_trip("plain", "\xc3\xa9t\xc3\xa9", 5, "{PLAIN}\xc3\xa9t\xc3\xa9");
}

static void test_make_salts_differ(void **state)
{
	char a[PWHASH_MAX + 1], b[PWHASH_MAX + 1];
	const char *error;

	(void)state;
	assert_int_equal(pwhash_make("secret", 6, "SHA512-CRYPT", a, sizeof(a), &error), 0);
	assert_int_equal(pwhash_make("secret", 6, "SHA512-CRYPT", b, sizeof(b), &error), 0);
	assert_string_not_equal(a, b);
}

static void test_long_password(void **state)
{
	char pw[PASSWORD_MAX + 1], out[PWHASH_MAX + 1];
	const char *error = NULL;

	(void)state;
	memset(pw, 'p', sizeof(pw));
	/* 1024 bytes: ARGON2ID takes it whole, the last byte counts. */
	assert_int_equal(pwhash_make(pw, PASSWORD_MAX, NULL, out, sizeof(out), &error), 0);
	assert_int_equal(pwhash_verify(pw, PASSWORD_MAX, out, &error), 1);
	pw[PASSWORD_MAX - 1] = 'q';
	assert_int_equal(pwhash_verify(pw, PASSWORD_MAX, out, &error), 0);
	pw[PASSWORD_MAX - 1] = 'p';
	/* Beyond PASSWORD_MAX, or beyond what a crypt scheme or PLAIN can hold: refused. */
	assert_int_equal(pwhash_make(pw, PASSWORD_MAX + 1, NULL, out, sizeof(out), &error), -1);
	assert_int_equal(pwhash_make(pw, PASSWORD_MAX, "SHA512-CRYPT", out, sizeof(out), &error),
	                 -1);
	assert_int_equal(pwhash_make(pw, PASSWORD_MAX, "PLAIN", out, sizeof(out), &error), -1);
	/* YESCRYPT: sha-crypt would take seconds, its cost grows with the password length. */
	round_trip("YESCRYPT", pw, 511, "{CRYPT}$y$");
	assert_int_equal(pwhash_make(pw, 512, "SHA512-CRYPT", out, sizeof(out), &error), -1);
	/* bcrypt ignores bytes after the 72nd, so longer passwords are refused. */
	round_trip("BLF-CRYPT", pw, 72, "{BLF-CRYPT}$2y$");
	assert_int_equal(pwhash_make(pw, 73, "BLF-CRYPT", out, sizeof(out), &error), -1);
	assert_non_null(strstr(error, "72"));
}

static void test_make_errors(void **state)
{
	char out[PWHASH_MAX + 1], small[40];
	const char *error = NULL;

	(void)state;
	assert_int_equal(pwhash_make("a\0b", 3, NULL, out, sizeof(out), &error), -1);
	assert_int_equal(pwhash_make("a\0b", 3, "PLAIN", out, sizeof(out), &error), -1);
	assert_int_equal(pwhash_make("secret", 6, "MD5", out, sizeof(out), &error), -1);
	assert_int_equal(pwhash_make("secret", 6, "ARGON2I", out, sizeof(out), &error), -1);
	assert_int_equal(pwhash_make("secret", 6, "CLEAR", out, sizeof(out), &error), -1);
	assert_int_equal(pwhash_make("secret", 6, "", out, sizeof(out), &error), -1);
	/* PLAIN cannot hold the passwd-file separators. */
	assert_int_equal(pwhash_make("a:b", 3, "PLAIN", out, sizeof(out), &error), -1);
	assert_int_equal(pwhash_make("a\nb", 3, "PLAIN", out, sizeof(out), &error), -1);
	assert_int_equal(pwhash_make("secret", 6, "SHA512-CRYPT", small, sizeof(small), &error),
	                 -1);
	assert_int_equal(pwhash_make("secret", 6, "PLAIN", small, 8, &error), -1);
	assert_int_equal(pwhash_make("secret", 6, "PLAIN", small, 14, &error), 0);
	assert_string_equal(small, "{PLAIN}secret");
}

static void test_dummy(void **state)
{
	char big[PASSWORD_MAX + 2];

	(void)state;
	/* It returns nothing; it must merely run for any input without crashing. */
	pwhash_dummy_verify("secret", 6);
	pwhash_dummy_verify("", 0);
	memset(big, 'x', sizeof(big));
	pwhash_dummy_verify(big, sizeof(big));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_good),
	    cmocka_unit_test(test_wrong_password),
	    cmocka_unit_test(test_nul_and_long_password),
	    cmocka_unit_test(test_unusable_hash),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_make_salts_differ),
	    cmocka_unit_test(test_long_password),
	    cmocka_unit_test(test_make_errors),
	    cmocka_unit_test(test_dummy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
