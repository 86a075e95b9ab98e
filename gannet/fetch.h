/* Fetching one account: plan from STAT, UIDL (or TOP n 0 fingerprints), the journal and the
 * policies, then transfer, commit, delete and QUIT. */
#ifndef GANNET_FETCH_H
#define GANNET_FETCH_H

#include "config.h"
#include "progress.h"

/* Fetch account A of CFG. Fills ST (exit_code 0 on success, including "no new mail") and returns
 * ST->exit_code. Never leaves a message lost or doubled, whatever point it is killed at. */
int fetch_account(const struct gconfig *cfg, const struct account *a, struct fetch_stats *st);

#endif
