# branchbox: the commands the README names. Each installs what is missing first.
#   make demo    build and run the main job end to end on examples/
#   make check   build with ASan+UBSan and run every test suite
#   make lint    clang-tidy over src/ with .clang-tidy
#   make bench   run the benchmarks and rewrite bench/RESULTS.md
#   make fuzz    run each libFuzzer target for FUZZ_SECONDS

BUILD       ?= build
CHECK_BUILD ?= build-check
VALGRIND_BUILD ?= build-valgrind
FUZZ_BUILD  ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: all deps build check lint demo bench fuzz clean

all: build

deps:
	@./scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dbuildtype=release -Db_ndebug=false >/dev/null

build: deps $(BUILD)/build.ninja
	@ninja -C $(BUILD) --quiet

$(CHECK_BUILD)/build.ninja:
	meson setup $(CHECK_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Ddebug_hooks=true >/dev/null

$(VALGRIND_BUILD)/build.ninja:
	meson setup $(VALGRIND_BUILD) -Dbuildtype=debugoptimized -Dfuzz_corpus_runner=false >/dev/null

# A check build set up before debug_hooks existed gets it turned on (the crash tests need it).
# The release build (what make demo and make bench run) is built too: -O3 warns where the
# other builds do not, and warnings are errors.
check: deps $(CHECK_BUILD)/build.ninja $(VALGRIND_BUILD)/build.ninja $(BUILD)/build.ninja
	@ninja -C $(CHECK_BUILD) --quiet build.ninja
	@meson introspect --buildoptions $(CHECK_BUILD) | python3 -c 'import json, sys; \
		sys.exit(not any(o["name"] == "debug_hooks" and o["value"] for o in json.load(sys.stdin)))' \
		|| meson configure $(CHECK_BUILD) -Ddebug_hooks=true >/dev/null
	@ninja -C $(CHECK_BUILD) --quiet
	@ninja -C $(VALGRIND_BUILD) --quiet
	@ninja -C $(BUILD) --quiet
	@./scripts/run-tests $(CHECK_BUILD) --valgrind $(VALGRIND_BUILD)

# clang-tidy with .clang-tidy over src/ (warnings are errors); slow, so not in every check.
lint: deps $(CHECK_BUILD)/build.ninja
	@ninja -C $(CHECK_BUILD) --quiet
	@./scripts/run-tests $(CHECK_BUILD) --suite lint

demo: build
	@./scripts/demo $(BUILD)

bench: build
	@./bench/run $(BUILD)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null

fuzz: deps $(FUZZ_BUILD)/build.ninja
	@ninja -C $(FUZZ_BUILD) --quiet
	@./tests/fuzz/run $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(CHECK_BUILD) $(VALGRIND_BUILD) $(FUZZ_BUILD)
