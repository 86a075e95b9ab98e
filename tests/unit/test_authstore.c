/* Unit tests for lib/authstore.c: app passwords, TOTP records, APOP secrets, locking, bad files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "authstore.h"

/* RFC 6238 Appendix B: the SHA-1 test key. */
static const unsigned char rfc_key[20] = "12345678901234567890";

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_authstore.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	(void)state;
	authstore_set_owner((uid_t)-1, (gid_t)-1);
	return nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static const char *path_of(const char *name)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static void write_text(const char *name, const char *text)
{
	FILE *f = fopen(path_of(name), "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* The whole file NAME as a string (static buffer), or NULL when it does not exist. */
static const char *read_text(const char *name)
{
	static char buf[65536];
	FILE *f = fopen(path_of(name), "r");
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* A RFC 6238 code computed here with HMAC-SHA1, independently of liboath. */
static void totp_code(const unsigned char *key, size_t len, int64_t step, char out[7])
{
	unsigned char msg[8], md[20];
	unsigned int mdlen = 0;
	uint32_t bin;
	int off;

	for (int i = 7; i >= 0; i--, step >>= 8)
		msg[i] = (unsigned char)(step & 0xff);
	assert_non_null(HMAC(EVP_sha1(), key, (int)len, msg, sizeof(msg), md, &mdlen));
	off = md[19] & 0xf;
	bin = ((uint32_t)(md[off] & 0x7f) << 24) | (uint32_t)md[off + 1] << 16 |
	      (uint32_t)md[off + 2] << 8 | md[off + 3];
	snprintf(out, 7, "%06u", bin % 1000000);
}

static void test_hash(void **state)
{
	char h[AUTHSTORE_HASH_TEXT + 1], h2[AUTHSTORE_HASH_TEXT + 1];
	const char *error = NULL;

	(void)state;
	assert_int_equal(authstore_hash("secret", 6, h, sizeof(h), &error), 0);
	assert_int_equal(strlen(h), AUTHSTORE_HASH_TEXT);
	assert_memory_equal(h, "sha256$", 7);
	assert_int_equal(authstore_hash_verify("secret", 6, h, &error), 1);
	assert_int_equal(authstore_hash_verify("secreT", 6, h, &error), 0);
	assert_int_equal(authstore_hash_verify("secret", 5, h, &error), 0);
	/* Salted: the same secret hashes differently each time. */
	assert_int_equal(authstore_hash("secret", 6, h2, sizeof(h2), &error), 0);
	assert_string_not_equal(h, h2);
	h[10] = 'G';
	assert_int_equal(authstore_hash_verify("secret", 6, h, &error), -1);
	assert_string_equal(error, "malformed verifier (want sha256$SALT$HASH)");
	assert_int_equal(authstore_hash_verify("secret", 6, "sha256$ab$cd", &error), -1);
	assert_int_equal(authstore_hash("x", 1, h, AUTHSTORE_HASH_TEXT, &error), -1);
}

/* The salted hash is SHA-256(salt || secret): check it against OpenSSL directly. */
static void test_hash_definition(void **state)
{
	unsigned char in[16 + 3], md[32];
	char stored[AUTHSTORE_HASH_TEXT + 1], hex[65];
	unsigned int mdlen = 0;
	const char *error = NULL;

	(void)state;
	for (int i = 0; i < 16; i++)
		in[i] = (unsigned char)i;
	memcpy(in + 16, "abc", 3);
	assert_int_equal(EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha256(), NULL), 1);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(stored, sizeof(stored), "sha256$000102030405060708090a0b0c0d0e0f$%s", hex);
	assert_int_equal(authstore_hash_verify("abc", 3, stored, &error), 1);
	assert_int_equal(authstore_hash_verify("abd", 3, stored, &error), 0);
}

static void test_apppw_basic(void **state)
{
	char pw[APPPW_TEXT_LEN + 1], pw2[APPPW_TEXT_LEN + 1], name[APPPW_NAME_MAX + 1];
	char plain[APPPW_SYMBOLS + 1], lower[APPPW_TEXT_LEN + 1];
	const char *error = NULL;
	struct apppw *list;
	size_t n;
	struct stat st;

	(void)state;
	assert_int_equal(apppw_add(dir, "alice", "phone", 1700000000, pw, sizeof(pw), &error), 0);
	/* XXXX-XXXX-XXXX-XXXX-XXXX from the alphabet. */
	assert_int_equal(strlen(pw), 24);
	for (size_t i = 0, o = 0; i < 24; i++) {
		if (i % 5 == 4) {
			assert_int_equal(pw[i], '-');
			continue;
		}
		assert_non_null(strchr(APPPW_ALPHABET, pw[i]));
		plain[o++] = pw[i];
		plain[o] = '\0';
	}
	assert_int_equal(apppw_add(dir, "alice", "laptop", 1700000100, pw2, sizeof(pw2), &error),
	                 0);
	assert_string_not_equal(pw, pw2);
	assert_int_equal(stat(path_of("app-passwords"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(dir, &st), 0);

	assert_int_equal(apppw_list(dir, NULL, &list, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].user, "alice");
	assert_string_equal(list[0].name, "phone");
	assert_int_equal(list[0].created, 1700000000);
	assert_int_equal(list[0].last_used, 0);
	assert_string_equal(list[0].last_ip, "-");
	assert_string_equal(list[1].name, "laptop");
	free(list);

	/* Dashed, undashed, lower case: all the same password. */
	assert_int_equal(apppw_verify(dir, "alice", pw, strlen(pw), "192.0.2.7", 1700000200, name,
	                              sizeof(name), &error),
	                 1);
	assert_string_equal(name, "phone");
	assert_int_equal(apppw_verify(dir, "alice", plain, strlen(plain), "2001:db8::1", 1700000300,
	                              name, sizeof(name), &error),
	                 1);
	for (size_t i = 0; i <= 24; i++)
		lower[i] = (char)(pw2[i] >= 'A' && pw2[i] <= 'Z' ? pw2[i] + 32 : pw2[i]);
	assert_int_equal(apppw_verify(dir, "alice", lower, strlen(lower), NULL, 1700000400, name,
	                              sizeof(name), &error),
	                 1);
	assert_string_equal(name, "laptop");

	assert_int_equal(apppw_list(dir, "alice", &list, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].last_used, 1700000300);
	assert_string_equal(list[0].last_ip, "2001:db8::1");
	assert_int_equal(list[1].last_used, 1700000400);
	assert_string_equal(list[1].last_ip, "-");
	free(list);
	assert_int_equal(apppw_list(dir, "bob", &list, &n, &error), 0);
	assert_int_equal(n, 0);
	assert_null(list);
}

static void test_apppw_refusals(void **state)
{
	char pw[APPPW_TEXT_LEN + 1], pwb[APPPW_TEXT_LEN + 1], name[APPPW_NAME_MAX + 1] = "";
	char bad[APPPW_TEXT_LEN + 1];
	const char *error = NULL, *before;
	char saved[4096];

	(void)state;
	/* Nothing shaped like an app password reads the store (it does not even exist yet). */
	assert_int_equal(
	    apppw_verify(dir, "alice", "hunter2", 7, NULL, 1, name, sizeof(name), &error), 0);
	assert_null(read_text("app-passwords"));
	assert_null(read_text(".lock"));

	assert_int_equal(apppw_add(dir, "alice", "phone", 1000, pw, sizeof(pw), &error), 0);
	assert_int_equal(apppw_add(dir, "bob", "phone", 1000, pwb, sizeof(pwb), &error), 0);
	snprintf(saved, sizeof(saved), "%s", read_text("app-passwords"));
	/* Bob's password is not Alice's. */
	assert_int_equal(apppw_verify(dir, "alice", pwb, strlen(pwb), "192.0.2.1", 2000, name,
	                              sizeof(name), &error),
	                 0);
	assert_string_equal(name, "");
	/* One symbol changed. */
	snprintf(bad, sizeof(bad), "%s", pw);
	bad[0] = bad[0] == '2' ? '3' : '2';
	assert_int_equal(apppw_verify(dir, "alice", bad, strlen(bad), "192.0.2.1", 2000, name,
	                              sizeof(name), &error),
	                 0);
	/* Symbols outside the alphabet, wrong length, a NUL inside. */
	assert_int_equal(apppw_verify(dir, "alice", "OOOO-OOOO-OOOO-OOOO-OOOO", 24, NULL, 2000,
	                              name, sizeof(name), &error),
	                 0);
	assert_int_equal(
	    apppw_verify(dir, "alice", pw, strlen(pw) - 1, NULL, 2000, name, sizeof(name), &error),
	    0);
	memcpy(bad, pw, sizeof(bad));
	bad[4] = '\0';
	assert_int_equal(
	    apppw_verify(dir, "alice", bad, 24, NULL, 2000, name, sizeof(name), &error), 0);
	/* No failed attempt changed the file. */
	before = read_text("app-passwords");
	assert_string_equal(before, saved);
	/* A bad address is an error, not a silent "-". */
	assert_int_equal(apppw_verify(dir, "alice", pw, strlen(pw), "not-an-ip", 2000, name,
	                              sizeof(name), &error),
	                 -1);

	/* Names. */
	assert_int_equal(apppw_add(dir, "alice", "phone", 1000, pw, sizeof(pw), &error), -1);
	assert_string_equal(error, "alice already has an app password named phone");
	assert_int_equal(apppw_add(dir, "alice", "a b", 1000, pw, sizeof(pw), &error), -1);
	assert_string_equal(error, "invalid app password name (1 to 32 of A-Z a-z 0-9 . _ -)");
	assert_int_equal(apppw_add(dir, "alice", "", 1000, pw, sizeof(pw), &error), -1);
	assert_int_equal(apppw_add(dir, "alice", "123456789012345678901234567890123", 1000, pw,
	                           sizeof(pw), &error),
	                 -1);
	assert_int_equal(apppw_add(dir, "alice", "12345678901234567890123456789012", 1000, pw,
	                           sizeof(pw), &error),
	                 0);
	assert_int_equal(apppw_add(dir, "../x", "phone", 1000, pw, sizeof(pw), &error), -1);
	assert_int_equal(apppw_add(dir, "alice", "y", 1000, pw, APPPW_TEXT_LEN, &error), -1);
	assert_int_equal(apppw_add(dir, "alice", "y", -1, pw, sizeof(pw), &error), -1);
}

static void test_apppw_limit_and_revoke(void **state)
{
	char pw[APPPW_TEXT_LEN + 1], first[APPPW_TEXT_LEN + 1], name[APPPW_NAME_MAX + 1];
	const char *error = NULL;
	struct apppw *list;
	size_t n;

	(void)state;
	for (int i = 0; i < APPPW_PER_USER_MAX; i++) {
		snprintf(name, sizeof(name), "dev%d", i);
		assert_int_equal(apppw_add(dir, "alice", name, 1000 + i, pw, sizeof(pw), &error),
		                 0);
		if (i == 0)
			memcpy(first, pw, sizeof(first));
	}
	assert_int_equal(apppw_add(dir, "alice", "one-more", 2000, pw, sizeof(pw), &error), -1);
	assert_string_equal(error, "alice already has 32 app passwords, the most allowed");
	assert_int_equal(apppw_add(dir, "bob", "one-more", 2000, pw, sizeof(pw), &error), 0);

	assert_int_equal(apppw_revoke(dir, "alice", "dev0", &error), 1);
	assert_int_equal(apppw_revoke(dir, "alice", "dev0", &error), 0);
	assert_int_equal(apppw_revoke(dir, "carol", "dev1", &error), 0);
	/* The revoked password stops working. */
	assert_int_equal(apppw_verify(dir, "alice", first, strlen(first), NULL, 3000, name,
	                              sizeof(name), &error),
	                 0);
	assert_int_equal(apppw_add(dir, "alice", "one-more", 2000, pw, sizeof(pw), &error), 0);

	assert_int_equal(apppw_revoke_user(dir, "alice", &error), 32);
	assert_int_equal(apppw_revoke_user(dir, "alice", &error), 0);
	assert_int_equal(apppw_list(dir, NULL, &list, &n, &error), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].user, "bob");
	free(list);
}

/* Comments and empty lines survive rewrites; a leftover temporary file from a crashed writer is
 * ignored by readers and replaced by the next writer. */
static void test_comments_and_crashed_writer(void **state)
{
	char pw[APPPW_TEXT_LEN + 1], secret[64];
	const char *error = NULL, *text;
	struct apppw *list;
	size_t n, len;

	(void)state;
	write_text("apop", "# APOP secrets\n\nalice c2VjcmV0\n");
	write_text(".apop.tmp", "garbage from a writer that died half way\nbob c2Vj");
	write_text(".app-passwords.tmp", "alice x");
	assert_int_equal(apop_get(dir, "alice", secret, sizeof(secret), &len, &error), 1);
	assert_string_equal(secret, "secret");
	assert_int_equal(apop_get(dir, "bob", secret, sizeof(secret), &len, &error), 0);
	assert_int_equal(apop_set(dir, "bob", "b", 1, &error), 0);
	assert_string_equal(read_text("apop"), "# APOP secrets\n\nalice c2VjcmV0\nbob Yg==\n");
	assert_null(read_text(".apop.tmp"));

	assert_int_equal(apppw_list(dir, NULL, &list, &n, &error), 0);
	assert_int_equal(n, 0);
	assert_int_equal(apppw_add(dir, "alice", "phone", 5, pw, sizeof(pw), &error), 0);
	assert_null(read_text(".app-passwords.tmp"));
	text = read_text("app-passwords");
	assert_memory_equal(text, "alice phone 5 0 - sha256$", 25);
	assert_int_equal(strlen(text), 25 + 32 + 1 + 64 + 1);
}

static void expect_broken(const char *file, const char *text, unsigned line, const char *reason)
{
	char want[256], secret[64], name[APPPW_NAME_MAX + 1];
	const char *error = NULL;
	struct totp_record r;
	struct apppw *list = NULL;
	size_t n, len;
	int ret;

	write_text(file, text);
	if (strcmp(file, "apop") == 0)
		ret = apop_get(dir, "zed", secret, sizeof(secret), &len, &error);
	else if (strcmp(file, "totp") == 0)
		ret = totpstore_get(dir, "zed", &r, &error);
	else
		ret = apppw_list(dir, NULL, &list, &n, &error);
	if (ret != -1)
		fail_msg("%s: accepted %s", file, text);
	assert_null(list);
	snprintf(want, sizeof(want), "%s/%s:%u: %s", dir, file, line, reason);
	assert_string_equal(error, want);
	/* Writers refuse too, and leave the file alone. */
	if (strcmp(file, "apop") == 0)
		assert_int_equal(apop_set(dir, "zed", "x", 1, &error), -1);
	else if (strcmp(file, "totp") == 0)
		assert_int_equal(totpstore_del(dir, "zed", &error), -1);
	else
		assert_int_equal(apppw_verify(dir, "zed", "22222222222222222222", 20, NULL, 1, name,
		                              sizeof(name), &error),
		                 -1);
	assert_string_equal(error, want);
	assert_string_equal(read_text(file), text);
}

/* A NUL byte inside a line is refused, not read as the end of the line. */
static void expect_nul(void)
{
	char secret[64], want[160];
	const char *error = NULL;
	size_t len;
	FILE *f = fopen(path_of("apop"), "w");

	assert_non_null(f);
	assert_int_equal(fwrite("zed eA==\0 x\n", 1, 13, f), 13);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(apop_get(dir, "zed", secret, sizeof(secret), &len, &error), -1);
	snprintf(want, sizeof(want), "%s/apop:1: NUL byte in line", dir);
	assert_string_equal(error, want);
}

#define H64  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HASH "sha256$0123456789abcdef0123456789abcdef$" H64
#define B32  "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

static void test_broken_lines(void **state)
{
	char longline[AUTHSTORE_LINE_MAX + 16];

	(void)state;
	expect_broken("apop", "alice c2VjcmV0\nbob\n", 2, "wrong number of fields or stray spaces");
	expect_broken("apop", "alice  c2VjcmV0\n", 1, "wrong number of fields or stray spaces");
	expect_broken("apop", "alice c2VjcmV0 \n", 1, "wrong number of fields or stray spaces");
	expect_broken("apop", "alice c2VjcmV0\r\n", 1, "bad base64 secret");
	expect_broken("apop", "alice c2Vjc!V0\n", 1, "bad base64 secret");
	expect_broken("apop", "alice AA==\n", 1, "bad base64 secret"); /* a NUL byte */
	expect_broken("apop", "a/b c2VjcmV0\n", 1, "invalid user name");
	expect_broken("apop", "zed eA==\nzed eQ==\n", 2, "second record for the same user");
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	expect_broken("apop", longline, 1, "line too long");
	expect_nul();

	expect_broken("totp", "alice on " B32 " 0\n", 1, "state is neither active nor pending");
	expect_broken("totp", "alice active " B32 "\n", 1,
	              "wrong number of fields or stray spaces");
	expect_broken("totp", "alice active gezdgnbvgy3tqojqgezdgnbvgy3tqojq 0\n", 1,
	              "bad base32 secret");
	expect_broken("totp", "alice active GEZDGNBVGY3TQOJQ 0\n", 1,
	              "bad base32 secret"); /* 10 bytes: too short */
	expect_broken("totp", "alice active " B32 " -1\n", 1, "bad time step");
	expect_broken("totp", "alice active " B32 " 0 sha256$xyz\n", 1, "bad recovery verifier");
	expect_broken("totp",
	              "# one too many\nalice active " B32 " 0 " HASH " " HASH " " HASH " " HASH
	              " " HASH " " HASH " " HASH " " HASH " " HASH " " HASH " " HASH "\n",
	              2, "wrong number of fields or stray spaces");

	expect_broken("app-passwords", "alice phone 1 0 - " HASH "\nalice ph/one 1 0 - " HASH "\n",
	              2, "invalid app password name (1 to 32 of A-Z a-z 0-9 . _ -)");
	expect_broken("app-passwords", "alice phone 01 0 - " HASH "\n", 1, "bad time stamp");
	expect_broken("app-passwords", "alice phone 1 0 300.1.1.1 " HASH "\n", 1, "bad address");
	expect_broken("app-passwords", "alice phone 1 0 - sha1$00$00\n", 1,
	              "bad verifier (want sha256$SALT$HASH)");
	expect_broken("app-passwords", "alice phone 1 0 -\n", 1,
	              "wrong number of fields or stray spaces");
}

static void test_totp_store(void **state)
{
	struct totp_record r, got;
	const char *error = NULL;

	(void)state;
	assert_int_equal(totpstore_get(dir, "alice", &got, &error), 0);
	assert_int_equal(totpstore_del(dir, "alice", &error), 0);
	memset(&r, 0, sizeof(r));
	snprintf(r.user, sizeof(r.user), "alice");
	memcpy(r.secret, rfc_key, sizeof(rfc_key));
	r.secret_len = sizeof(rfc_key);
	assert_int_equal(totpstore_put(dir, &r, &error), 0);
	assert_string_equal(read_text("totp"), "alice pending " B32 " 0\n");
	assert_int_equal(totpstore_get(dir, "alice", &got, &error), 1);
	assert_string_equal(got.user, "alice");
	assert_false(got.active);
	assert_int_equal(got.secret_len, 20);
	assert_memory_equal(got.secret, rfc_key, 20);
	assert_int_equal(got.n_recovery, 0);

	/* Replace in place: other records and their order stay. */
	snprintf(r.user, sizeof(r.user), "bob");
	assert_int_equal(totpstore_put(dir, &r, &error), 0);
	snprintf(r.user, sizeof(r.user), "alice");
	r.active = true;
	r.last_step = 42;
	r.n_recovery = 2;
	snprintf(r.recovery[0], sizeof(r.recovery[0]), "%s", HASH);
	snprintf(r.recovery[1], sizeof(r.recovery[1]), "%s", HASH);
	assert_int_equal(totpstore_put(dir, &r, &error), 0);
	assert_string_equal(read_text("totp"), "alice active " B32 " 42 " HASH " " HASH "\n"
	                                       "bob pending " B32 " 0\n");
	assert_int_equal(totpstore_del(dir, "alice", &error), 1);
	assert_string_equal(read_text("totp"), "bob pending " B32 " 0\n");

	/* Invalid records are refused before anything is written. */
	r.secret_len = TOTP_SECRET_MIN - 1;
	assert_int_equal(totpstore_put(dir, &r, &error), -1);
	r.secret_len = 20;
	snprintf(r.recovery[1], sizeof(r.recovery[1]), "plain");
	assert_int_equal(totpstore_put(dir, &r, &error), -1);
	r.n_recovery = TOTP_RECOVERY_CODES + 1;
	assert_int_equal(totpstore_put(dir, &r, &error), -1);
	assert_string_equal(read_text("totp"), "bob pending " B32 " 0\n");
}

static void test_totp_codes(void **state)
{
	struct totp_record r, got;
	const char *error = NULL;
	const time_t t = 1111111109; /* RFC 6238 Appendix B: step 37037036 */
	char code[7], next[7];

	(void)state;
	memset(&r, 0, sizeof(r));
	snprintf(r.user, sizeof(r.user), "alice");
	memcpy(r.secret, rfc_key, 20);
	r.secret_len = 20;
	assert_int_equal(totpstore_put(dir, &r, &error), 0);
	totp_code(rfc_key, 20, 37037036, code);
	assert_string_equal(code, "081804"); /* the RFC's 07081804, six digits */
	/* Pending: not yet a second factor, codes do nothing. */
	assert_int_equal(totpstore_check_code(dir, "alice", code, t, &error), 0);
	r.active = true;
	assert_int_equal(totpstore_put(dir, &r, &error), 0);
	assert_int_equal(totpstore_check_code(dir, "alice", "000000", t, &error), 0);
	assert_int_equal(totpstore_check_code(dir, "alice", code, t, &error), 1);
	assert_int_equal(totpstore_get(dir, "alice", &got, &error), 1);
	assert_int_equal(got.last_step, 37037036);
	/* The same code again, even at the same instant: a replay. */
	assert_int_equal(totpstore_check_code(dir, "alice", code, t, &error), 0);
	assert_int_equal(totpstore_check_code(dir, "alice", code, t + 30, &error), 0);
	/* The next step's code works once. */
	totp_code(rfc_key, 20, 37037037, next);
	assert_int_equal(totpstore_check_code(dir, "alice", next, t + 30, &error), 1);
	assert_int_equal(totpstore_check_code(dir, "alice", next, t + 30, &error), 0);
	assert_int_equal(totpstore_get(dir, "alice", &got, &error), 1);
	assert_int_equal(got.last_step, 37037037);
	/* Another user, no record. */
	assert_int_equal(totpstore_check_code(dir, "bob", next, t + 60, &error), 0);
	assert_int_equal(totpstore_check_code(dir, "alice", NULL, t, &error), -1);
}

static void test_totp_recovery(void **state)
{
	struct totp_record r, got;
	const char *error = NULL;
	const char *codes[3] = {"ABCD-EFGH-JKMN-PQRS", "0123-4567-89AB-CDEF",
	                        "WXYZ-WXYZ-WXYZ-WXYZ"};

	(void)state;
	memset(&r, 0, sizeof(r));
	snprintf(r.user, sizeof(r.user), "alice");
	memcpy(r.secret, rfc_key, 20);
	r.secret_len = 20;
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(
		    totpstore_hash_recovery(codes[i], r.recovery[i], sizeof(r.recovery[i]), &error),
		    0);
	r.n_recovery = 3;
	assert_int_equal(totpstore_put(dir, &r, &error), 0);
	/* Pending records take no recovery code either. */
	assert_int_equal(totpstore_use_recovery(dir, "alice", codes[1], &error), 0);
	r.active = true;
	assert_int_equal(totpstore_put(dir, &r, &error), 0);

	assert_int_equal(totpstore_use_recovery(dir, "bob", codes[1], &error), 0);
	assert_int_equal(totpstore_use_recovery(dir, "alice", "ABCD-EFGH-JKMN-PQRT", &error), 0);
	assert_int_equal(totpstore_use_recovery(dir, "alice", "not a code!", &error), 0);
	/* Typed without dashes, in lower case: the same code. Single use. */
	assert_int_equal(totpstore_use_recovery(dir, "alice", "0123456789abcdef", &error), 1);
	assert_int_equal(totpstore_use_recovery(dir, "alice", codes[1], &error), 0);
	assert_int_equal(totpstore_get(dir, "alice", &got, &error), 1);
	assert_int_equal(got.n_recovery, 2);
	assert_string_equal(got.recovery[0], r.recovery[0]);
	assert_string_equal(got.recovery[1], r.recovery[2]);
	assert_int_equal(totpstore_use_recovery(dir, "alice", codes[2], &error), 1);
	assert_int_equal(totpstore_use_recovery(dir, "alice", codes[0], &error), 1);
	assert_int_equal(totpstore_use_recovery(dir, "alice", codes[0], &error), 0);
	assert_int_equal(totpstore_get(dir, "alice", &got, &error), 1);
	assert_int_equal(got.n_recovery, 0);
	assert_true(got.active);
}

static void test_apop(void **state)
{
	char secret[APOP_SECRET_MAX + 1], big[APOP_SECRET_MAX + 2];
	const char *error = NULL;
	size_t len = 99;

	(void)state;
	assert_int_equal(apop_get(dir, "alice", secret, sizeof(secret), &len, &error), 0);
	assert_int_equal(len, 0);
	assert_int_equal(apop_del(dir, "alice", &error), 0);
	assert_int_equal(apop_set(dir, "alice", "tanstaaf", 8, &error), 0);
	assert_int_equal(apop_set(dir, "bob", "with space\xff", 11, &error), 0);
	assert_string_equal(read_text("apop"), "alice dGFuc3RhYWY=\nbob d2l0aCBzcGFjZf8=\n");
	assert_int_equal(apop_get(dir, "bob", secret, sizeof(secret), &len, &error), 1);
	assert_int_equal(len, 11);
	assert_memory_equal(secret, "with space\xff", 12);
	assert_int_equal(apop_set(dir, "alice", "new", 3, &error), 0);
	assert_string_equal(read_text("apop"), "alice bmV3\nbob d2l0aCBzcGFjZf8=\n");
	assert_int_equal(apop_get(dir, "alice", secret, 3, &len, &error), -1);
	assert_int_equal(apop_get(dir, "alice", secret, 4, &len, &error), 1);
	assert_string_equal(secret, "new");
	assert_int_equal(apop_del(dir, "alice", &error), 1);
	assert_int_equal(apop_del(dir, "alice", &error), 0);
	assert_string_equal(read_text("apop"), "bob d2l0aCBzcGFjZf8=\n");

	memset(big, 'x', sizeof(big));
	assert_int_equal(apop_set(dir, "carol", big, APOP_SECRET_MAX + 1, &error), -1);
	assert_string_equal(error, "APOP secret must be 1 to 1024 bytes without NUL");
	assert_int_equal(apop_set(dir, "carol", big, APOP_SECRET_MAX, &error), 0);
	assert_int_equal(apop_get(dir, "carol", secret, sizeof(secret), &len, &error), 1);
	assert_int_equal(len, APOP_SECRET_MAX);
	assert_int_equal(apop_set(dir, "carol", "a\0b", 3, &error), -1);
	assert_int_equal(apop_set(dir, "carol", "", 0, &error), -1);
	assert_int_equal(apop_set(dir, "a b", "x", 1, &error), -1);
}

/* Readers of a directory that does not exist see an empty store; the first writer creates it. */
static void test_missing_dir(void **state)
{
	char sub[128], secret[8];
	const char *error = NULL;
	struct stat st;
	size_t len;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/auth", dir);
	assert_int_equal(apop_get(sub, "alice", secret, sizeof(secret), &len, &error), 0);
	assert_int_equal(stat(sub, &st), -1);
	assert_int_equal(apop_set(sub, "alice", "x", 1, &error), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(apop_set("", "alice", "x", 1, &error), -1);
	assert_string_equal(error, "no auth directory given");
}

/* As root, new files and the directory go to the configured owner; rewrites keep the owner. */
static void test_owner(void **state)
{
	char sub[128], file[160];
	const char *error = NULL;
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(sub, sizeof(sub), "%s/auth", dir);
	authstore_set_owner(65534, 65534);
	assert_int_equal(apop_set(sub, "alice", "x", 1, &error), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	snprintf(file, sizeof(file), "%s/apop", sub);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 65534);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(file, sizeof(file), "%s/.lock", sub);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	authstore_set_owner((uid_t)-1, (gid_t)-1);
	assert_int_equal(apop_set(sub, "bob", "y", 1, &error), 0);
	snprintf(file, sizeof(file), "%s/apop", sub);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_uid, 65534);
}

/* A lock held elsewhere makes a call wait, then give up after AUTHSTORE_LOCK_SECONDS. */
static void test_lock_timeout(void **state)
{
	char secret[8], want[160];
	const char *error = NULL;
	struct timespec t0, t1;
	size_t len;
	int fd;

	(void)state;
	assert_int_equal(apop_set(dir, "alice", "x", 1, &error), 0);
	fd = open(path_of(".lock"), O_RDWR);
	assert_true(fd >= 0);
	/* A shared lock lets readers in but keeps writers out. */
	assert_int_equal(flock(fd, LOCK_SH), 0);
	assert_int_equal(apop_get(dir, "alice", secret, sizeof(secret), &len, &error), 1);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(apop_get(dir, "alice", secret, sizeof(secret), &len, &error), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	snprintf(want, sizeof(want), "%s/.lock: still locked after 3 s", dir);
	assert_string_equal(error, want);
	assert_true(t1.tv_sec - t0.tv_sec >= AUTHSTORE_LOCK_SECONDS - 1);
	assert_true(t1.tv_sec - t0.tv_sec <= AUTHSTORE_LOCK_SECONDS + 2);
	close(fd);
	assert_int_equal(apop_get(dir, "alice", secret, sizeof(secret), &len, &error), 1);
}

#define WRITES 16

/* Each worker adds WRITES app passwords for its user and sets its APOP secret WRITES times. */
static void *worker(void *arg)
{
	const char *user = arg;
	char pw[APPPW_TEXT_LEN + 1], name[32], secret[32];
	const char *error;
	intptr_t failures = 0;

	for (int i = 0; i < WRITES; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		snprintf(secret, sizeof(secret), "%s-%d", user, i);
		failures += apppw_add(dir, user, name, i + 1, pw, sizeof(pw), &error) != 0;
		failures += apop_set(dir, user, secret, strlen(secret), &error) != 0;
	}
	return (void *)failures;
}

static void test_concurrent_writers(void **state)
{
	static char *users[] = {"p0", "p1", "t0", "t1", "t2"};
	pthread_t th[3];
	pid_t pid[2];
	struct apppw *list;
	char secret[64], want[64];
	const char *error = NULL;
	size_t n, len;
	int status;

	(void)state;
	/* Two processes and three threads write to the same files at once. */
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0)
			_exit(worker(users[i]) == NULL ? 0 : 1);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker, users[2 + i]), 0);
	for (int i = 0; i < 3; i++) {
		void *ret;

		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* No update lost: every password and every user's last secret is there. */
	assert_int_equal(apppw_list(dir, NULL, &list, &n, &error), 0);
	assert_int_equal(n, 5 * WRITES);
	for (int u = 0; u < 5; u++) {
		int count = 0;

		for (size_t i = 0; i < n; i++)
			count += strcmp(list[i].user, users[u]) == 0;
		assert_int_equal(count, WRITES);
		snprintf(want, sizeof(want), "%s-%d", users[u], WRITES - 1);
		assert_int_equal(apop_get(dir, users[u], secret, sizeof(secret), &len, &error), 1);
		assert_string_equal(secret, want);
	}
	free(list);
	assert_null(read_text(".apop.tmp"));
	assert_null(read_text(".app-passwords.tmp"));
}

/* Two threads race to use the same TOTP code and the same recovery code: exactly one wins. */
struct race {
	const char *code;
	int recovery;
	int result;
};

static void *racer(void *arg)
{
	struct race *r = arg;
	const char *error;

	if (r->recovery)
		r->result = totpstore_use_recovery(dir, "alice", r->code, &error);
	else
		r->result = totpstore_check_code(dir, "alice", r->code, 1111111109, &error);
	return NULL;
}

static void test_single_use_race(void **state)
{
	struct totp_record r;
	const char *error = NULL;
	char code[7];
	pthread_t th[4];
	struct race races[4];
	int wins[2] = {0, 0};

	(void)state;
	memset(&r, 0, sizeof(r));
	snprintf(r.user, sizeof(r.user), "alice");
	memcpy(r.secret, rfc_key, 20);
	r.secret_len = 20;
	r.active = true;
	assert_int_equal(totpstore_hash_recovery("AAAA-BBBB-CCCC-DDDD", r.recovery[0],
	                                         sizeof(r.recovery[0]), &error),
	                 0);
	r.n_recovery = 1;
	assert_int_equal(totpstore_put(dir, &r, &error), 0);
	totp_code(rfc_key, 20, 37037036, code);
	for (int i = 0; i < 4; i++) {
		races[i].recovery = i % 2;
		races[i].code = races[i].recovery ? "AAAA-BBBB-CCCC-DDDD" : code;
		races[i].result = -2;
		assert_int_equal(pthread_create(&th[i], NULL, racer, &races[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(races[i].result == 0 || races[i].result == 1);
		wins[races[i].recovery] += races[i].result;
	}
	assert_int_equal(wins[0], 1);
	assert_int_equal(wins[1], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash),
	    cmocka_unit_test(test_hash_definition),
	    cmocka_unit_test_setup_teardown(test_apppw_basic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apppw_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apppw_limit_and_revoke, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_comments_and_crashed_writer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_broken_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_totp_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_totp_codes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_totp_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_single_use_race, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
