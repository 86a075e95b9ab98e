/* The account-security store: app passwords, TOTP records and APOP secrets, one text file each in
 * the auth directory (conf auth_dir), read and updated by the auth process and by gannetctl.
 *
 * Files: DIR/app-passwords, DIR/totp, DIR/apop. One record per line, fields separated by one
 * space; '#' starts a comment line, empty lines are ignored. A line that does not parse fails the
 * whole call with "file:line: reason" (never guessed around). Files are mode 0600.
 *
 * Every change takes flock(LOCK_EX) on DIR/.lock (waiting at most AUTHSTORE_LOCK_SECONDS), reads
 * the file, writes DIR/.KIND.tmp, fsyncs it, renames it over the file and fsyncs DIR; readers take
 * LOCK_SH. A crashed writer leaves at most a stale .KIND.tmp, which readers ignore and the next
 * writer replaces. Comment lines and the order of records survive every rewrite.
 *
 * Every function is thread-safe (each call opens its own lock descriptor, and flock serialises
 * descriptors of one process too). Errors: *ERROR_R points to a static string or to a
 * thread-local buffer that the next failing call in the same thread overwrites. */
#ifndef GANNET_AUTHSTORE_H
#define GANNET_AUTHSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "gannet_limits.h"
#include "totp.h"

/* One record line with its '\n'. The longest record is a TOTP line: a 256-byte user name, the
 * state, a 32-character secret, a step and ten 104-character recovery hashes, about 1,400 bytes;
 * an APOP line with the largest secret is about 1,630. 2 kB holds either with room to spare. */
#define AUTHSTORE_LINE_MAX 2048

/* A store file beyond this size is refused rather than read (every login reads the file whole):
 * 64 MiB is over 100,000 users with a few app passwords each at about 500 bytes a record. */
#define AUTHSTORE_FILE_MAX ((size_t)64 << 20)

/* How long a call waits for the lock. Writers hold it for one rewrite of a small file (a few
 * milliseconds with the fsyncs); an auth thread should not hang a login longer than this. */
#define AUTHSTORE_LOCK_SECONDS 3

/* Salted SHA-256 verifier text: "sha256$" + 32 hex digits of salt + "$" + 64 hex digits. */
#define AUTHSTORE_SALT_LEN  16
#define AUTHSTORE_HASH_TEXT 104

/* App password names: [A-Za-z0-9._-]{1,32}, short labels such as "phone" or "thunderbird-work". */
#define APPPW_NAME_MAX 32

/* App passwords per user. The server checks each of them at every login of that user, and nobody
 * needs more than one per device; 32 keeps the per-login cost bounded. */
#define APPPW_PER_USER_MAX 32

/* An app password: 20 symbols of a 32-symbol alphabet (5 bits each: 100 bits from RAND_bytes),
 * shown as five groups of four joined by '-' (24 characters). */
#define APPPW_SYMBOLS  20
#define APPPW_GROUP    4
#define APPPW_TEXT_LEN (APPPW_SYMBOLS + APPPW_SYMBOLS / APPPW_GROUP - 1)
#define APPPW_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ" /* no 0, 1, I, O */

/* Longest candidate apppw_verify looks at: the dashed form plus a few stray dashes; anything
 * longer cannot be an app password and is refused without touching the store. */
#define APPPW_INPUT_MAX 64

/* A client address as text: INET6_ADDRSTRLEN (46) with its NUL. */
#define APPPW_IP_MAX 46

/* An APOP shared secret: read like a password, so the same bound (its base64 form, 1,368 bytes,
 * still fits in AUTHSTORE_LINE_MAX with the user name). */
#define APOP_SECRET_MAX PASSWORD_MAX

/* New files and the directory, when created from now on, get this owner (when the process runs
 * as root; gannetctl passes conf auth_user so that the auth process can update them). Existing
 * files keep their owner when rewritten. Call before any other thread uses the store. */
void authstore_set_owner(uid_t uid, gid_t gid);

/* Create DIR (mode 0700, owner as above) when it is missing; its parent must exist. 0, or -1. */
int authstore_mkdir(const char *dir, const char **error_r);

/* Salted SHA-256 of SECRET[0..LEN) into OUT as "sha256$SALT$HASH" (AUTHSTORE_HASH_TEXT + 1
 * bytes), salt from RAND_bytes. 0, or -1. */
int authstore_hash(const void *secret, size_t len, char *out, size_t size, const char **error_r);

/* 1 when SECRET matches the verifier STORED (constant-time compare), 0 when not, -1 when STORED
 * is not a well-formed verifier. */
int authstore_hash_verify(const void *secret, size_t len, const char *stored, const char **error_r);

/* --- App passwords: `USER NAME CREATED LAST_USED LAST_IP HASH` (LAST_USED 0 and LAST_IP "-"
 * when never used). */

struct apppw {
	char user[USERNAME_MAX + 1];
	char name[APPPW_NAME_MAX + 1];
	int64_t created;                /* seconds since the epoch */
	int64_t last_used;              /* 0: never */
	char last_ip[APPPW_IP_MAX + 1]; /* "-" when never used */
};

/* 0 when NAME is a valid app password name ([A-Za-z0-9._-]{1,APPPW_NAME_MAX}), else -1. */
int apppw_valid_name(const char *name, const char **error_r);

/* Create app password NAME for USER at time NOW; writes the password, dashed, into PW_OUT (at
 * least APPPW_TEXT_LEN + 1 bytes; the caller wipes it). 0, or -1 (name taken, too many, I/O). */
int apppw_add(const char *dir, const char *user, const char *name, time_t now, char *pw_out,
              size_t size, const char **error_r);

/* The app passwords of USER (NULL: of everyone) in file order into a malloc'd *LIST_R (NULL when
 * there are none) of *N_R entries; the caller frees it. 0, or -1. */
int apppw_list(const char *dir, const char *user, struct apppw **list_r, size_t *n_r,
               const char **error_r);

/* Remove USER's app password NAME. 1 removed, 0 there was none, -1 error. */
int apppw_revoke(const char *dir, const char *user, const char *name, const char **error_r);

/* Remove every app password of USER. The number removed (0 when none), or -1. */
int apppw_revoke_user(const char *dir, const char *user, const char **error_r);

/* Server side: 1 when PASSWORD[0..LEN) (with or without dashes, any case) is one of USER's app
 * passwords: copies its name to NAME_OUT (APPPW_NAME_MAX + 1 bytes) and records NOW and IP (NULL
 * or numeric IPv4/IPv6) as its last use. 0 when it is not (also for anything not shaped like an
 * app password, without reading the store), -1 error. */
int apppw_verify(const char *dir, const char *user, const char *password, size_t len,
                 const char *ip, time_t now, char *name_out, size_t size, const char **error_r);

/* --- TOTP: `USER STATE SECRET_B32 LAST_STEP RECOVERY...`, STATE pending|active, RECOVERY up to
 * TOTP_RECOVERY_CODES verifiers (authstore_hash) of the unused recovery codes. */

struct totp_record {
	char user[USERNAME_MAX + 1];
	bool active; /* false: pending, the code that confirms it has not been entered yet */
	unsigned char secret[TOTP_SECRET_LEN];
	size_t secret_len; /* TOTP_SECRET_MIN (RFC 4226 R6: 128 bits) .. TOTP_SECRET_LEN */
	int64_t last_step; /* RFC 6238 time step of the last accepted code; 0 when none */
	size_t n_recovery;
	char recovery[TOTP_RECOVERY_CODES][AUTHSTORE_HASH_TEXT + 1];
};

/* Normalise a recovery code as typed (totp_code_normalise: dashes and spaces dropped, letters
 * upper-cased) and hash it into OUT for totp_record.recovery. 0, or -1 (not a code's shape). */
int totpstore_hash_recovery(const char *code, char *out, size_t size, const char **error_r);

/* USER's record into R (the caller wipes it). 1 found, 0 none, -1 error. */
int totpstore_get(const char *dir, const char *user, struct totp_record *r, const char **error_r);

/* Replace R->user's record, or add it. 0, or -1 (also for a record that does not validate). */
int totpstore_put(const char *dir, const struct totp_record *r, const char **error_r);

/* Remove USER's record. 1 removed, 0 there was none, -1 error. */
int totpstore_del(const char *dir, const char *user, const char **error_r);

/* Server side, atomically under the lock: 1 when CODE is valid at NOW for USER's ACTIVE record and
 * its step is newer than last_step (the step is stored: a code works once), 0 otherwise (no
 * record, pending, wrong or replayed code), -1 error. */
int totpstore_check_code(const char *dir, const char *user, const char *code, time_t now,
                         const char **error_r);

/* Server side: 1 when CODE matches an unused recovery code of USER's active record (it is removed
 * and works no more), 0 when not, -1 error. */
int totpstore_use_recovery(const char *dir, const char *user, const char *code,
                           const char **error_r);

/* --- APOP: `USER SECRET_B64`. The secret is plaintext-equivalent (RFC 1939 §7): the file is 0600
 * and separate from the user file. */

/* Set USER's APOP secret SECRET[0..LEN) (1..APOP_SECRET_MAX bytes, no NUL). 0, or -1. */
int apop_set(const char *dir, const char *user, const char *secret, size_t len,
             const char **error_r);

/* Remove USER's APOP secret. 1 removed, 0 there was none, -1 error. */
int apop_del(const char *dir, const char *user, const char **error_r);

/* USER's secret into SECRET (SIZE bytes, NUL-terminated; the caller wipes it), its length into
 * *LEN_R. 1 found, 0 none, -1 error (also when it does not fit in SIZE). */
int apop_get(const char *dir, const char *user, char *secret, size_t size, size_t *len_r,
             const char **error_r);

#endif
