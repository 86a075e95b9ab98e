/* Unit tests for lib/userdb.c: names, passwd-file lines, lookup, mail path templates, SCRAM
 * verifier fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "userdb.h"

static char tmpdir[] = "/tmp/test_userdb.XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

/* Writes DATA (LEN bytes) to a fresh file and returns its path (static buffer). */
static const char *write_file(const char *data, size_t len)
{
	static char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/passwd", tmpdir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	return path;
}

static void name_ok(const char *name)
{
	const char *error = NULL;

	if (userdb_valid_name(name, strlen(name), &error) != 0)
		fail_msg("\"%s\" refused: %s", name, error);
}

static void name_bad(const char *name, size_t len)
{
	const char *error = NULL;

	if (userdb_valid_name(name, len, &error) != -1)
		fail_msg("\"%s\" accepted", name);
	assert_non_null(error);
}

static void test_valid_name(void **state)
{
	char longname[USERNAME_MAX + 2];

	(void)state;
	name_ok("a");
	name_ok("a@b.c");
	name_ok("john.doe+tag@example.org");
	name_ok("A_b-9");
	name_bad("", 0);
	name_bad("../x", 4);
	name_bad("a/b", 3);
	name_bad("a..b", 4);
	name_bad(".a", 2);
	name_bad("-a", 2);
	name_bad("a b", 3);
	name_bad("a\x01", 2);
	name_bad("a\x7f", 2);
	/* RFC 6856 §2.2: well-formed UTF-8 in SASLprep form is a name: é, 田中@example.jp,
	 * jörg@bücher.example. */
	name_ok("\xc3\xa9");
	name_ok("\xe7\x94\xb0\xe4\xb8\xad@example.jp");
	name_ok("j\xc3\xb6rg@b\xc3\xbc\x63her.example");
	/* Invalid UTF-8: a bad sequence, an overlong '/', a surrogate. */
	name_bad("\xc3\x28", 2);
	name_bad("\xc0\xaf", 2);
	name_bad("a\xed\xa0\x80", 4);
	/* SASLprep: U+200E and a C1 control are prohibited, NBSP is mapped to a space, e + U+0301
	 * is not NFKC, U+0378 is unassigned. */
	name_bad("a\xe2\x80\x8e", 4);
	name_bad("a\xc2\x85", 3);
	name_bad("a\xc2\xa0\x62", 4);
	name_bad("e\xcc\x81", 3);
	name_bad("a\xcd\xb8", 3);
	/* The ASCII rules still apply. */
	name_bad("\xc3\xa9/x", 4);
	name_bad("a:b", 3);
	name_bad("a@b@c", 5);
	name_bad("a%b", 3);
	name_bad("a%u", 3);
	name_bad("@b", 2);
	name_bad("a@", 2);
	name_bad("a@.b", 4);
	name_bad("a@-b", 4);
	name_bad("a\0b", 3);
	name_bad("a\nb", 3);
	memset(longname, 'x', sizeof(longname));
	longname[USERNAME_MAX] = '\0';
	name_ok(longname);
	name_bad(longname, USERNAME_MAX + 1);
}

static void test_parse_full(void **state)
{
	struct userdb_entry e;
	const char *error = NULL;

	(void)state;
	assert_int_equal(userdb_parse_line("alice@example.org:{SHA512-CRYPT}$6$x$y:1000:1001:Alice "
	                                   "A.:/home/alice::userdb_mail=maildir:/var/mail/alice "
	                                   "userdb_quota_rule=*:storage=1G",
	                                   &e, &error),
	                 0);
	assert_string_equal(e.user, "alice@example.org");
	assert_string_equal(e.pwhash, "{SHA512-CRYPT}$6$x$y");
	assert_int_equal(e.uid, 1000);
	assert_int_equal(e.gid, 1001);
	assert_string_equal(e.home, "/home/alice");
	assert_string_equal(e.mail, "/var/mail/alice");

	assert_int_equal(
	    userdb_parse_line("u:{PLAIN}pw:0:0:::/bin/false:mail=maildir:%h/Maildir", &e, &error),
	    0);
	assert_int_equal(e.uid, 0);
	assert_int_equal(e.gid, 0);
	assert_string_equal(e.home, "");
	assert_string_equal(e.mail, "%h/Maildir");

	/* Dovecot location options after the path are dropped; a bare path is fine too. */
	assert_int_equal(
	    userdb_parse_line("u:x::::::mail=maildir:/m/u:INDEX=/i/u:LAYOUT=fs", &e, &error), 0);
	assert_string_equal(e.mail, "/m/u");
	assert_int_equal(userdb_parse_line("u:x::::::foo userdb_mail=/m/u bar=baz", &e, &error), 0);
	assert_string_equal(e.mail, "/m/u");
	assert_int_equal(userdb_parse_line("u:x::::::mail=mbox:/m/u", &e, &error), -1);
	assert_int_equal(userdb_parse_line("u:x::::::mail=maildir:", &e, &error), -1);
}

static void test_parse_short(void **state)
{
	struct userdb_entry e;
	const char *error = NULL;

	(void)state;
	assert_int_equal(userdb_parse_line("bob:{PLAIN}pw", &e, &error), 0);
	assert_string_equal(e.user, "bob");
	assert_string_equal(e.pwhash, "{PLAIN}pw");
	assert_true(e.uid == (uid_t)-1);
	assert_true(e.gid == (gid_t)-1);
	assert_string_equal(e.home, "");
	assert_string_equal(e.mail, "");

	assert_int_equal(userdb_parse_line("bob:", &e, &error), 0);
	assert_string_equal(e.pwhash, "");
	assert_int_equal(userdb_parse_line("bob:h:5", &e, &error), 0);
	assert_int_equal(e.uid, 5);
	assert_true(e.gid == (gid_t)-1);
	assert_int_equal(userdb_parse_line("bob:h::7:", &e, &error), 0);
	assert_true(e.uid == (uid_t)-1);
	assert_int_equal(e.gid, 7);
	assert_int_equal(userdb_parse_line("bob:h:1:2:g:/h", &e, &error), 0);
	assert_string_equal(e.home, "/h");
}

static void parse_bad(const char *line)
{
	struct userdb_entry e;
	const char *error = NULL;

	if (userdb_parse_line(line, &e, &error) != -1)
		fail_msg("accepted: %s", line);
	assert_non_null(error);
}

static void test_parse_bad(void **state)
{
	char hash[PWHASH_MAX + 16];

	(void)state;
	parse_bad("bob");
	parse_bad("");
	parse_bad(":{PLAIN}pw");
	parse_bad("../x:{PLAIN}pw");
	parse_bad("bob:h:12x:1");
	parse_bad("bob:h:-1:1");
	parse_bad("bob:h:+1:1");
	parse_bad("bob:h: 1:1");
	parse_bad("bob:h:01:1");
	parse_bad("bob:h:4294967295:1");
	parse_bad("bob:h:99999999999999999999:1");
	parse_bad("bob:h:1:12x");
	parse_bad("bob:h:1:-1");
	parse_bad("bob:h:1:1::relative/home");
	memcpy(hash, "bob:", 4);
	memset(hash + 4, 'x', PWHASH_MAX + 1);
	hash[4 + PWHASH_MAX + 1] = '\0';
	parse_bad(hash);
	hash[4 + PWHASH_MAX] = '\0';
	{
		struct userdb_entry e;
		const char *error;

		assert_int_equal(userdb_parse_line(hash, &e, &error), 0);
	}
}

static void test_format(void **state)
{
	struct userdb_entry e, f;
	char line[USERDB_LINE_MAX + 1];
	const char *error = NULL;

	(void)state;
	assert_int_equal(
	    userdb_parse_line("a@b.c:{PLAIN}x y:10:20::/home/a::userdb_mail=maildir:/m/a", &e,
	                      &error),
	    0);
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), 0);
	assert_string_equal(line, "a@b.c:{PLAIN}x y:10:20::/home/a::userdb_mail=maildir:/m/a\n");
	line[strlen(line) - 1] = '\0';
	assert_int_equal(userdb_parse_line(line, &f, &error), 0);
	assert_memory_equal(&e, &f, sizeof(e));

	assert_int_equal(userdb_parse_line("bob:{PLAIN}pw", &e, &error), 0);
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), 0);
	assert_string_equal(line, "bob:{PLAIN}pw\n");
	assert_int_equal(userdb_format_line(&e, line, 10), -1);
	e.gid = 5;
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), 0);
	assert_string_equal(line, "bob:{PLAIN}pw::5\n");
	e.gid = (gid_t)-1;
	e.pwhash[0] = '\0';
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), 0);
	assert_string_equal(line, "bob:\n");
	snprintf(e.pwhash, sizeof(e.pwhash), "{PLAIN}pw");

	/* A separator inside a field would forge another field or another user. */
	snprintf(e.home, sizeof(e.home), "/a:b");
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), -1);
	snprintf(e.home, sizeof(e.home), "/a\nroot::0:0");
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), -1);
	e.home[0] = '\0';
	snprintf(e.mail, sizeof(e.mail), "/m x=y");
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), -1);
	e.mail[0] = '\0';
	snprintf(e.pwhash, sizeof(e.pwhash), "{PLAIN}a:b");
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), -1);
	snprintf(e.pwhash, sizeof(e.pwhash), "{PLAIN}ok");
	snprintf(e.user, sizeof(e.user), "../x");
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), -1);
	/* Longer than a passwd-file line may be. */
	snprintf(e.user, sizeof(e.user), "bob");
	memset(e.home, 'h', sizeof(e.home) - 1);
	e.home[0] = '/';
	e.home[sizeof(e.home) - 1] = '\0';
	{
		char big[2 * GANNET_PATH_MAX];

		assert_int_equal(userdb_format_line(&e, big, sizeof(big)), -1);
	}
}

static const char passwd_file[] = "# Gannet users\n"
                                  "\n"
                                  "#bob:{PLAIN}commented\n"
                                  "alice:{PLAIN}first:1000:1000::/home/alice\n"
                                  "bob:{PLAIN}bobpw\r\n"
                                  "Alice:{PLAIN}upper\n"
                                  "alice:{PLAIN}second:2000:2000::/home/alice2\n"
                                  "carol@example.org:{PLAIN}c:::::: mail=maildir:/m/%d/%n\n"
                                  "dave:{PLAIN}d";

static void test_lookup(void **state)
{
	struct userdb_entry e;
	const char *error = NULL, *path;

	(void)state;
	path = write_file(passwd_file, sizeof(passwd_file) - 1);
	assert_int_equal(userdb_lookup(path, "alice", &e, &error), 1);
	assert_string_equal(e.pwhash, "{PLAIN}first");
	assert_int_equal(e.uid, 1000);
	assert_string_equal(e.home, "/home/alice");
	assert_int_equal(userdb_lookup(path, "bob", &e, &error), 1);
	assert_string_equal(e.pwhash, "{PLAIN}bobpw");
	assert_int_equal(userdb_lookup(path, "Alice", &e, &error), 1);
	assert_string_equal(e.pwhash, "{PLAIN}upper");
	assert_int_equal(userdb_lookup(path, "carol@example.org", &e, &error), 1);
	assert_string_equal(e.mail, "/m/%d/%n");
	assert_int_equal(userdb_lookup(path, "dave", &e, &error), 1);
	assert_string_equal(e.pwhash, "{PLAIN}d");
	assert_int_equal(userdb_lookup(path, "ALICE", &e, &error), 0);
	assert_int_equal(userdb_lookup(path, "alic", &e, &error), 0);
	assert_int_equal(userdb_lookup(path, "#bob", &e, &error), 0);
	assert_int_equal(userdb_lookup(path, "", &e, &error), 0);
	/* Nothing of the last line read stays behind. */
	assert_string_equal(e.pwhash, "");
	assert_int_equal(unlink(path), 0);

	assert_int_equal(userdb_lookup(path, "alice", &e, &error), -1);
	assert_non_null(strstr(error, "/passwd: No such file"));
}

static void test_lookup_broken(void **state)
{
	static const char data[] = "alice:{PLAIN}a\n"
	                           "   \n"
	                           "bob:{PLAIN}b:12x\n"
	                           "carol:{PLAIN}c\n";
	struct userdb_entry e;
	const char *error = NULL, *path;

	(void)state;
	path = write_file(data, sizeof(data) - 1);
	/* A user before the broken line is found; any lookup that reaches it reports it. */
	assert_int_equal(userdb_lookup(path, "alice", &e, &error), 1);
	assert_int_equal(userdb_lookup(path, "bob", &e, &error), -1);
	assert_non_null(strstr(error, "/passwd:2: "));
	assert_int_equal(userdb_lookup(path, "nobody", &e, &error), -1);
	path = write_file(data + 19, sizeof(data) - 20);
	assert_int_equal(userdb_lookup(path, "carol", &e, &error), -1);
	assert_non_null(strstr(error, "/passwd:1: uid or gid"));
	assert_int_equal(unlink(path), 0);
}

static void test_lookup_long_line(void **state)
{
	static char data[3 * USERDB_LINE_MAX];
	struct userdb_entry e;
	const char *error = NULL, *path;
	size_t n, start;

	(void)state;
	/* A line of USERDB_LINE_MAX bytes with its '\n' is accepted. */
	start = (size_t)snprintf(data, sizeof(data), "a:{PLAIN}a\n");
	n = start +
	    (size_t)snprintf(data + start, sizeof(data) - start, "long:{PLAIN}x:1:1::/h::k=");
	memset(data + n, 'v', start + USERDB_LINE_MAX - 1 - n);
	n = start + USERDB_LINE_MAX - 1;
	data[n++] = '\n';
	n += (size_t)snprintf(data + n, sizeof(data) - n, "z:{PLAIN}z\n");
	path = write_file(data, n);
	assert_int_equal(userdb_lookup(path, "long", &e, &error), 1);
	assert_int_equal(userdb_lookup(path, "z", &e, &error), 1);

	/* One byte more is refused with file:line. */
	n = start + USERDB_LINE_MAX - 1;
	data[n++] = 'v';
	data[n++] = '\n';
	n += (size_t)snprintf(data + n, sizeof(data) - n, "z:{PLAIN}z\n");
	path = write_file(data, n);
	assert_int_equal(userdb_lookup(path, "a", &e, &error), 1);
	assert_int_equal(userdb_lookup(path, "z", &e, &error), -1);
	assert_non_null(strstr(error, ":2: line too long"));

	/* Also when it is the last line and has no '\n'. */
	path = write_file(data, start + USERDB_LINE_MAX);
	assert_int_equal(userdb_lookup(path, "y", &e, &error), -1);
	assert_non_null(strstr(error, ":2: line too long"));

	/* A NUL byte in a line. */
	path = write_file("a:{PLAIN}a\0b\nz:{PLAIN}z\n", 24);
	assert_int_equal(userdb_lookup(path, "z", &e, &error), -1);
	assert_non_null(strstr(error, ":1: "));
	assert_int_equal(unlink(path), 0);
}

static void expand_ok(const char *tmpl, const char *user, const char *home, const char *want)
{
	struct userdb_entry e = {0};
	char out[GANNET_PATH_MAX];
	const char *error = NULL;

	snprintf(e.user, sizeof(e.user), "%s", user);
	snprintf(e.home, sizeof(e.home), "%s", home);
	if (userdb_mail_path(tmpl, &e, out, sizeof(out), &error) != 0)
		fail_msg("%s: %s", tmpl, error);
	assert_string_equal(out, want);
}

static void expand_bad(const char *tmpl, const char *user, const char *home, size_t size)
{
	struct userdb_entry e = {0};
	char out[GANNET_PATH_MAX];
	const char *error = NULL;

	snprintf(e.user, sizeof(e.user), "%s", user);
	snprintf(e.home, sizeof(e.home), "%s", home);
	if (userdb_mail_path(tmpl, &e, out, size, &error) != -1)
		fail_msg("%s accepted: %s", tmpl, out);
	assert_non_null(error);
}

static void test_mail_path(void **state)
{
	(void)state;
	expand_ok("maildir:/var/mail/%d/%n", "jo@ex.org", "", "/var/mail/ex.org/jo");
	expand_ok("/var/mail/%u/Maildir", "jo@ex.org", "", "/var/mail/jo@ex.org/Maildir");
	expand_ok("/var/mail/%d/%n", "jo", "", "/var/mail//jo");
	expand_ok("%h/Maildir", "jo", "/home/jo", "/home/jo/Maildir");
	expand_ok("~/Maildir", "jo", "/home/jo", "/home/jo/Maildir");
	expand_ok("/m/100%%/%n", "jo", "", "/m/100%/jo");
	expand_ok("/m/%%u", "jo", "", "/m/%u");
	expand_ok("/m/a..b/x.", "jo", "", "/m/a..b/x.");
	expand_ok("/m/%n", "jo", "", "/m/jo");
	expand_bad("/m/%q", "jo", "", GANNET_PATH_MAX);
	expand_bad("/m/%", "jo", "", GANNET_PATH_MAX);
	expand_bad("/m/%U", "jo", "", GANNET_PATH_MAX);
	expand_bad("Maildir/%n", "jo", "", GANNET_PATH_MAX);
	expand_bad("maildir:%n", "jo", "", GANNET_PATH_MAX);
	expand_bad("%h/Maildir", "jo", "", GANNET_PATH_MAX);
	expand_bad("%h/Maildir", "jo", "relative", GANNET_PATH_MAX);
	expand_bad("~/Maildir", "jo", "", GANNET_PATH_MAX);
	expand_bad("", "jo", "", GANNET_PATH_MAX);
	expand_bad("maildir:", "jo", "", GANNET_PATH_MAX);
	expand_bad("/m/../etc", "jo", "", GANNET_PATH_MAX);
	expand_bad("/m/..", "jo", "", GANNET_PATH_MAX);
	expand_bad("%h/../x", "jo", "/home/jo", GANNET_PATH_MAX);
	expand_bad("/var/mail/%n", "jo", "", 12);
	expand_ok("/var/mail/%n", "jo", "", "/var/mail/jo");
	expand_bad("/var/mail/%n", "jo", "", 0);
}

/* Verifiers from tests/unit/test_scram.c (RFC 5802 and RFC 7677 "pencil"). */
#define V1                                                                                         \
	"4096,QSXCR+Q6sek8bf92,e9d94660c39d65c38fbad91c358f14da0eef2bd6,"                          \
	"0fe09258b3ac852ba502cc62ba903eaacdbf7d31"
#define V256                                                                                       \
	"4096,W22ZaJ0SNY7soEsUEjb6gQ==,"                                                           \
	"586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6,"                        \
	"c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5"

static void test_scram_fields(void **state)
{
	struct userdb_entry e, f;
	char line[USERDB_LINE_MAX + 1];
	const char *error = NULL;

	(void)state;
	/* A Dovecot line without verifiers: both empty, nothing required. */
	assert_int_equal(
	    userdb_parse_line("u:{PLAIN}x:1:1::/h::userdb_mail=maildir:/m/u", &e, &error), 0);
	assert_string_equal(e.scram_sha1, "");
	assert_string_equal(e.scram_sha256, "");
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), 0);
	assert_string_equal(line, "u:{PLAIN}x:1:1::/h::userdb_mail=maildir:/m/u\n");

	/* Both, in any order, among other words that stay ignored. */
	assert_int_equal(userdb_parse_line("u:{PLAIN}x:1:1::/h::foo=bar scram-sha-256=" V256
	                                   "  userdb_mail=maildir:/m/u scram-sha-1=" V1 " nokey",
	                                   &e, &error),
	                 0);
	assert_string_equal(e.scram_sha1, V1);
	assert_string_equal(e.scram_sha256, V256);
	assert_string_equal(e.mail, "/m/u");
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), 0);
	assert_string_equal(line, "u:{PLAIN}x:1:1::/h::userdb_mail=maildir:/m/u scram-sha-1=" V1
	                          " scram-sha-256=" V256 "\n");
	line[strlen(line) - 1] = '\0';
	assert_int_equal(userdb_parse_line(line, &f, &error), 0);
	assert_memory_equal(&e, &f, sizeof(e));

	/* Without mail, and with only one of them. */
	assert_int_equal(userdb_parse_line("bob:{PLAIN}pw::::::scram-sha-256=" V256, &e, &error),
	                 0);
	assert_string_equal(e.scram_sha1, "");
	assert_string_equal(e.scram_sha256, V256);
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), 0);
	assert_string_equal(line, "bob:{PLAIN}pw::::::scram-sha-256=" V256 "\n");
	snprintf(e.scram_sha1, sizeof(e.scram_sha1), "%s", V1);
	e.scram_sha256[0] = '\0';
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), 0);
	assert_string_equal(line, "bob:{PLAIN}pw::::::scram-sha-1=" V1 "\n");

	/* A broken verifier in the entry is not written. */
	snprintf(e.scram_sha1, sizeof(e.scram_sha1), "4096,x x,y:z,w");
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), -1);
	snprintf(e.scram_sha1, sizeof(e.scram_sha1), "%s", V256);
	assert_int_equal(userdb_format_line(&e, line, sizeof(line)), -1);
}

static void scram_bad(const char *line, const char *want)
{
	struct userdb_entry e;
	const char *error = NULL;

	if (userdb_parse_line(line, &e, &error) != -1)
		fail_msg("accepted: %s", line);
	assert_non_null(error);
	if (strcmp(error, want) != 0)
		fail_msg("%s: error \"%s\", want \"%s\"", line, error, want);
}

static void test_scram_broken(void **state)
{
	char big[USERDB_LINE_MAX];
	struct userdb_entry e;
	const char *error = NULL, *path;

	(void)state;
	scram_bad("u:x::::::scram-sha-1=" V256,
	          "scram-sha-1=: key is not hex of the hash length (40 digits SHA-1, 64 SHA-256)");
	scram_bad(
	    "u:x::::::scram-sha-256=" V1,
	    "scram-sha-256=: key is not hex of the hash length (40 digits SHA-1, 64 SHA-256)");
	scram_bad("u:x::::::scram-sha-1=", "scram-sha-1=: empty verifier");
	scram_bad("u:x::::::scram-sha-256=1,2,3,4",
	          "scram-sha-256=: iteration count is not a decimal from 4096 to 1000000");
	scram_bad("u:x::::::scram-sha-1=" V1 " scram-sha-1=" V1, "scram-sha-1= given twice");
	snprintf(big, sizeof(big), "u:x::::::scram-sha-1=%0300d", 0);
	scram_bad(big, "scram-sha-1=: verifier longer than 256 bytes");
	/* Keys compare exactly: these are other words, ignored as before. */
	assert_int_equal(
	    userdb_parse_line("u:x::::::SCRAM-SHA-1=junk scram-sha-1x=junk", &e, &error), 0);
	assert_string_equal(e.scram_sha1, "");

	/* The lookup names file, line and field. */
	path = write_file("a:{PLAIN}a scram-sha-1=x\n"
	                  "b:{PLAIN}b::::::scram-sha-256=4096,AA==,00,00\n",
	                  71);
	assert_int_equal(userdb_lookup(path, "a", &e, &error), 1);
	assert_int_equal(userdb_lookup(path, "b", &e, &error), -1);
	assert_non_null(
	    strstr(error, "/passwd:2: scram-sha-256=: salt is not base64 of 8 to 45 bytes"));
	assert_string_equal(e.scram_sha256, "");
	assert_int_equal(unlink(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_name),    cmocka_unit_test(test_parse_full),
	    cmocka_unit_test(test_parse_short),   cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_format),        cmocka_unit_test(test_lookup),
	    cmocka_unit_test(test_lookup_broken), cmocka_unit_test(test_lookup_long_line),
	    cmocka_unit_test(test_mail_path),     cmocka_unit_test(test_scram_fields),
	    cmocka_unit_test(test_scram_broken),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
