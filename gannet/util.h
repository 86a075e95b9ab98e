/* Small helpers of the fetch client: error reports with an exit code, clocks, paths, commands. */
#ifndef GANNET_UTIL_H
#define GANNET_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What went wrong, in plain words, and the sysexits.h code it maps to. The first error set wins:
 * later ones are usually consequences (a failed QUIT after a timeout). */
struct gerr {
	int code; /* 0 = no error */
	char msg[512];
};

/* Record an error (only when none is recorded yet). */
void gerr_set(struct gerr *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same, appending ": strerror(errno)". */
void gerr_sys(struct gerr *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Forget the recorded error. */
void gerr_clear(struct gerr *e);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t now_ms(void);

/* snprintf into OUT that fails (-1) instead of truncating. */
int fmt_path(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Expand a leading "~/" with $HOME into OUT. -1 when it does not fit or HOME is unset. */
int expand_home(const char *in, char *out, size_t size);

/* mkdir -p with MODE for the missing parts of PATH. 0 or -1 with errno. */
int mkdir_p(const char *path, mode_t mode);

/* fsync the directory PATH. 0 or -1 with errno. */
int fsync_dir(const char *path);

/* Write all of BUF to FD, retrying on EINTR and short writes. 0 or -1 with errno. */
int write_all(int fd, const void *buf, size_t len);

/* Run CMD with /bin/sh -c, stdin from IN_FD (-1: /dev/null), stdout into OUT[0..OUTSIZE) when
 * OUT is given (else /dev/null), extra environment ENV ("K=V" strings, NULL-terminated, may be
 * NULL). Killed after TIMEOUT_S seconds. Returns the exit status (0..255), or -1 with E set
 * (spawn failure, timeout, signal, output longer than OUTSIZE). *OUTLEN_R gets the output size. */
int run_command(const char *cmd, int in_fd, char *out, size_t outsize, size_t *outlen_r,
                char *const env[], int timeout_s, struct gerr *e);

/* Lower-case hex of DATA[0..LEN) into OUT (2 * LEN + 1 bytes). */
void hex_encode(const unsigned char *data, size_t len, char *out);

#endif
