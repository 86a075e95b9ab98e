/* The SASL mechanism table (see mechs.h). */
#include "mechs.h"

#include <string.h>
#include <strings.h>

const struct mech_info mech_table[] = {
    {"SCRAM-SHA-256-PLUS", MECH_NEEDS_BINDING, false},
    {"SCRAM-SHA-256", MECH_NEEDS_NOTHING, false},
    {"SCRAM-SHA-1-PLUS", MECH_NEEDS_BINDING, false},
    {"SCRAM-SHA-1", MECH_NEEDS_NOTHING, false},
    {"OAUTHBEARER", MECH_NEEDS_TLS, true},
    {"XOAUTH2", MECH_NEEDS_TLS, true},
    {"PLAIN", MECH_NEEDS_PLAINTEXT, false},
    {"LOGIN", MECH_NEEDS_PLAINTEXT, false},
    {NULL, MECH_NEEDS_NOTHING, false},
};

const struct mech_info *mech_find(const char *name)
{
	for (const struct mech_info *m = mech_table; m->name != NULL; m++)
		if (strcasecmp(m->name, name) == 0)
			return m;
	return NULL;
}

static bool word_in(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; *p != '\0';) {
		size_t l;

		p += strspn(p, " \t");
		l = strcspn(p, " \t");
		if (l == n && strncasecmp(p, word, n) == 0)
			return true;
		p += l;
	}
	return false;
}

bool mech_configured(const struct conf *c, const struct mech_info *m)
{
	if (!word_in(c->auth_mechanisms, m->name))
		return false;
	return !m->oauth || c->oauth_jwks[0] != '\0';
}

bool mech_offered(const struct conf *c, const struct mech_info *m, bool plaintext_ok, bool tls,
                  bool binding)
{
	if (!mech_configured(c, m))
		return false;
	switch (m->needs) {
	case MECH_NEEDS_NOTHING:
		return true;
	case MECH_NEEDS_PLAINTEXT:
		return plaintext_ok;
	case MECH_NEEDS_TLS:
		return tls;
	case MECH_NEEDS_BINDING:
		return tls && binding;
	}
	return false;
}
