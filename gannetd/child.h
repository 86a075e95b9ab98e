/* Start-up shared by gannetd's child processes: the hello from the master, privilege drop. */
#ifndef GANNETD_CHILD_H
#define GANNETD_CHILD_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "proto.h"
#include "tls.h"

struct child_env {
	struct conf conf;
	uint32_t generation;
	bool foreground;
	/* login processes: the generation's TLS session ticket keys (lib/tls.h) */
	unsigned char ticket_keys[TLS_TICKET_KEYS_LEN];
	bool have_ticket_keys;
};

/* Wait (bounded) for MSG_HELLO on CHILD_CHANNEL_FD, check the IPC version and KIND, and parse
 * the configuration the master sent. Fatal on any mismatch: the process is disposable. */
void child_init(enum proc_kind kind, struct child_env *env);

/* When running as root: chroot into CHROOT_DIR (if not empty) and switch to USER (if not empty,
 * else stay root with a warning naming SETTING). Fatal on failure. */
void child_drop_privileges(const char *user, const char *setting, const char *chroot_dir);

/* Switch to UID/GID (as root); 0 or -1 with errno. Used per session by per-connection mail. */
int child_setids(uid_t uid, gid_t gid);

/* Like child_setids, but when system_users is on and USER is the system account with exactly
 * UID and GID, with its supplementary groups plus mail_privileged_group (for dotlocks in the
 * mail spool). 0 or -1 with errno. */
int child_setids_user(const struct conf *conf, const char *user, uid_t uid, gid_t gid);

/* Entry points of the child kinds (never return). */
void login_main(struct child_env *env) __attribute__((noreturn));
void auth_main(struct child_env *env) __attribute__((noreturn));
void mail_main(struct child_env *env) __attribute__((noreturn));

#endif
