/* The master's control socket (state_dir/control, mode 0600): gannetctl sends one command line
 * and reads the answer until EOF. Commands are relayed to the process that owns the data (the
 * auth process for "penalty ..."). */
#ifndef GANNETD_CONTROL_H
#define GANNETD_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

/* Control connections served at once; gannetctl is run by hand, so a handful is plenty. */
#define CONTROL_CLIENTS_MAX 16
/* Seconds a control client may take to send its line, and we take to answer it. */
#define CONTROL_TIMEOUT 10

/* Relay COMMAND (tagged ID) to the auth process; 0 when sent. */
typedef int (*control_relay_fn)(uint32_t id, const char *command);

/* Listen on STATE_DIR/control. -1 (logged) when the socket cannot be made: the server runs on
 * without it. */
int control_open(struct event_base *base, const char *state_dir, control_relay_fn relay);

/* The auth process's answer to command ID: STATUS 0 ok, else failed; TEXT for gannetctl. */
void control_reply(uint32_t id, uint32_t status, const void *text, size_t len);

/* Remove the socket file (at exit). */
void control_close(void);

#endif
