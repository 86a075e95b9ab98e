/* RFC 6238 TOTP through liboath, otpauth URIs, QR codes in the terminal, and recovery codes. */
#include "totp.h"

#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <qrencode.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

/* RFC 4648 §6. */
static const char base32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* Crockford's base32 symbols: no I, L, O (read as 1 and 0) and no U, so a code copied from paper
 * has one reading. */
static const char recovery_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Bytes of randomness behind one recovery code: 16 symbols * 5 bits. */
#define RECOVERY_RANDOM_BYTES (TOTP_RECOVERY_SYMBOLS * 5 / 8)
/* Characters of "XXXX-XXXX-XXXX-XXXX", without the NUL. */
#define RECOVERY_SHOWN_LEN (TOTP_RECOVERY_SYMBOLS + TOTP_RECOVERY_SYMBOLS / TOTP_RECOVERY_GROUP - 1)

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_init_rc = OATH_CRYPTO_ERROR;

static void oath_init_once(void)
{
	/* liboath asks for oath_init before any other call; it is cheap and never undone, since
	 * other threads may still be verifying. */
	oath_init_rc = oath_init();
}

static bool secret_len_ok(size_t len)
{
	return len >= TOTP_SECRET_MIN && len <= TOTP_SECRET_MAX;
}

int totp_new_secret(unsigned char *secret, size_t len)
{
	if (secret == NULL || !secret_len_ok(len))
		return -1;
	if (RAND_bytes(secret, (int)len) != 1) {
		explicit_bzero(secret, len);
		return -1;
	}
	return 0;
}

int totp_base32_encode(const unsigned char *secret, size_t len, char *out, size_t size)
{
	size_t i, o = 0, need;
	unsigned int acc = 0, bits = 0;

	if (secret == NULL || out == NULL || len == 0 || len > TOTP_SECRET_MAX)
		return -1;
	need = (len * 8 + 4) / 5 + 1;
	if (size < need) {
		if (size > 0)
			out[0] = '\0';
		return -1;
	}
	for (i = 0; i < len; i++) {
		acc = (acc << 8 | secret[i]) & 0xfff;
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = base32_alphabet[(acc >> bits) & 0x1f];
		}
	}
	if (bits > 0)
		out[o++] = base32_alphabet[(acc << (5 - bits)) & 0x1f];
	out[o] = '\0';
	return 0;
}

static int base32_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

int totp_base32_decode(const char *b32, unsigned char *secret, size_t size, size_t *len_r)
{
	size_t n, i, o = 0;
	unsigned int acc = 0, bits = 0;
	int v;

	if (b32 == NULL || secret == NULL || len_r == NULL)
		return -1;
	/* Never scan further than a secret that fits could reach. */
	n = strnlen(b32, TOTP_BASE32_MAX);
	if (n == 0 || n >= TOTP_BASE32_MAX)
		return -1;
	/* RFC 4648 §6: 1, 3 and 6 trailing characters cannot come from whole bytes. */
	if (n % 8 == 1 || n % 8 == 3 || n % 8 == 6)
		return -1;
	if (n * 5 / 8 > size)
		return -1;
	for (i = 0; i < n; i++) {
		v = base32_value(b32[i]);
		if (v < 0)
			goto bad;
		acc = (acc << 5 | (unsigned int)v) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			secret[o++] = (unsigned char)(acc >> bits);
		}
	}
	/* Leftover bits must be zero (RFC 4648 §3.5), or two spellings would decode alike. */
	if ((acc & ((1u << bits) - 1)) != 0)
		goto bad;
	*len_r = o;
	return 0;
bad:
	explicit_bzero(secret, o);
	return -1;
}

/* liboath compares the code with strcmp, which stops at the first wrong digit; compare all of
 * them so the time taken says nothing about how close a guess was. */
static int otp_compare_cb(void *handle, const char *test_otp)
{
	const char *code = handle;

	if (strlen(test_otp) != TOTP_DIGITS)
		return -1;
	return CRYPTO_memcmp(code, test_otp, TOTP_DIGITS) == 0 ? 0 : 1;
}

int totp_verify(const unsigned char *secret, size_t len, const char *code, time_t now,
                int64_t last_step, int64_t *step_r)
{
	char buf[TOTP_DIGITS + 1];
	uint64_t counter = 0;
	int64_t step;
	int pos = 0, rc;
	size_t i;

	if (secret == NULL || code == NULL || step_r == NULL || !secret_len_ok(len) || now < 0 ||
	    last_step < -1)
		return -1;
	if (strnlen(code, TOTP_DIGITS + 1) != TOTP_DIGITS)
		return 0;
	for (i = 0; i < TOTP_DIGITS; i++) {
		if (code[i] < '0' || code[i] > '9')
			return 0;
		buf[i] = code[i];
	}
	buf[TOTP_DIGITS] = '\0';
	pthread_once(&oath_once, oath_init_once);
	if (oath_init_rc != OATH_OK)
		return -1;
	rc = oath_totp_validate3_callback((const char *)secret, len, now, TOTP_STEP,
	                                  OATH_TOTP_DEFAULT_START_TIME, TOTP_DIGITS, TOTP_WINDOW,
	                                  &pos, &counter, otp_compare_cb, buf);
	explicit_bzero(buf, sizeof(buf));
	if (rc == OATH_INVALID_OTP)
		return 0;
	if (rc < 0 || pos < -TOTP_WINDOW || pos > TOTP_WINDOW)
		return -1;
	step = (int64_t)(now / TOTP_STEP) + pos;
	/* The counter liboath reports must agree with the position, or we misread its API. */
	if (step < 0 || (uint64_t)step != counter)
		return -1;
	/* RFC 6238 §5.2: a code is accepted once; anything at or before the last step is a replay.
	 */
	if (step <= last_step)
		return 0;
	*step_r = step;
	return 1;
}

/* Append S (N bytes) to OUT at *O, keeping room for the NUL. */
static bool put(char *out, size_t size, size_t *o, const char *s, size_t n)
{
	if (n >= size - *o)
		return false;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
	return true;
}

static bool put_str(char *out, size_t size, size_t *o, const char *s)
{
	return put(out, size, o, s, strlen(s));
}

/* RFC 3986 §2.3 unreserved characters pass; every other byte becomes %XX (upper case, §2.1). */
static bool put_pct(char *out, size_t size, size_t *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char esc[3];

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			if (!put(out, size, o, s, 1))
				return false;
		} else {
			esc[0] = '%';
			esc[1] = hex[c >> 4];
			esc[2] = hex[c & 0xf];
			if (!put(out, size, o, esc, 3))
				return false;
		}
	}
	return true;
}

/* A label part: non-empty, no control characters (they would show as garbage in the app), and no
 * longer than a URI could hold. */
static bool label_ok(const char *s)
{
	size_t n = strnlen(s, TOTP_URI_MAX);

	if (n == 0 || n >= TOTP_URI_MAX)
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int totp_uri(const char *issuer, const char *account, const unsigned char *secret, size_t len,
             char *out, size_t size)
{
	char b32[TOTP_BASE32_MAX];
	size_t o = 0;
	bool ok;

	if (out == NULL || size == 0)
		return -1;
	out[0] = '\0';
	if (issuer == NULL || account == NULL || secret == NULL || !secret_len_ok(len) ||
	    !label_ok(issuer) || !label_ok(account))
		return -1;
	if (totp_base32_encode(secret, len, b32, sizeof(b32)) != 0)
		return -1;
	/* The key URI format (Google Authenticator wiki): the label is "issuer:account" with a
	 * literal colon, and the issuer parameter repeats the issuer for apps that read only it. */
	ok = put_str(out, size, &o, "otpauth://totp/") && put_pct(out, size, &o, issuer) &&
	     put_str(out, size, &o, ":") && put_pct(out, size, &o, account) &&
	     put_str(out, size, &o, "?secret=") && put_str(out, size, &o, b32) &&
	     put_str(out, size, &o, "&issuer=") && put_pct(out, size, &o, issuer) &&
	     put_str(out, size, &o, "&algorithm=SHA1&digits=6&period=30");
	explicit_bzero(b32, sizeof(b32));
	if (!ok) {
		/* A truncated URI still holds part of the secret. */
		explicit_bzero(out, size);
		return -1;
	}
	return 0;
}

/* Is the module at (X, Y) of the quiet-zone-padded symbol dark? */
static bool qr_dark(const QRcode *qr, int x, int y)
{
	x -= TOTP_QR_QUIET;
	y -= TOTP_QR_QUIET;
	if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
		return false;
	return (qr->data[(size_t)y * (size_t)qr->width + (size_t)x] & 1) != 0;
}

int totp_qr_print(FILE *f, const char *text)
{
	/* Light modules are drawn, dark ones left blank: in a terminal's default colours (or the
	 * forced ones below) that is dark-on-light, which every phone camera decodes. */
	static const char *const cell[4] = {
	    "\xe2\x96\x88", /* both light: full block */
	    "\xe2\x96\x84", /* top dark: lower half block */
	    "\xe2\x96\x80", /* bottom dark: upper half block */
	    " ",            /* both dark */
	};
	const char *on = "", *off = "";
	QRcode *qr;
	size_t n;
	int x, y, side, rc = -1;

	if (f == NULL || text == NULL)
		return -1;
	n = strnlen(text, TOTP_QR_TEXT_MAX + 1);
	if (n == 0 || n > TOTP_QR_TEXT_MAX)
		return -1;
	qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (qr == NULL)
		return -1;
	if (isatty(fileno(f))) {
		/* Bright white on black, so a light-themed terminal does not invert the code. */
		on = "\033[97;40m";
		off = "\033[0m";
	}
	side = qr->width + 2 * TOTP_QR_QUIET;
	for (y = 0; y < side; y += 2) {
		if (fputs(on, f) == EOF)
			goto out;
		for (x = 0; x < side; x++) {
			/* A last half row past the symbol counts as quiet zone: light. */
			int c = (qr_dark(qr, x, y) ? 1 : 0) | (qr_dark(qr, x, y + 1) ? 2 : 0);

			if (fputs(cell[c], f) == EOF)
				goto out;
		}
		if (fputs(off, f) == EOF || fputc('\n', f) == EOF)
			goto out;
	}
	if (fflush(f) == 0 && !ferror(f))
		rc = 0;
out:
	QRcode_free(qr);
	return rc;
}

int totp_recovery_new(char *code, size_t size)
{
	unsigned char rnd[RECOVERY_RANDOM_BYTES];
	unsigned int acc = 0, bits = 0;
	size_t i, o = 0, sym = 0;

	if (code == NULL || size < RECOVERY_SHOWN_LEN + 1)
		return -1;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		explicit_bzero(rnd, sizeof(rnd));
		code[0] = '\0';
		return -1;
	}
	for (i = 0; i < sizeof(rnd); i++) {
		acc = (acc << 8 | rnd[i]) & 0xfff;
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			if (sym > 0 && sym % TOTP_RECOVERY_GROUP == 0)
				code[o++] = '-';
			code[o++] = recovery_alphabet[(acc >> bits) & 0x1f];
			sym++;
		}
	}
	code[o] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
	explicit_bzero(&acc, sizeof(acc));
	return 0;
}

int totp_code_normalise(const char *in, char *out, size_t size)
{
	size_t o = 0;

	if (in == NULL || out == NULL || size == 0)
		return -1;
	if (strnlen(in, TOTP_TYPED_MAX + 1) > TOTP_TYPED_MAX)
		goto bad;
	for (; *in != '\0'; in++) {
		char c = *in;

		if (c == '-' || c == ' ')
			continue;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9'))
			goto bad;
		if (o + 1 >= size)
			goto bad;
		out[o++] = c;
	}
	if (o == 0)
		goto bad;
	out[o] = '\0';
	return 0;
bad:
	/* OUT may hold part of a secret. */
	explicit_bzero(out, size);
	return -1;
}

int totp_split(const char *pw, size_t len, size_t *pwlen_r, char code[TOTP_DIGITS + 1])
{
	size_t i;

	if (pw == NULL || pwlen_r == NULL || code == NULL || len <= TOTP_DIGITS)
		return 0;
	for (i = len - TOTP_DIGITS; i < len; i++)
		if (pw[i] < '0' || pw[i] > '9')
			return 0;
	memcpy(code, pw + len - TOTP_DIGITS, TOTP_DIGITS);
	code[TOTP_DIGITS] = '\0';
	*pwlen_r = len - TOTP_DIGITS;
	return 1;
}
