# SPDX-License-Identifier: MIT
# branchfs top-level Makefile.
#
# Builds three variants of every object:
#   build/rel   optimised, for bin/branchd, bin/branchctl and benchmarks
#   build/asan  AddressSanitizer + UndefinedBehaviorSanitizer, for unit tests
#   build/tsan  ThreadSanitizer, for the stress tests
# Layer archives: store/libstore.a, fs/libfs.a (one per variant, under build/).

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PKGS    := fuse3 rocksdb libzstd libcrypto liburing
VERSION := 0.1.0

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# libpq: branchd only, confined to branchd/pgckpt.c (the pg_checkpoint
# helper); unit tests link it through libbd.a.
PQ_CFLAGS  := $(shell pkg-config --cflags libpq 2>/dev/null)
PQ_LIBS    := $(shell pkg-config --libs libpq 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Werror \
	-Wno-missing-field-initializers -MMD -MP -I. -DBRANCHFS_VERSION='"$(VERSION)"' $(PKG_CFLAGS) $(PQ_CFLAGS)
REL_CFLAGS  := $(BASE_CFLAGS) -O2 -g -pthread
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 -g -pthread -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
TSAN_CFLAGS := $(BASE_CFLAGS) -O1 -g -pthread -fsanitize=thread
LDLIBS      := $(PKG_LIBS) -lpthread -lm

STORE_SRC := $(sort $(wildcard store/*.c))
FS_SRC    := $(sort $(wildcard fs/*.c))
BD_SRC    := $(filter-out branchd/branchctl.c,$(sort $(wildcard branchd/*.c)))
CTL_SRC   := branchd/branchctl.c $(filter branchd/ctlproto.c branchd/json.c,$(BD_SRC))
FAKE_SRC  := $(sort $(wildcard tests/fakes/*.c))
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
STRESS_SRC := $(sort $(wildcard tests/stress/stress_*.c))
BENCH_SRC := $(sort $(wildcard tests/bench/bench_*.c))

obj = $(patsubst %.c,build/$(1)/%.o,$(2))
# the CFLAGS variable of a variant: asan -> ASAN_CFLAGS
SAN_CFLAGS = $(if $(filter asan,$(1)),ASAN_CFLAGS,$(if $(filter tsan,$(1)),TSAN_CFLAGS,REL_CFLAGS))

.PHONY: all check check-unit check-stress check-integration crashtest soak bench install clean deps powercut-store \
	check-layers format-check fuzz san-bins sanitizer-drive

all: bin/branchd bin/branchctl

.SECONDEXPANSION:
# Objects are built by pattern rules through archives: keep them.
.SECONDARY:

# ---- objects, one rule per variant ----
build/rel/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -c $< -o $@
build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -c $< -o $@
build/tsan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) -c $< -o $@

build/%/libstore.a: $$(call obj,$$*,$(STORE_SRC))
	@rm -f $@
	ar rcs $@ $^
build/%/libfs.a: $$(call obj,$$*,$(FS_SRC))
	@rm -f $@
	ar rcs $@ $^
# branchd's modules without its main(), for unit tests and fuzzing.
build/%/libbd.a: $$(call obj,$$*,$(filter-out branchd/branchd.c,$(BD_SRC)))
	@rm -f $@
	ar rcs $@ $^

# ---- programs ----
bin/branchd: $(call obj,rel,$(BD_SRC)) build/rel/libfs.a build/rel/libstore.a
	@mkdir -p bin
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS) $(PQ_LIBS)
bin/branchctl: $(call obj,rel,$(CTL_SRC))
	@mkdir -p bin
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

# ---- sanitizer builds of the programs, for drives of the integration tests
# (scripts/sanitizer-drive.sh, README "Sanitizer drive"); not part of `check` ----
build/%/bin/branchd: $$(call obj,$$*,$(BD_SRC)) build/%/libfs.a build/%/libstore.a
	@mkdir -p $(dir $@)
	$(CC) $($(call SAN_CFLAGS,$*)) -o $@ $^ $(LDLIBS) $(PQ_LIBS)
build/%/bin/branchctl: $$(call obj,$$*,$(CTL_SRC))
	@mkdir -p $(dir $@)
	$(CC) $($(call SAN_CFLAGS,$*)) -o $@ $^ $(LDLIBS)
san-bins: build/asan/bin/branchd build/asan/bin/branchctl build/tsan/bin/branchd build/tsan/bin/branchctl
# SAN=asan|tsan (tsan by default), TESTS='t30 t63' (all by default)
sanitizer-drive: san-bins all build/powercut.so build/logdelay.so build/procfail.so
	@bash scripts/sanitizer-drive.sh $(or $(SAN),tsan) $(TESTS)

# ---- unit tests (ASan+UBSan) ----
UNIT_BINS := $(patsubst tests/unit/%.c,build/asan/tests/%,$(UNIT_SRC))
build/asan/tests/%: build/asan/tests/unit/%.o $(call obj,asan,$(FAKE_SRC)) build/asan/libbd.a build/asan/libfs.a build/asan/libstore.a
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LDLIBS) $(PQ_LIBS) $(CMOCKA_LIBS) $(TEST_LDFLAGS)
# The GC model test runs the store on a wall clock of its own.
build/asan/tests/test_store_gc_model: TEST_LDFLAGS = -Wl,--wrap=clock_gettime

# ---- stress tests (TSan) ----
STRESS_BINS := $(patsubst tests/stress/%.c,build/tsan/tests/%,$(STRESS_SRC))
build/tsan/tests/%: build/tsan/tests/stress/%.o $(call obj,tsan,$(FAKE_SRC)) build/tsan/libstore.a
	$(CC) $(TSAN_CFLAGS) -o $@ $^ $(LDLIBS) $(CMOCKA_LIBS)

# ---- benchmarks (optimised) ----
BENCH_BINS := $(patsubst tests/bench/%.c,build/rel/tests/%,$(BENCH_SRC))
build/rel/tests/%: build/rel/tests/bench/%.o build/rel/libstore.a
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

# ---- t63's log-line delay (LD_PRELOAD): widens a race window ----
build/logdelay.so: tests/shims/logdelay.c
	@mkdir -p build
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -fPIC -shared -pthread -o $@ $<

# ---- t04's failing look at other mount namespaces (LD_PRELOAD): fail closed ----
build/procfail.so: tests/shims/procfail.c
	@mkdir -p build
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -fPIC -shared -o $@ $< -ldl

# ---- the power-cut library (LD_PRELOAD) the crash harness runs branchd under ----
build/powercut.so: tests/powercut/powercut.c
	@mkdir -p build
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -fPIC -shared -pthread -o $@ $< -ldl

deps:
	@bash scripts/install-deps.sh

check: deps
	$(MAKE) all
	$(MAKE) check-layers
	$(MAKE) check-unit
	$(MAKE) check-stress
	$(MAKE) check-integration

check-unit: $(UNIT_BINS)
	@fails=0; for t in $(UNIT_BINS); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t || { echo "FAILED: $$t"; fails=$$((fails + 1)); }; done; \
	[ $$fails -eq 0 ] || { echo "$$fails unit test binaries failed"; exit 1; }

check-stress: $(STRESS_BINS)
	@set -e; for t in $(STRESS_BINS); do echo "== $$t"; TSAN_OPTIONS=halt_on_error=1 setarch $$(uname -m) -R $$t; done

check-integration: all build/powercut.so build/logdelay.so build/procfail.so
	@bash tests/integration/run.sh

crashtest: all build/powercut.so
	@CRASH_ROUNDS=$${CRASH_ROUNDS:-50} bash tests/integration/crash.sh

# power cuts of the store itself, hundreds, with a model of its state
# (tests/stress/powercut_store.py; PS_ITERATIONS, PS_SEED, PS_GC_THREAD=1,
# BRANCHFS_JOURNAL_KIB); not part of `check`
build/rel/tests/powercut_store: build/rel/tests/stress/powercut_store.o build/rel/libstore.a
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

powercut-store: build/rel/tests/powercut_store build/powercut.so
	@d=$$(mktemp -d /var/tmp/powercut-store.XXXXXX) && \
	python3 tests/stress/powercut_store.py build/rel/tests/powercut_store "$$d" \
		$${PS_ITERATIONS:-200} $${PS_SEED:-$$(( $$(date +%s) % 100000 ))} && rm -rf "$$d"

# a randomized soak of branchd under a Postgres load (tests/soak/soak.py):
# SOAK_SECONDS of random operations, 180 by default; not part of `check`
soak: all
	@python3 tests/soak/soak.py

bench: $(BENCH_BINS) all
	@set -e; for b in $(BENCH_BINS); do echo "== $$b"; $$b; done
	@if [ -f tests/bench/pg_bench.sh ]; then bash tests/bench/pg_bench.sh; fi
	@if [ -f tests/bench/gc_bench.sh ]; then bash tests/bench/gc_bench.sh; fi

# store/ and fs/ may not include higher layers; third-party headers stay in
# their one confinement file.
check-layers:
	@bash scripts/check-layers.sh

format-check:
	@clang-format --dry-run --Werror $(STORE_SRC) $(FS_SRC) $(BD_SRC) branchd/branchctl.c store/*.h fs/*.h branchd/*.h

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/man/man7 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 bin/branchd bin/branchctl $(DESTDIR)$(PREFIX)/bin/
	for m in man/*.1; do [ -e "$$m" ] && install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man1/ || true; done
	for m in man/*.7; do [ -e "$$m" ] && install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man7/ || true; done
	for m in man/*.8; do [ -e "$$m" ] && install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man8/ || true; done

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)

# libFuzzer targets for every parser of outside input, FUZZ_TIME s each.
fuzz:
	@bash scripts/fuzz.sh
