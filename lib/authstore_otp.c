/* The account-security store, second half: TOTP records and APOP secrets (see authstore.c for
 * the files, the lock and the rewrite). */
#include "authstore.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authstore_int.h"
#include "strnum.h"
#include "totp.h"
#include "userdb.h"

/* --- TOTP */

int totpstore_hash_recovery(const char *code, char *out, size_t size, const char **error_r)
{
	char norm[TOTP_RECOVERY_TEXT_MAX];
	int r;

	if (code == NULL || strlen(code) > TOTP_TYPED_MAX ||
	    totp_code_normalise(code, norm, sizeof(norm)) < 0)
		return as_fail(error_r, "not a recovery code");
	r = authstore_hash(norm, strlen(norm), out, size, error_r);
	explicit_bzero(norm, sizeof(norm));
	return r;
}

static int totp_parse(struct sfile *f, struct totp_record *r, const char **error_r)
{
	char *fld[FIELDS_MAX];
	size_t n;

	memset(r, 0, sizeof(*r));
	if (as_sf_fields(f, fld, 4, FIELDS_MAX, &n, error_r) < 0)
		return -1;
	if (strcmp(fld[1], "active") != 0 && strcmp(fld[1], "pending") != 0)
		return as_fail_line(f, "state is neither active nor pending", error_r);
	r->active = fld[1][0] == 'a';
	if (totp_base32_decode(fld[2], r->secret, sizeof(r->secret), &r->secret_len) < 0 ||
	    r->secret_len < TOTP_SECRET_MIN) {
		explicit_bzero(r->secret, sizeof(r->secret));
		return as_fail_line(f, "bad base32 secret", error_r);
	}
	if (as_parse_i64(fld[3], &r->last_step) < 0)
		return as_fail_line(f, "bad time step", error_r);
	for (size_t i = 4; i < n; i++) {
		if (!as_hash_well_formed(fld[i]))
			return as_fail_line(f, "bad recovery verifier", error_r);
		snprintf(r->recovery[r->n_recovery++], sizeof(r->recovery[0]), "%s", fld[i]);
	}
	snprintf(r->user, sizeof(r->user), "%s", fld[0]);
	return 0;
}

static int totp_emit(struct sfile *f, const struct totp_record *r, const char **error_r)
{
	char line[AUTHSTORE_LINE_MAX], b32[TOTP_BASE32_MAX];
	size_t n;
	int w;

	if (as_check_user(r->user, error_r) < 0)
		return -1;
	if (r->secret_len < TOTP_SECRET_MIN || r->secret_len > TOTP_SECRET_LEN ||
	    r->last_step < 0 || r->n_recovery > TOTP_RECOVERY_CODES)
		return as_fail(error_r, "invalid TOTP record");
	if (totp_base32_encode(r->secret, r->secret_len, b32, sizeof(b32)) < 0)
		return as_fail(error_r, "base32 encoding failed");
	w = snprintf(line, sizeof(line), "%s %s %s %lld", r->user, r->active ? "active" : "pending",
	             b32, (long long)r->last_step);
	explicit_bzero(b32, sizeof(b32));
	n = (size_t)w;
	for (size_t i = 0; w >= 0 && i < r->n_recovery; i++) {
		/* Cannot overflow with validated fields (see AUTHSTORE_LINE_MAX); checked anyway.
		 */
		if (!as_hash_well_formed(r->recovery[i]) ||
		    n + 2 + AUTHSTORE_HASH_TEXT > sizeof(line)) {
			explicit_bzero(line, sizeof(line));
			return as_fail(error_r, "invalid recovery verifier");
		}
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", r->recovery[i]);
	}
	if (w < 0 || n + 1 > sizeof(line)) {
		explicit_bzero(line, sizeof(line));
		return as_fail(error_r, "TOTP record too long");
	}
	w = as_out_add(f, line, n, error_r);
	explicit_bzero(line, sizeof(line));
	return w;
}

enum totp_op { TOTP_GET, TOTP_PUT, TOTP_DEL, TOTP_CODE, TOTP_RECOVERY };

struct totp_req {
	enum totp_op op;
	const struct totp_record *put;
	const char *code;
	time_t now;
};

/* One pass over the TOTP file under the lock, doing REQ for USER. */
static int totp_run(const char *dir, const char *user, struct totp_req *req,
                    struct totp_record *out, const char **error_r)
{
	struct sfile f;
	struct totp_record r;
	char norm[TOTP_RECOVERY_TEXT_MAX];
	int64_t step;
	int n, found = 0, result = 0;
	bool changed = false;

	if (as_check_user(user, error_r) < 0)
		return -1;
	if (req->op == TOTP_RECOVERY && (strlen(req->code) > TOTP_TYPED_MAX ||
	                                 totp_code_normalise(req->code, norm, sizeof(norm)) < 0))
		return 0;
	if (as_sf_open(&f, dir, KIND_TOTP, req->op != TOTP_GET, error_r) < 0)
		return -1;
	while ((n = as_sf_next(&f, error_r)) == 1) {
		if (totp_parse(&f, &r, error_r) < 0)
			goto fail;
		if (strcmp(r.user, user) != 0) {
			if (totp_emit(&f, &r, error_r) < 0)
				goto fail;
			continue;
		}
		if (found) {
			as_fail_line(&f, "second record for the same user", error_r);
			goto fail;
		}
		found = 1;
		switch (req->op) {
		case TOTP_GET:
			*out = r;
			result = 1;
			break;
		case TOTP_PUT:
			r = *req->put;
			changed = true;
			break;
		case TOTP_DEL:
			result = 1;
			changed = true;
			continue; /* not emitted */
		case TOTP_CODE:
			if (!r.active)
				break;
			result = totp_verify(r.secret, r.secret_len, req->code, req->now,
			                     r.last_step, &step);
			if (result < 0) {
				as_fail(error_r, "TOTP verification failed for %s", user);
				goto fail;
			}
			if (result == 1) {
				r.last_step = step;
				changed = true;
			}
			break;
		case TOTP_RECOVERY:
			for (size_t i = 0; r.active && result == 0 && i < r.n_recovery; i++) {
				result = authstore_hash_verify(norm, strlen(norm), r.recovery[i],
				                               error_r);
				if (result < 0)
					goto fail;
				if (result == 1) {
					memmove(r.recovery[i], r.recovery[i + 1],
					        (r.n_recovery - i - 1) * sizeof(r.recovery[0]));
					r.n_recovery--;
					changed = true;
				}
			}
			break;
		}
		if (totp_emit(&f, &r, error_r) < 0)
			goto fail;
	}
	if (n < 0)
		goto fail;
	if (req->op == TOTP_PUT && !found) {
		if (totp_emit(&f, req->put, error_r) < 0)
			goto fail;
		changed = true;
	}
	if (changed && as_sf_commit(&f, error_r) < 0)
		goto fail;
	as_sf_close(&f);
	explicit_bzero(&r, sizeof(r));
	explicit_bzero(norm, sizeof(norm));
	return result;
fail:
	as_sf_close(&f);
	explicit_bzero(&r, sizeof(r));
	explicit_bzero(norm, sizeof(norm));
	if (out != NULL)
		explicit_bzero(out, sizeof(*out));
	return -1;
}

int totpstore_get(const char *dir, const char *user, struct totp_record *r, const char **error_r)
{
	struct totp_req req = {.op = TOTP_GET};

	memset(r, 0, sizeof(*r));
	return totp_run(dir, user, &req, r, error_r);
}

int totpstore_put(const char *dir, const struct totp_record *r, const char **error_r)
{
	struct totp_req req = {.op = TOTP_PUT, .put = r};

	if (as_check_user(r->user, error_r) < 0)
		return -1;
	if (r->secret_len < TOTP_SECRET_MIN || r->secret_len > TOTP_SECRET_LEN ||
	    r->last_step < 0 || r->n_recovery > TOTP_RECOVERY_CODES)
		return as_fail(error_r, "invalid TOTP record");
	for (size_t i = 0; i < r->n_recovery; i++) {
		if (!as_hash_well_formed(r->recovery[i]))
			return as_fail(error_r, "invalid recovery verifier");
	}
	return totp_run(dir, r->user, &req, NULL, error_r) < 0 ? -1 : 0;
}

int totpstore_del(const char *dir, const char *user, const char **error_r)
{
	struct totp_req req = {.op = TOTP_DEL};

	return totp_run(dir, user, &req, NULL, error_r);
}

int totpstore_check_code(const char *dir, const char *user, const char *code, time_t now,
                         const char **error_r)
{
	struct totp_req req = {.op = TOTP_CODE, .code = code, .now = now};

	if (code == NULL || now < 0)
		return as_fail(error_r, "totpstore_check_code: no code or bad time");
	return totp_run(dir, user, &req, NULL, error_r);
}

int totpstore_use_recovery(const char *dir, const char *user, const char *code,
                           const char **error_r)
{
	struct totp_req req = {.op = TOTP_RECOVERY, .code = code};

	if (code == NULL)
		return as_fail(error_r, "totpstore_use_recovery: no code");
	return totp_run(dir, user, &req, NULL, error_r);
}

/* --- APOP */

/* Strict base64 (RFC 4648 §4, with padding) of 1..APOP_SECRET_MAX bytes without NUL. */
static int b64_decode(const char *in, char *out, size_t size, size_t *len_r)
{
	size_t n = strlen(in), pad = 0;
	int r;

	if (n == 0 || n % 4 != 0 || n / 4 * 3 > size ||
	    strspn(in, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
		return -1;
	while (pad < 2 && in[n - 1 - pad] == '=')
		pad++;
	if (memchr(in, '=', n - pad) != NULL)
		return -1;
	r = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
	if (r < 0 || (size_t)r < pad || (size_t)r - pad == 0) {
		explicit_bzero(out, size);
		return -1;
	}
	*len_r = (size_t)r - pad;
	if (memchr(out, '\0', *len_r) != NULL) {
		explicit_bzero(out, size);
		return -1;
	}
	return 0;
}

enum apop_op { APOP_GET, APOP_SET, APOP_DEL };

static int apop_run(const char *dir, const char *user, enum apop_op op, const char *line_new,
                    char *secret, size_t size, size_t *len_r, const char **error_r)
{
	struct sfile f;
	char *fld[2], buf[APOP_SECRET_MAX + 3];
	size_t n, len;
	int r, found = 0;
	bool changed = false;

	if (as_check_user(user, error_r) < 0)
		return -1;
	if (as_sf_open(&f, dir, KIND_APOP, op != APOP_GET, error_r) < 0)
		return -1;
	while ((r = as_sf_next(&f, error_r)) == 1) {
		if ((r = as_sf_fields(&f, fld, 2, 2, &n, error_r)) < 0)
			break;
		if (b64_decode(fld[1], buf, sizeof(buf), &len) < 0 || len > APOP_SECRET_MAX) {
			r = as_fail_line(&f, "bad base64 secret", error_r);
			break;
		}
		if (strcmp(fld[0], user) != 0) {
			fld[0][strlen(fld[0])] = ' ';
			if ((r = as_sf_keep(&f, error_r)) < 0)
				break;
			continue;
		}
		if (found) {
			r = as_fail_line(&f, "second record for the same user", error_r);
			break;
		}
		found = 1;
		if (op == APOP_GET) {
			if (len + 1 > size) {
				r = as_fail(error_r, "APOP secret of %s longer than the buffer",
				            user);
				break;
			}
			memcpy(secret, buf, len);
			secret[len] = '\0';
			*len_r = len;
		} else if (op == APOP_SET) {
			changed = true;
			if ((r = as_out_add(&f, line_new, strlen(line_new), error_r)) < 0)
				break;
		} else {
			changed = true;
		}
	}
	explicit_bzero(buf, sizeof(buf));
	if (r == 0 && op == APOP_SET && !found) {
		changed = true;
		r = as_out_add(&f, line_new, strlen(line_new), error_r);
	}
	if (r == 0 && changed)
		r = as_sf_commit(&f, error_r);
	as_sf_close(&f);
	if (r < 0 && op == APOP_GET)
		explicit_bzero(secret, size);
	return r < 0 ? -1 : found;
}

int apop_set(const char *dir, const char *user, const char *secret, size_t len,
             const char **error_r)
{
	/* USER, ' ', base64 of at most APOP_SECRET_MAX bytes, NUL. */
	char line[USERNAME_MAX + 2 + (APOP_SECRET_MAX + 2) / 3 * 4 + 1];
	size_t ulen;
	int r;

	if (as_check_user(user, error_r) < 0)
		return -1;
	if (secret == NULL || len == 0 || len > APOP_SECRET_MAX || memchr(secret, '\0', len))
		return as_fail(error_r, "APOP secret must be 1 to %d bytes without NUL",
		               APOP_SECRET_MAX);
	ulen = strlen(user);
	memcpy(line, user, ulen);
	line[ulen] = ' ';
	EVP_EncodeBlock((unsigned char *)line + ulen + 1, (const unsigned char *)secret, (int)len);
	r = apop_run(dir, user, APOP_SET, line, NULL, 0, NULL, error_r);
	explicit_bzero(line, sizeof(line));
	return r < 0 ? -1 : 0;
}

int apop_del(const char *dir, const char *user, const char **error_r)
{
	return apop_run(dir, user, APOP_DEL, NULL, NULL, 0, NULL, error_r);
}

int apop_get(const char *dir, const char *user, char *secret, size_t size, size_t *len_r,
             const char **error_r)
{
	if (size == 0)
		return as_fail(error_r, "apop_get: no buffer");
	*len_r = 0;
	secret[0] = '\0';
	return apop_run(dir, user, APOP_GET, NULL, secret, size, len_r, error_r);
}
