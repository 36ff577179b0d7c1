# tokentrail - top-level build. `make` builds bin/tokentrail; `make test` runs
# unit suites (plain and ASan+UBSan) and the integration tests.

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CC      ?= cc
PKGS    := libmicrohttpd jansson sqlite3 yaml-0.1 libcrypto zlib libcurl rdkafka libarchive
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -DTT_VERSION='"$(VERSION)"' $(WARN) $(CFLAGS) -Ilib -Icollector -Ianalyzers -Idrills $(PKG_CFLAGS)
LIBS    := $(PKG_LIBS) -lpthread -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

LIB_SRC  := $(sort $(wildcard lib/*.c))
APP_SRC  := src/main.c $(sort $(wildcard collector/*.c analyzers/*.c drills/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
HDRS     := $(wildcard lib/*.h collector/*.h analyzers/*.h drills/*.h)

obj = $(patsubst %.c,build/$(1)/%.o,$(2))

.PHONY: all test unit unit-asan integration bench bench-collector demo deps clean format asan
all: bin/tokentrail

build/rel/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

build/asan/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -c $< -o $@

bin/tokentrail: $(call obj,rel,$(LIB_SRC) $(APP_SRC))
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

# The same binary with ASan+UBSan, used by the hostile-input integration tests.
build/asan/tokentrail: $(call obj,asan,$(LIB_SRC) $(APP_SRC))
	$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $^ $(LIBS)
asan: build/asan/tokentrail

build/rel/tt_unit: $(call obj,rel,$(LIB_SRC) $(UNIT_SRC))
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS)

build/asan/tt_unit: $(call obj,asan,$(LIB_SRC) $(UNIT_SRC))
	$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $^ $(CHECK_LIBS) $(LIBS)

unit: build/rel/tt_unit
	CK_FORK=yes build/rel/tt_unit

unit-asan: build/asan/tt_unit
	ASAN_OPTIONS=detect_leaks=1 CK_FORK=no build/asan/tt_unit

integration: bin/tokentrail build/asan/tokentrail
	tests/integration/run.sh

test: bin/tokentrail build/rel/tt_unit build/asan/tt_unit build/asan/tokentrail
	tests/run-all.sh

# Benchmarks, never part of `make test`. Each prints its figures; see
# docs/performance.md for the latest and how to read them.
bench: bin/tokentrail build/rel/tt_micro
	tests/bench/run.sh
	tests/bench/analyze_bench.sh
	tests/bench/evidence_bench.sh
	tests/bench/drill_bench.sh
	tests/bench/kafka_bench.sh

bench-collector: bin/tokentrail build/rel/tt_micro
	tests/bench/run.sh

# The main job on the embedded default (SQLite, no Kafka): the OAuth lab, a
# collector, a fire drill, the analyzer; prints where the report is.
demo: deps all
	drills/demo.sh

deps:
	@scripts/deps.sh

format:
	clang-format -i $(LIB_SRC) $(APP_SRC) $(UNIT_SRC) $(HDRS)

clean:
	rm -rf build bin

build/rel/tt_micro: $(call obj,rel,$(LIB_SRC) tests/bench/micro.c)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)
