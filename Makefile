# A thin wrapper over meson: `make demo` and `make test` do all the set-up on a fresh
# Debian machine (they install missing packages with apt-get when run as root).
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan

FUZZ_SECONDS ?= 60
# e.g. make bench BENCH_ARGS='--rounds 1 --conns 64'
BENCH_ARGS ?=

# e.g. make mutate MUTATE_ARGS='--only sig_compare_16'
MUTATE_ARGS ?=

.PHONY: all deps build asan tsan demo test bench fuzz soak mutate clean package

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) --buildtype=debugoptimized >/dev/null
	@ninja -C $(BUILD)

asan: deps
	@test -f $(ASAN_BUILD)/build.ninja || meson setup $(ASAN_BUILD) \
		-Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug >/dev/null
	@ninja -C $(ASAN_BUILD)

tsan: deps
	@test -f $(TSAN_BUILD)/build.ninja || meson setup $(TSAN_BUILD) \
		-Db_sanitize=thread --buildtype=debug >/dev/null
	@ninja -C $(TSAN_BUILD)

demo: build
	@python3 scripts/demo.py --bin $(BUILD)/orderbridge

test:
	@sh scripts/install-deps.sh test
	@$(MAKE) --no-print-directory asan
	@sh scripts/test.sh $(ASAN_BUILD)

bench: build
	@ninja -C $(BUILD) bench/orderbridge-ceiling >/dev/null
	@python3 bench/ingest_bench.py --bin $(BUILD)/orderbridge \
		--ceiling-bin $(BUILD)/bench/orderbridge-ceiling --rss $(BENCH_ARGS)
	@python3 bench/b24_requests.py --bin $(BUILD)/orderbridge
	@python3 bench/b24_load.py --bin $(BUILD)/orderbridge --results bench/RESULTS.md
	@python3 bench/unsigned_rss.py --bin $(BUILD)/orderbridge --results bench/RESULTS.md

fuzz: deps
	@sh scripts/fuzz.sh $(FUZZ_SECONDS)

soak: build asan tsan
	@sh scripts/soak.sh $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)

# plants each mutant of tests/mutants.tsv, runs its tests, fails below 95 % killed
mutate: deps
	@python3 scripts/mutate.py $(MUTATE_ARGS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz var

# the .deb, built by dpkg-buildpackage from a copy of the tracked files (the tree stays
# clean), into var/package/
package:
	@rm -rf var/package/src && mkdir -p var/package/src
	@git ls-files -z | xargs -0 cp --parents -t var/package/src
	@cd var/package/src && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b >../build.log 2>&1 \
		|| { tail -n 40 ../build.log; exit 1; }
	@rm -rf var/package/src && ls var/package/*.deb
