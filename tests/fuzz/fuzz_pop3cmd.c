/* libFuzzer target for pop3_parse_cmd(): every line of the input, checked against the grammar. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

static bool is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool within(const char *p, size_t n, const char *line, size_t len)
{
	return p >= line && p <= line + len && n <= (size_t)(line + len - p);
}

static void check_line(const char *src, size_t len)
{
	/* An exact-size copy: ASan reports any read past the end (there is no NUL). */
	char *line = malloc(len ? len : 1);
	struct pop3_cmd cmd;
	size_t k = 0, fields = 0;
	bool empty = false;
	int r;

	CHECK(line != NULL);
	memcpy(line, src, len);
	r = pop3_parse_cmd(line, len, &cmd);
	while (k < len && is_alnum(line[k]))
		k++;
	if (k == 0 || k > POP3_KEYWORD_MAX || (k < len && line[k] != ' ')) {
		CHECK(r == -1);
		free(line);
		return;
	}
	CHECK(r == 0);
	CHECK(strlen(cmd.keyword) == k);
	for (size_t i = 0; i < k; i++) {
		char c = line[i];

		CHECK(cmd.keyword[i] == ((c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c));
	}
	if (k == len) {
		CHECK(cmd.rest == NULL && cmd.rest_len == 0 && cmd.argc == 0 && !cmd.bad_spacing);
		free(line);
		return;
	}
	CHECK(cmd.rest == line + k + 1 && cmd.rest_len == len - k - 1);
	/* Model: fields between single SPs, empty ones included. */
	for (size_t i = 0, start = 0; i <= cmd.rest_len; i++) {
		if (i == cmd.rest_len || cmd.rest[i] == ' ') {
			if (i == start)
				empty = true;
			if (fields < 2) {
				CHECK(cmd.argv[fields] == cmd.rest + start);
				CHECK(cmd.argl[fields] == i - start);
			}
			fields++;
			start = i + 1;
		}
	}
	CHECK(cmd.bad_spacing == empty);
	CHECK(cmd.argc >= 1 && (size_t)cmd.argc == (fields < 0x7fff ? fields : 0x7fff));
	for (int i = 0; i < cmd.argc && i < 2; i++)
		CHECK(within(cmd.argv[i], cmd.argl[i], line, len));
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

	/* The whole input is one line too: the reader hands over any bytes but LF. */
	check_line(p, size);
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *le = lf != NULL ? lf : end;

		check_line(p, (size_t)(le - p));
		p = lf != NULL ? lf + 1 : end;
	}
	return 0;
}
