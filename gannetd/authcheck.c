/* Credential checks for the auth process (see authcheck.h). Every path that can fail costs the
 * same whether or not the user exists: unknown users verify a dummy hash, and SCRAM answers
 * them with a salt derived from a process secret, so the exchange fails only at the proof. */
#include "authcheck.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsasl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "authcache.h"
#include "authstore.h"
#include "log.h"
#include "mechs.h"
#include "oauth.h"
#include "pamworker.h"
#include "pwhash.h"
#include "scram.h"
#include "totp.h"

enum mech {
	MECH_PLAIN,
	MECH_LOGIN,
	MECH_SCRAM_SHA1,
	MECH_SCRAM_SHA1_PLUS,
	MECH_SCRAM_SHA256,
	MECH_SCRAM_SHA256_PLUS,
	MECH_OAUTHBEARER,
	MECH_XOAUTH2,
};

static const struct {
	const char *name;
	enum mech mech;
	bool gsasl; /* run by GNU SASL */
} mechs[] = {
    {"PLAIN", MECH_PLAIN, true},
    {"LOGIN", MECH_LOGIN, true},
    {"SCRAM-SHA-1", MECH_SCRAM_SHA1, true},
    {"SCRAM-SHA-1-PLUS", MECH_SCRAM_SHA1_PLUS, true},
    {"SCRAM-SHA-256", MECH_SCRAM_SHA256, true},
    {"SCRAM-SHA-256-PLUS", MECH_SCRAM_SHA256_PLUS, true},
    {"OAUTHBEARER", MECH_OAUTHBEARER, false},
    {"XOAUTH2", MECH_XOAUTH2, false},
};
#define NMECHS (sizeof(mechs) / sizeof(mechs[0]))

struct sasl_state {
	enum mech mech;
	const char *name;
	Gsasl_session *gs;  /* NULL for the OAuth mechanisms */
	struct auth_job *j; /* the job running a step, for the GNU SASL callback */
	unsigned steps;
	/* SCRAM: verifier looked up once per exchange */
	bool scram_loaded;
	bool scram_real; /* a real verifier of a user who may use SCRAM */
	struct scram_secret scram;
	/* channel binding of the client's TLS connection, for GNU SASL */
	char cb_type[16];
	char cb_b64[4 * ((CB_DATA_MAX + 2) / 3) + 1];
	/* OAuth: the error JSON went out; the client's dummy reply ends in failure */
	bool oauth_failed;
	char oauth_reason[64];
};

static const struct conf *conf;
static Gsasl *gsasl_ctx;
static struct oauth_keys *oauth_keys;
/* Keys the fake SCRAM salts of users without a verifier; random per process. */
static unsigned char fake_key[32];

static void set_reason(struct auth_job *j, const char *why)
{
	log_sanitize(j->reason, sizeof(j->reason), why, strlen(why));
}

static void fail(struct auth_job *j, enum auth_result result, const char *why)
{
	j->result = result;
	set_reason(j, why);
}

/* Look the user up and expand the mail path. 1 found, 0 unknown (FAIL set), -1 TEMPFAIL set. */
static int lookup(struct auth_job *j)
{
	const char *error = NULL;
	int found = userdb_lookup(conf->userdb, j->user, &j->entry, &error);

	if (found < 0) {
		fail(j, AUTH_TEMPFAIL, error);
		return -1;
	}
	if (found == 0) {
		fail(j, AUTH_FAIL, "unknown_user");
		return 0;
	}
	if (userdb_mail_path(j->entry.mail[0] ? j->entry.mail : conf->mail_location, &j->entry,
	                     j->maildir, sizeof(j->maildir), &error) < 0) {
		fail(j, AUTH_TEMPFAIL, error);
		return -1;
	}
	return 1;
}

/* 1 when the user has TOTP switched on, 0 when not, -1 on a store error (TEMPFAIL set). */
static int totp_active(struct auth_job *j)
{
	struct totp_record rec;
	const char *error = NULL;
	int r = totpstore_get(conf->auth_dir, j->user, &rec, &error);

	if (r < 0) {
		fail(j, AUTH_TEMPFAIL, error);
		return -1;
	}
	r = r == 1 && rec.active;
	explicit_bzero(&rec, sizeof(rec));
	return r;
}

static void append_method(struct auth_job *j, const char *what)
{
	size_t n = strlen(j->method);
	snprintf(j->method + n, sizeof(j->method) - n, "%s", what);
}

/* With TOTP on, a password must end in the current code ("secret123456") or in a recovery code
 * as printed ("secretABCD-EFGH-JKLM-NPQR"). The account password alone never opens POP3. */
static void check_with_totp(struct auth_job *j, const char *pw, size_t len)
{
	const char *error = NULL;
	char code[TOTP_DIGITS + 1];
	size_t pwlen;
	int r;

	if (totp_split(pw, len, &pwlen, code) == 1) {
		if (pwhash_verify(pw, pwlen, j->entry.pwhash, &error) != 1) {
			fail(j, AUTH_FAIL, "wrong_password");
			return;
		}
		r = totpstore_check_code(conf->auth_dir, j->user, code, time(NULL), &error);
		if (r < 0)
			fail(j, AUTH_TEMPFAIL, error);
		else if (r == 0)
			fail(j, AUTH_FAIL, "totp_code_wrong_or_reused");
		else {
			j->result = AUTH_OK;
			append_method(j, "+totp");
		}
		return;
	}
	/* XXXX-XXXX-XXXX-XXXX: 19 characters with dashes at 4, 9 and 14. */
	if (len > 19 && pw[len - 15] == '-' && pw[len - 10] == '-' && pw[len - 5] == '-') {
		char rc[20];

		memcpy(rc, pw + len - 19, 19);
		rc[19] = '\0';
		if (pwhash_verify(pw, len - 19, j->entry.pwhash, &error) != 1) {
			explicit_bzero(rc, sizeof(rc));
			fail(j, AUTH_FAIL, "wrong_password");
			return;
		}
		r = totpstore_use_recovery(conf->auth_dir, j->user, rc, &error);
		explicit_bzero(rc, sizeof(rc));
		if (r < 0)
			fail(j, AUTH_TEMPFAIL, error);
		else if (r == 0)
			fail(j, AUTH_FAIL, "recovery_code_wrong_or_used");
		else {
			j->result = AUTH_OK;
			append_method(j, "+recovery-code");
			char safe[4 * USERNAME_MAX + 1];

			log_sanitize(safe, sizeof(safe), j->user, strlen(j->user));
			log_warnx("session=%s ip=%s event=recovery_code_used user=%s", j->session,
			          j->ip, safe);
		}
		return;
	}
	pwhash_dummy_verify(pw, len);
	fail(j, AUTH_FAIL, "totp_required");
}

/* --- the verified-credential cache (authcache.c) ----------------------------------------- */

static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_init(void)
{
	const char *error = NULL;

	if (authcache_init(conf->userdb, conf->auth_cache_ttl, conf->auth_cache_size, &error) < 0)
		log_warnx("event=auth_cache_disabled reason=\"%s\"", error);
}

/* Only the account password of a user without TOTP comes here, after the app passwords and
 * the TOTP check ran against the current store: the cache can never stand in for either. */
static bool cache_hit(struct auth_job *j, const char *pw, size_t len)
{
	pthread_once(&cache_once, cache_init);
	if (authcache_lookup(j->entry.user, pw, len, j->entry.pwhash) != 1)
		return false;
	{
		char safe[4 * USERNAME_MAX + 1];

		log_sanitize(safe, sizeof(safe), j->entry.user, strlen(j->entry.user));
		log_debug("session=%s ip=%s event=auth_cache_hit user=%s", j->session, j->ip, safe);
	}
	return true;
}

/* --- system accounts (system_users = yes): getpwnam and PAM in the root PAM workers ------- */

/* system_mail_location for J's account; "mbox:" stays in front, so the mail process knows the
 * path is an mbox file. 0, or -1 with a static *ERROR_R. */
static int system_mail_path(struct auth_job *j, const char **error_r)
{
	const char *t = conf->system_mail_location;
	bool mbox = strncmp(t, "mbox:", 5) == 0;
	char path[GANNET_PATH_MAX];
	int n;

	if (userdb_mail_path(mbox ? t + 5 : t, &j->entry, path, sizeof(path), error_r) < 0)
		return -1;
	n = snprintf(j->maildir, sizeof(j->maildir), "%s%s", mbox ? "mbox:" : "", path);
	if (n < 0 || (size_t)n >= sizeof(j->maildir)) {
		*error_r = "system_mail_location too long";
		return -1;
	}
	return 0;
}

/* A name that is not in the user file may be a system account. There is no stored verifier,
 * so only the password mechanisms come here (SCRAM and APOP fail as for an unknown user), and
 * no app passwords, TOTP or cache: PAM is the whole policy. An unknown account, or one outside
 * first/last_valid_uid, gets the unknown-user answer and cost. */
static void check_system(struct auth_job *j, const char *pw, size_t len)
{
	struct pamw_account acct;
	const char *why = NULL, *error = NULL;

	switch (pamw_check(j->user, pw, len, j->ip, &acct, &why)) {
	case PAMW_OK:
		break;
	case PAMW_UNKNOWN:
		pwhash_dummy_verify(pw, len);
		fail(j, AUTH_FAIL, why);
		return;
	case PAMW_FAIL:
		fail(j, AUTH_FAIL, why);
		return;
	default:
		fail(j, AUTH_TEMPFAIL, why);
		return;
	}
	memset(&j->entry, 0, sizeof(j->entry));
	snprintf(j->entry.user, sizeof(j->entry.user), "%s", j->user);
	j->entry.uid = acct.uid;
	j->entry.gid = acct.gid;
	snprintf(j->entry.home, sizeof(j->entry.home), "%s", acct.home);
	if (system_mail_path(j, &error) < 0) {
		fail(j, AUTH_TEMPFAIL, error);
		return;
	}
	j->result = AUTH_OK;
	append_method(j, "+pam");
}

/* The password check behind PASS, PLAIN and LOGIN: app passwords first (a fast salted hash),
 * then the account password, with TOTP when the user turned it on. Sets J's result. */
static void check_password(struct auth_job *j, const char *pw, size_t len)
{
	const char *error = NULL;
	char name[64];
	int r;

	if (len > PASSWORD_MAX) {
		pwhash_dummy_verify(pw, PASSWORD_MAX);
		fail(j, AUTH_FAIL, "password_too_long");
		return;
	}
	if ((r = lookup(j)) <= 0) {
		if (r == 0 && conf->system_users) {
			check_system(j, pw, len);
			return;
		}
		pwhash_dummy_verify(pw, len);
		return;
	}
	r = apppw_verify(conf->auth_dir, j->user, pw, len, j->ip, time(NULL), name, sizeof(name),
	                 &error);
	if (r < 0) {
		fail(j, AUTH_TEMPFAIL, error);
		return;
	}
	if (r == 1) {
		j->result = AUTH_OK;
		append_method(j, "+app-password=");
		append_method(j, name);
		return;
	}
	if ((r = totp_active(j)) < 0)
		return;
	if (r == 1) {
		check_with_totp(j, pw, len);
		return;
	}
	/* A hit only ever says "this password verified against this very hash within the TTL";
	 * failures are never cached, so the brute-force defence sees each one. */
	if (cache_hit(j, pw, len)) {
		j->result = AUTH_OK;
		return;
	}
	switch (pwhash_verify(pw, len, j->entry.pwhash, &error)) {
	case 1:
		j->result = AUTH_OK;
		authcache_add(j->entry.user, pw, len, j->entry.pwhash);
		return;
	case 0:
		fail(j, AUTH_FAIL, "wrong_password");
		return;
	default: {
		char safe[4 * USERNAME_MAX + 1];

		log_sanitize(safe, sizeof(safe), j->user, strlen(j->user));
		log_warnx("session=%s ip=%s event=bad_hash user=%s reason=\"%s\"", j->session,
		          j->ip, safe, error);
		fail(j, AUTH_FAIL, "unusable_hash");
	}
	}
}

static void run_pass(struct auth_job *j)
{
	snprintf(j->method, sizeof(j->method), "PASS");
	check_password(j, (const char *)j->input, j->input_len);
}

/* APOP (RFC 1939 §7): the digest is MD5(timestamp || secret) in lower-case hex. The secret is
 * stored apart from the user file; upper-case hex from a client is accepted (S-030). */
static void run_apop(struct auth_job *j)
{
	unsigned char secret[PASSWORD_MAX], md[EVP_MAX_MD_SIZE];
	char hex[2 * 16 + 1], given[2 * 16 + 1];
	const char *error = NULL;
	unsigned mdlen = 0;
	size_t slen = 0;
	int r, have;
	EVP_MD_CTX *ctx;

	snprintf(j->method, sizeof(j->method), "APOP");
	if (j->input_len != 32) {
		fail(j, AUTH_FAIL, "bad_digest");
		return;
	}
	for (size_t i = 0; i < 32; i++)
		given[i] = (char)tolower(j->input[i]);
	given[32] = '\0';
	if ((r = lookup(j)) < 0)
		return;
	have = r == 1 ? apop_get(conf->auth_dir, j->user, (char *)secret, sizeof(secret), &slen,
	                         &error)
	              : 0;
	if (have < 0) {
		fail(j, AUTH_TEMPFAIL, error);
		return;
	}
	if (have == 0) {
		/* Same cost as a real digest so the reply time does not tell. */
		RAND_bytes(secret, 16);
		slen = 16;
	}
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, j->apop_timestamp, strlen(j->apop_timestamp)) != 1 ||
	    EVP_DigestUpdate(ctx, secret, slen) != 1 || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
		EVP_MD_CTX_free(ctx);
		explicit_bzero(secret, sizeof(secret));
		fail(j, AUTH_TEMPFAIL, "md5_unavailable");
		return;
	}
	EVP_MD_CTX_free(ctx);
	explicit_bzero(secret, sizeof(secret));
	for (unsigned i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if (r == 0) {
		return; /* unknown user: FAIL already set by lookup */
	}
	if (have == 0 || CRYPTO_memcmp(hex, given, 32) != 0) {
		fail(j, AUTH_FAIL, have == 0 ? "apop_not_enabled" : "wrong_digest");
		return;
	}
	if ((r = totp_active(j)) < 0)
		return;
	if (r == 1) {
		fail(j, AUTH_FAIL, "totp_required");
		return;
	}
	j->result = AUTH_OK;
}

/* --- SASL through GNU SASL ------------------------------------------------------------------ */

static bool is_scram(enum mech m)
{
	return m == MECH_SCRAM_SHA1 || m == MECH_SCRAM_SHA1_PLUS || m == MECH_SCRAM_SHA256 ||
	       m == MECH_SCRAM_SHA256_PLUS;
}

static bool is_sha1(enum mech m)
{
	return m == MECH_SCRAM_SHA1 || m == MECH_SCRAM_SHA1_PLUS;
}

/* A verifier for a user who may not use SCRAM (unknown, none stored, or TOTP on): the salt is
 * stable per name, the keys are random, so the exchange looks the same and fails at the proof. */
static void scram_fake(struct sasl_state *st, const char *authid)
{
	unsigned char mac[EVP_MAX_MD_SIZE], keys[64];
	unsigned maclen = 0;
	size_t hlen = is_sha1(st->mech) ? 20 : 32;

	HMAC(EVP_sha256(), fake_key, sizeof(fake_key), (const unsigned char *)authid,
	     strlen(authid), mac, &maclen);
	st->scram.iter = SCRAM_ITER_DEFAULT;
	EVP_EncodeBlock((unsigned char *)st->scram.salt_b64, mac, SCRAM_SALT_LEN);
	RAND_bytes(keys, sizeof(keys));
	for (size_t i = 0; i < hlen; i++) {
		snprintf(st->scram.stored_hex + 2 * i, 3, "%02x", keys[i]);
		snprintf(st->scram.server_hex + 2 * i, 3, "%02x", keys[32 + i]);
	}
	st->scram_real = false;
}

static void scram_load(struct sasl_state *st, struct auth_job *j, const char *authid)
{
	const char *error = NULL;
	const char *field;
	int r;

	st->scram_loaded = true;
	snprintf(j->user, sizeof(j->user), "%s", authid ? authid : "");
	if (authid == NULL || userdb_valid_name(authid, strlen(authid), &error) < 0) {
		fail(j, AUTH_FAIL, "invalid_user_name");
		scram_fake(st, authid ? authid : "");
		return;
	}
	if ((r = lookup(j)) <= 0) {
		scram_fake(st, authid);
		return;
	}
	field = is_sha1(st->mech) ? j->entry.scram_sha1 : j->entry.scram_sha256;
	if (field[0] == '\0') {
		fail(j, AUTH_FAIL, "no_scram_verifier");
		scram_fake(st, authid);
		return;
	}
	if (scram_parse(is_sha1(st->mech) ? SCRAM_SHA1 : SCRAM_SHA256, field, &st->scram, &error) <
	    0) {
		fail(j, AUTH_TEMPFAIL, error);
		scram_fake(st, authid);
		return;
	}
	if ((r = totp_active(j)) != 0) {
		if (r == 1)
			fail(j, AUTH_FAIL, "totp_required");
		scram_fake(st, authid);
		return;
	}
	st->scram_real = true;
}

/* The exchange being started: GNU SASL's SCRAM-PLUS asks for the channel binding inside
 * gsasl_server_start, before the session hook can be set. */
static _Thread_local struct sasl_state *starting;

static int gsasl_cb(Gsasl *ctx, Gsasl_session *gs, Gsasl_property prop)
{
	struct sasl_state *st = gsasl_session_hook_get(gs);
	struct auth_job *j;
	char buf[16];

	if (st == NULL)
		st = starting;
	if (st == NULL)
		return GSASL_NO_CALLBACK;
	if (prop == GSASL_CB_TLS_UNIQUE || prop == GSASL_CB_TLS_EXPORTER) {
		/* Only the binding of this connection's kind: tls-unique does not exist on TLS
		 * 1.3 (RFC 9266, S-117). */
		if (st->cb_b64[0] == '\0' ||
		    (prop == GSASL_CB_TLS_UNIQUE) != (strcmp(st->cb_type, "tls-unique") == 0))
			return GSASL_NO_CALLBACK;
		gsasl_property_set(gs, prop, st->cb_b64);
		return GSASL_OK;
	}
	if ((j = st->j) == NULL)
		return GSASL_NO_CALLBACK;
	switch (prop) {
	case GSASL_VALIDATE_SIMPLE: {
		const char *authid = gsasl_property_fast(gs, GSASL_AUTHID);
		const char *authzid = gsasl_property_fast(gs, GSASL_AUTHZID);
		const char *pw = gsasl_property_fast(gs, GSASL_PASSWORD);
		const char *error = NULL;

		if (authid == NULL || pw == NULL) {
			fail(j, AUTH_FAIL, "malformed");
			return GSASL_AUTHENTICATION_ERROR;
		}
		snprintf(j->user, sizeof(j->user), "%s", authid);
		if (strlen(authid) > USERNAME_MAX ||
		    userdb_valid_name(authid, strlen(authid), &error) < 0) {
			pwhash_dummy_verify(pw, strlen(pw));
			fail(j, AUTH_FAIL, "invalid_user_name");
			return GSASL_AUTHENTICATION_ERROR;
		}
		/* No proxy rights: an authorization identity must name the same user (S-105). */
		if (authzid != NULL && authzid[0] != '\0' && strcmp(authzid, authid) != 0) {
			pwhash_dummy_verify(pw, strlen(pw));
			fail(j, AUTH_FAIL, "authzid_differs");
			return GSASL_AUTHENTICATION_ERROR;
		}
		check_password(j, pw, strlen(pw));
		return j->result == AUTH_OK ? GSASL_OK : GSASL_AUTHENTICATION_ERROR;
	}
	case GSASL_SCRAM_ITER:
	case GSASL_SCRAM_SALT:
	case GSASL_SCRAM_STOREDKEY:
	case GSASL_SCRAM_SERVERKEY:
		if (!st->scram_loaded)
			scram_load(st, j, gsasl_property_fast(gs, GSASL_AUTHID));
		if (prop == GSASL_SCRAM_ITER) {
			snprintf(buf, sizeof(buf), "%u", st->scram.iter);
			gsasl_property_set(gs, prop, buf);
		} else if (prop == GSASL_SCRAM_SALT) {
			gsasl_property_set(gs, prop, st->scram.salt_b64);
		} else {
			/* The user file keeps the keys in hex; GNU SASL 2.2 reads these two
			 * properties as base64 (whatever its header comment says). */
			const char *hex = prop == GSASL_SCRAM_STOREDKEY ? st->scram.stored_hex
			                                                : st->scram.server_hex;
			unsigned char raw[32], b64[48];
			size_t n = strlen(hex) / 2;

			for (size_t i = 0; i < n && i < sizeof(raw); i++)
				sscanf(hex + 2 * i, "%2hhx", &raw[i]);
			EVP_EncodeBlock(b64, raw, (int)(n < sizeof(raw) ? n : sizeof(raw)));
			gsasl_property_set(gs, prop, (const char *)b64);
			explicit_bzero(raw, sizeof(raw));
		}
		return GSASL_OK;
	default:
		return GSASL_NO_CALLBACK;
	}
}

/* RFC 5802 §5.1: in the client-first message's user name, '=' must start "=2C" or "=3D"
 * (S-108). GNU SASL passes other escapes through, so check before it runs. */
static bool scram_name_escapes_ok(const unsigned char *in, size_t len)
{
	size_t i = 0, commas = 0;

	while (i < len && commas < 2)
		if (in[i++] == ',')
			commas++;
	if (i + 2 > len || in[i] != 'n' || in[i + 1] != '=')
		return true; /* not a user name attribute: GNU SASL refuses the message */
	for (i += 2; i < len && in[i] != ','; i++) {
		if (in[i] != '=')
			continue;
		if (i + 2 >= len || !((in[i + 1] == '2' && in[i + 2] == 'C') ||
		                      (in[i + 1] == '3' && in[i + 2] == 'D')))
			return false;
		i += 2;
	}
	return true;
}

static void run_gsasl(struct sasl_state *st, struct auth_job *j)
{
	char *out = NULL;
	size_t outlen = 0;
	int rc;

	/* GNU SASL reads an empty response as "no response" and would ask again; for every
	 * mechanism we run, a present but empty response is a malformed one (S-095). */
	if (j->has_input && j->input_len == 0) {
		fail(j, AUTH_FAIL, "empty_response");
		return;
	}
	if (is_scram(st->mech) && st->steps == 1 && j->has_input &&
	    !scram_name_escapes_ok(j->input, j->input_len)) {
		fail(j, AUTH_FAIL, "bad_scram_user_name");
		return;
	}
	st->j = j;
	rc = gsasl_step(st->gs, j->has_input ? (const char *)j->input : NULL,
	                j->has_input ? j->input_len : 0, &out, &outlen);
	st->j = NULL;
	if (rc == GSASL_NEEDS_MORE) {
		j->challenge = true;
		j->out = (unsigned char *)out;
		j->out_len = outlen;
		return;
	}
	if (rc != GSASL_OK) {
		gsasl_free(out);
		if (j->result == AUTH_OK || j->reason[0] == '\0')
			fail(j, AUTH_FAIL, gsasl_strerror_name(rc));
		else if (j->result != AUTH_TEMPFAIL)
			j->result = AUTH_FAIL;
		return;
	}
	if (is_scram(st->mech)) {
		const char *authzid = gsasl_property_fast(st->gs, GSASL_AUTHZID);

		if (!st->scram_real) {
			gsasl_free(out);
			if (j->reason[0] == '\0')
				fail(j, AUTH_FAIL, "no_scram_verifier");
			else if (j->result != AUTH_TEMPFAIL)
				j->result = AUTH_FAIL;
			return;
		}
		if (authzid != NULL && authzid[0] != '\0' && strcmp(authzid, j->user) != 0) {
			gsasl_free(out);
			fail(j, AUTH_FAIL, "authzid_differs");
			return;
		}
		j->result = AUTH_OK;
	}
	if (j->result != AUTH_OK) {
		gsasl_free(out);
		if (j->reason[0] == '\0')
			fail(j, AUTH_FAIL, "not_validated");
		return;
	}
	/* The server-final message of SCRAM ("v=..."): shown as a last challenge (S-100). */
	j->out = (unsigned char *)out;
	j->out_len = outlen;
}

/* --- OAUTHBEARER (RFC 7628) and XOAUTH2: GNU SASL has no server side for them --------------- */

static void oauth_refuse(struct sasl_state *st, struct auth_job *j, const char *why)
{
	struct oauth_conf oc = {conf->oauth_issuer, conf->oauth_audience, conf->oauth_user_claim};
	char json[512];

	snprintf(st->oauth_reason, sizeof(st->oauth_reason), "%s", why);
	if (oauth_error_json(&oc, json, sizeof(json)) < 0)
		snprintf(json, sizeof(json), "{\"status\":\"invalid_token\"}");
	/* RFC 7628 §3.2.3: the error goes out as a challenge; the client answers with a dummy
	 * response and only then gets -ERR. */
	st->oauth_failed = true;
	j->challenge = true;
	j->out = (unsigned char *)strdup(json);
	j->out_len = j->out ? strlen(json) : 0;
}

static void run_oauth(struct sasl_state *st, struct auth_job *j)
{
	struct oauth_conf oc = {conf->oauth_issuer, conf->oauth_audience, conf->oauth_user_claim};
	char *token = NULL, who[USERNAME_MAX + 1], claim[USERNAME_MAX + 1];
	const char *error = NULL;
	int r;

	if (st->oauth_failed) {
		fail(j, AUTH_FAIL, st->oauth_reason);
		return;
	}
	if (!j->has_input) {
		j->challenge = true; /* client-first: ask for the initial response (S-094) */
		return;
	}
	if ((token = malloc(OAUTH_TOKEN_MAX + 1)) == NULL) {
		fail(j, AUTH_TEMPFAIL, "out_of_memory");
		return;
	}
	if (st->mech == MECH_OAUTHBEARER)
		r = oauth_parse_oauthbearer((const char *)j->input, j->input_len, who, sizeof(who),
		                            token, OAUTH_TOKEN_MAX + 1, &error);
	else
		r = oauth_parse_xoauth2((const char *)j->input, j->input_len, who, sizeof(who),
		                        token, OAUTH_TOKEN_MAX + 1, &error);
	if (r < 0) {
		free(token);
		fail(j, AUTH_FAIL, error ? error : "malformed");
		return;
	}
	r = oauth_keys == NULL ? -1
	                       : oauth_validate(oauth_keys, &oc, token, strlen(token), time(NULL),
	                                        claim, sizeof(claim), &error);
	explicit_bzero(token, OAUTH_TOKEN_MAX + 1);
	free(token);
	if (r < 0) {
		fail(j, AUTH_TEMPFAIL, "oauth_unavailable");
		return;
	}
	/* The name the client gave (authzid / user=) must be the token's user; OAUTHBEARER may
	 * leave it out and take the token's. */
	snprintf(j->user, sizeof(j->user), "%s", who[0] ? who : (r == 1 ? claim : ""));
	if (r == 0) {
		oauth_refuse(st, j, error);
		return;
	}
	if (strcmp(j->user, claim) != 0) {
		oauth_refuse(st, j, "user_differs_from_token");
		return;
	}
	if (userdb_valid_name(j->user, strlen(j->user), &error) < 0) {
		oauth_refuse(st, j, "invalid_user_name");
		return;
	}
	if ((r = lookup(j)) < 0)
		return;
	if (r == 0) {
		oauth_refuse(st, j, "unknown_user");
		return;
	}
	j->result = AUTH_OK;
}

static void run_sasl(struct auth_job *j)
{
	struct sasl_state *st = j->sasl;

	snprintf(j->method, sizeof(j->method), "%s", st->name);
	if (++st->steps > SASL_STEPS_MAX) {
		fail(j, AUTH_FAIL, "too_many_steps");
		return;
	}
	if (st->gs != NULL)
		run_gsasl(st, j);
	else
		run_oauth(st, j);
}

void authcheck_run(struct auth_job *j)
{
	/* The reason may come from an earlier step of the same exchange (restored by the
	 * caller): keep it, the final failure reports it. */
	j->result = AUTH_FAIL;
	j->challenge = false;
	switch (j->kind) {
	case JOB_PASS:
		run_pass(j);
		break;
	case JOB_APOP:
		run_apop(j);
		break;
	case JOB_SASL:
		run_sasl(j);
		break;
	}
	if (j->result == AUTH_OK && j->reason[0] != '\0')
		j->reason[0] = '\0';
}

/* --- set-up -------------------------------------------------------------------------------- */

bool authcheck_mech_enabled(const char *mech)
{
	const struct mech_info *m = mech_find(mech);

	return m != NULL && mech_configured(conf, m);
}

void authcheck_init(const struct conf *c)
{
	const char *error = NULL;
	int rc;

	conf = c;
	if (RAND_bytes(fake_key, sizeof(fake_key)) != 1)
		fatalx("RAND_bytes failed");
	if ((rc = gsasl_init(&gsasl_ctx)) != GSASL_OK)
		fatalx("gsasl_init: %s", gsasl_strerror(rc));
	gsasl_callback_set(gsasl_ctx, gsasl_cb);
	if (conf->oauth_jwks[0] != '\0' &&
	    (oauth_keys = oauth_keys_load(conf->oauth_jwks, &error)) == NULL)
		log_warnx("event=oauth_disabled file=%s reason=\"%s\"", conf->oauth_jwks, error);
}

struct sasl_state *authcheck_sasl_new(const char *mech, const char *cb_type, const void *cb,
                                      size_t cb_len, const char **error_r)
{
	struct sasl_state *st;
	size_t i;
	int rc;

	for (i = 0; i < NMECHS && strcmp(mechs[i].name, mech) != 0; i++)
		;
	if (i == NMECHS || !authcheck_mech_enabled(mech)) {
		*error_r = "unknown mechanism";
		return NULL;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	st->mech = mechs[i].mech;
	st->name = mechs[i].name;
	if (!mechs[i].gsasl)
		return st;
	/* The binding data of this connection; GNU SASL compares the client's c= against it, and
	 * its presence makes a "y" flag (a downgrade) fail (S-114). */
	if (cb_len > 0 && cb_len <= CB_DATA_MAX && cb_type[0] != '\0') {
		snprintf(st->cb_type, sizeof(st->cb_type), "%s", cb_type);
		EVP_EncodeBlock((unsigned char *)st->cb_b64, cb, (int)cb_len);
	}
	starting = st;
	rc = gsasl_server_start(gsasl_ctx, mech, &st->gs);
	starting = NULL;
	if (rc != GSASL_OK) {
		free(st);
		*error_r = rc == GSASL_NO_CB_TLS_UNIQUE || rc == GSASL_NO_CB_TLS_EXPORTER
		               ? "no channel binding on this connection"
		               : "mechanism not available";
		return NULL;
	}
	gsasl_session_hook_set(st->gs, st);
	gsasl_property_set(st->gs, GSASL_SERVICE, "pop");
	if (conf->hostname[0] != '\0')
		gsasl_property_set(st->gs, GSASL_HOSTNAME, conf->hostname);
	return st;
}

void authcheck_sasl_free(struct sasl_state *st)
{
	if (st == NULL)
		return;
	if (st->gs != NULL)
		gsasl_finish(st->gs);
	explicit_bzero(st, sizeof(*st));
	free(st);
}

unsigned authcheck_sasl_steps(const struct sasl_state *st)
{
	return st->steps;
}
