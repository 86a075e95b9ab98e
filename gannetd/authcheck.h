/* Credential checks of the auth process, run on its worker threads: passwords (with app
 * passwords and TOTP), APOP, and SASL exchanges through GNU SASL, plus the OAuth bearer
 * mechanisms that GNU SASL has no server for. Nothing here touches the event loop or IPC. */
#ifndef GANNETD_AUTHCHECK_H
#define GANNETD_AUTHCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "gannet_limits.h"
#include "proto.h"
#include "userdb.h"

/* A SASL response decodes to at most 3/4 of the longest line we accept. */
#define AUTH_INPUT_MAX (POP3_AUTH_LINE_MAX / 4 * 3)

/* The longest APOP timestamp we issue: "<" 16 hex "." 20 digits "@" host ">". */
#define APOP_TIMESTAMP_MAX 200

/* Channel binding data: 32 bytes of tls-exporter, or a 12..36-byte Finished message. */
#define CB_DATA_MAX 64

/* Round trips one SASL exchange may take; SCRAM needs three, the OAuth error path two. */
#define SASL_STEPS_MAX 6

enum job_kind { JOB_PASS, JOB_APOP, JOB_SASL };

struct sasl_state;

struct auth_job {
	enum job_kind kind;
	/* inputs */
	char user[USERNAME_MAX + 1]; /* PASS / APOP; filled in by the mechanism for SASL */
	unsigned char input[AUTH_INPUT_MAX];
	size_t input_len;
	bool has_input; /* SASL: a response came with this step (an empty one counts) */
	char apop_timestamp[APOP_TIMESTAMP_MAX + 1];
	char ip[64];
	char session[40];
	struct sasl_state *sasl;
	/* outputs */
	enum auth_result result;
	bool challenge;     /* SASL: send OUT as a challenge and wait for the next response */
	unsigned char *out; /* challenge, or data to show the client before +OK (malloc'd) */
	size_t out_len;
	struct userdb_entry entry;
	char maildir[GANNET_PATH_MAX];
	char method[64];  /* for the log: "PASS", "PLAIN", "SCRAM-SHA-256", "+app-password=phone" */
	char reason[256]; /* for the log only */
};

/* Set up GNU SASL and the OAuth keys for CONF (kept by reference). Fatal on failure, except
 * that unreadable OAuth keys only disable the bearer mechanisms (logged). */
void authcheck_init(const struct conf *conf);

/* True when MECH (upper case) is one we run and the configuration enables it. */
bool authcheck_mech_enabled(const char *mech);

/* Start a SASL exchange. CB_TYPE/CB (raw bytes) describe this connection's TLS channel
 * binding ("" when none). NULL with *ERROR_R (static) for an unknown mechanism. */
struct sasl_state *authcheck_sasl_new(const char *mech, const char *cb_type, const void *cb,
                                      size_t cb_len, const char **error_r);
void authcheck_sasl_free(struct sasl_state *st);

/* Number of steps run on ST so far. */
unsigned authcheck_sasl_steps(const struct sasl_state *st);

/* Run J (on a worker thread). Sets the outputs; never blocks on the event loop. */
void authcheck_run(struct auth_job *j);

#endif
