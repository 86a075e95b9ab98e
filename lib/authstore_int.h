/* Internals of the account-security store shared by authstore.c (files, locking, verifiers, app
 * passwords) and authstore_otp.c (TOTP records, APOP secrets). Not a public API. */
#ifndef GANNET_AUTHSTORE_INT_H
#define GANNET_AUTHSTORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "authstore.h"
#include "gannet_limits.h"

#define KIND_APPPW "app-passwords"
#define KIND_TOTP  "totp"
#define KIND_APOP  "apop"

/* Fields of the longest record: a TOTP line has four plus its recovery verifiers. */
#define FIELDS_MAX (4 + TOTP_RECOVERY_CODES)

/* How often a waiting call retries the lock: short against the length of a rewrite. */
#define LOCK_POLL_NS (10 * 1000 * 1000)

/* One store file being read (and maybe rewritten) under the lock. */
struct sfile {
	char path[GANNET_PATH_MAX];
	char dir[GANNET_PATH_MAX];
	const char *kind;
	bool write;
	int lock_fd;
	bool exists;
	struct stat st;
	char *data;
	size_t len, pos;
	unsigned long lineno;
	char line[AUTHSTORE_LINE_MAX + 1];
	char *out;
	size_t out_len, out_cap;
};

/* Set *ERROR_R to a formatted thread-local message; returns -1. */
int as_fail(const char **error_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "file:line: REASON" for the line F is on; returns -1. */
int as_fail_line(struct sfile *f, const char *reason, const char **error_r);
/* True when STORED has the shape "sha256$SALT$HASH". */
bool as_hash_well_formed(const char *stored);
/* Open DIR/KIND under the store lock (exclusive when WRITE) and read it. 0 or -1. */
int as_sf_open(struct sfile *f, const char *dir, const char *kind, bool write,
               const char **error_r);
/* Release the lock and free what F holds. */
void as_sf_close(struct sfile *f);
/* Append TEXT to the rewritten file. 0 or -1. */
int as_out_add(struct sfile *f, const char *text, size_t len, const char **error_r);
/* The next record line into f->line: 1, 0 at the end, -1 on a broken line. */
int as_sf_next(struct sfile *f, const char **error_r);
/* Copy the current line unchanged to the rewritten file. 0 or -1. */
int as_sf_keep(struct sfile *f, const char **error_r);
/* Write the new file beside the old, fsync, rename, fsync the directory. 0 or -1. */
int as_sf_commit(struct sfile *f, const char **error_r);
/* 0 when USER is a valid user name, else -1 with *ERROR_R. */
int as_check_user(const char *user, const char **error_r);
/* Split the current line into MIN..MAX fields. 0 or -1. */
int as_sf_fields(struct sfile *f, char **fields, size_t min, size_t max, size_t *n_r,
                 const char **error_r);
/* Strict decimal int64. 0 or -1. */
int as_parse_i64(const char *s, int64_t *v_r);

#endif
