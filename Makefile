# Gannet: POP3 server, admin tool and fetch client. GNU make + pkg-config, no autotools.
#
#   make            build every program into build/
#   make run        set up a demo state directory (first time) and run gannetd in the foreground
#   make test       unit tests, integration tests, the same again under ASan+UBSan, fuzz smoke
#   make fuzz       longer libFuzzer runs (clang)
#   make clean
#
# SAN=1 builds with ASan+UBSan into build/asan; CC=clang works as well as gcc.

CC ?= cc
SAN ?=
ifeq ($(SAN),1)
BUILD ?= build/asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT = -O1 -g
else
BUILD ?= build
SANFLAGS =
OPT = -O2 -g
endif

PKGS = libevent libevent_openssl openssl libcrypt libargon2 libsystemd libgsasl libjwt jansson \
       liboath libqrencode pam
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wformat=2 -Wstrict-prototypes \
       -Wmissing-prototypes -Wvla -Wno-unused-parameter
CFLAGS_ALL = -std=c17 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(OPT) $(WARN) $(SANFLAGS) \
	     -Ilib $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)
LIBS_ALL = $(PKG_LIBS) -lpasswdqc -llockfile -lpthread

LIB_SRCS := $(sort $(wildcard lib/*.c))
GANNETD_SRCS := $(sort $(wildcard gannetd/*.c))
GANNETCTL_SRCS := $(sort $(wildcard gannetctl/*.c))
GANNET_SRCS := $(sort $(wildcard gannet/*.c))
BENCH_SRCS := $(sort $(wildcard bench/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
GANNETD_OBJS := $(GANNETD_SRCS:%.c=$(BUILD)/obj/%.o)
GANNETCTL_OBJS := $(GANNETCTL_SRCS:%.c=$(BUILD)/obj/%.o)
GANNET_OBJS := $(GANNET_SRCS:%.c=$(BUILD)/obj/%.o)
BENCH_OBJS := $(BENCH_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

PROGRAMS := $(BUILD)/gannetd $(BUILD)/gannetctl $(if $(GANNET_SRCS),$(BUILD)/gannet) \
	    $(if $(BENCH_SRCS),$(BUILD)/gannet-bench)

.PHONY: all run test test-unit test-integration test-client test-bench-smoke test-asan fuzz \
	fuzz-smoke bench deps clean format
all: $(PROGRAMS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libgannet.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/gannetd: $(GANNETD_OBJS) $(BUILD)/libgannet.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(BUILD)/gannetctl: $(GANNETCTL_OBJS) $(BUILD)/libgannet.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(BUILD)/gannet: $(GANNET_OBJS) $(BUILD)/libgannet.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# The benchmark load generator (bench/): one program, modes sessions/retr/bigbox/idle, plus the
# corpus generator; it links the shared library for TLS and the POP3 codec.
$(BUILD)/gannet-bench: $(BENCH_OBJS) $(BUILD)/libgannet.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libgannet.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL) -lcmocka

deps:
	@scripts/deps.sh

test-unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

PYTEST = /usr/bin/python3 -m pytest -q -p no:cacheprovider
test-integration: all
	GANNET_BUILD=$(abspath $(BUILD)) $(PYTEST) tests/integration $(PYTEST_ARGS)

# The fetch client against the real gannetd and a scripted hostile server, with the crash loop.
test-client: all
	GANNET_BUILD=$(abspath $(BUILD)) $(PYTEST) tests/client $(PYTEST_ARGS)

# A few seconds of every benchmark mode, so the benchmark code never rots (make bench is the
# real run, outside the test suite).
test-bench-smoke: all
	bench/smoke.sh $(abspath $(BUILD))

# The ASan pass skips the wall-clock "timing" tests (the plain pass runs them).
test-asan:
	$(MAKE) -j$(JOBS) SAN=1 all
	$(MAKE) SAN=1 test-unit
	GANNET_BUILD=$(abspath build/asan) GANNET_ASAN=1 $(PYTEST) -m "not timing" tests/integration \
	  $(PYTEST_ARGS)
	GANNET_BUILD=$(abspath build/asan) GANNET_ASAN=1 $(PYTEST) tests/client $(PYTEST_ARGS)

# libFuzzer targets need clang. The library is compiled once with coverage instrumentation
# (fuzzer-no-link) into its own archive; each target links it.
FUZZ_BUILD = build/fuzz
FUZZ_SAN = address,undefined
FUZZ_CFLAGS = -std=c17 -D_GNU_SOURCE -g -O1 -Ilib $(PKG_CFLAGS)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libgannet.a: $(FUZZ_LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
$(FUZZ_BINS): $(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_BUILD)/libgannet.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $< $(FUZZ_BUILD)/libgannet.a \
	  $(LIBS_ALL)

FUZZ_SECONDS ?= 5
fuzz-smoke: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f); echo "== $$f ($(FUZZ_SECONDS)s)"; \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$n; \
	  seeds=tests/fuzz/seeds/$$n; [ -d $$seeds ] || seeds=; \
	  if ! $$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(FUZZ_BUILD)/corpus/$$n $$seeds \
	      >$(FUZZ_BUILD)/$$n.log 2>&1; then tail -n 40 $(FUZZ_BUILD)/$$n.log; exit 1; fi; \
	  tail -n 1 $(FUZZ_BUILD)/$$n.log; done
fuzz:
	$(MAKE) fuzz-smoke FUZZ_SECONDS=300

# Builds run on every core; the suites themselves run one after the other.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps
	$(MAKE) -j$(JOBS) all
	$(MAKE) test-unit
	$(MAKE) test-integration
	$(MAKE) test-client
	$(MAKE) test-bench-smoke
	$(MAKE) test-asan
	$(MAKE) -j$(JOBS) $(FUZZ_BINS)
	$(MAKE) fuzz-smoke
	@echo "make test: all suites passed"

# deps runs first in its own step: pkg-config may only exist after it, so build in a sub-make.
run: deps
	$(MAKE) all
	scripts/run-demo.sh $(abspath $(BUILD))

bench:
	scripts/deps.sh bench
	$(MAKE) all
	bench/run.sh

format:
	clang-format -i $(LIB_SRCS) $(wildcard lib/*.h) $(GANNETD_SRCS) $(wildcard gannetd/*.h) \
	  $(GANNETCTL_SRCS) $(wildcard gannetctl/*.h) $(GANNET_SRCS) $(wildcard gannet/*.h) \
	  $(BENCH_SRCS) $(wildcard bench/*.h) $(UNIT_SRCS) $(FUZZ_SRCS)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
