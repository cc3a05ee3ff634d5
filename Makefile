# ngx_http_stytch_tat_module: build, run and test on Debian 12.
#
#   make          build build/ngx_http_stytch_tat_module.so for Debian's nginx
#   make test     every test: C unit tests, emulator fidelity, t/ with prove
#   make hardening  t/ under ASan+UBSan, valgrind, fuzzing
#   make run      nginx + module, the Stytch emulator and a demo upstream
#   make bench-hit  a zone hit against proxy_pass alone and with static
#                 headers: callgrind, page faults, req/s (bench/README.md)
#   make bench-peers  the same with the OpenResty peer (bench/peers/)
#   make bench-cold  a new identity every request through a fake Stytch
#                 answering in 50 ms, the module beside the OpenResty peer
#
# nginx's configure runs once per compiler (build/nginx-CC); later builds
# only recompile the module's sources.

SHELL       := /bin/bash
ifeq ($(origin CC),default)
CC          := gcc
endif
NGINX_SRC   ?= /usr/share/nginx/src
NGINX_BIN   ?= /usr/sbin/nginx
BUILD       := build
CC_NAME     := $(notdir $(firstword $(CC)))
NGX_TREE    := $(BUILD)/nginx-$(CC_NAME)
MODULE      := $(BUILD)/ngx_http_stytch_tat_module.so
SRCS        := ngx_http_stytch_tat_module.c $(wildcard src/*.c src/*.h)

# Debian's own hardening flags, plus the warnings we hold ourselves to;
# handlers of nginx's APIs leave parameters unused, as nginx's own flags say
NGX_CC_OPT  := -g -O2 -fstack-protector-strong -Wformat \
               -Werror=format-security -fPIC -Wdate-time -D_FORTIFY_SOURCE=2 \
               -Wall -Wextra -Wno-unused-parameter -Werror $(EXTRA_CC_OPT)
NGX_LD_OPT  := -Wl,-z,relro -Wl,-z,now -fPIC $(EXTRA_LD_OPT)

DEB_BUILD   := nginx-core nginx-dev libjansson-dev libssl-dev \
               libpcre2-dev zlib1g-dev
# prometheus: promtool for t/060 and t/062, the server for t/061's scrape
DEB_TEST    := libcmocka-dev libtest-base-perl openssl curl clang prometheus

.PHONY: all deps deps-test test hardening unit run clang bench bench-hit \
        bench-peers bench-cold clean

all: $(MODULE)

deps:
	@sh scripts/apt-ensure.sh $(DEB_BUILD) $(if $(filter clang,$(CC_NAME)),clang)

# Node.js may come from elsewhere than Debian (with its own npm): keep it
# when it is recent enough; none at all: Debian 12's (18.19+) suffices
deps-test: deps
	@sh scripts/apt-ensure.sh $(DEB_TEST)
	@command -v node >/dev/null && command -v npm >/dev/null \
	    || sh scripts/apt-ensure.sh nodejs npm
	@sh scripts/node-check.sh

$(NGX_TREE)/objs/Makefile: config Makefile | deps
	rm -rf $(NGX_TREE)
	mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(NGX_TREE)
	. $(NGX_TREE)/conf_flags && cd $(NGX_TREE) && \
	    ./configure --with-cc="$(CC)" "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="$(NGX_CC_OPT)" --with-ld-opt="$(NGX_LD_OPT)" \
	        --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -20 configure.log; exit 1; }

$(NGX_TREE)/objs/ngx_http_stytch_tat_module.so: $(NGX_TREE)/objs/Makefile $(SRCS)
	$(MAKE) -C $(NGX_TREE) -f objs/Makefile modules

$(MODULE): $(NGX_TREE)/objs/ngx_http_stytch_tat_module.so
	mkdir -p $(dir $@)
	cp $< $@

# the same sources with clang and the same warnings, into build/clang/
clang:
	$(MAKE) CC=clang MODULE=$(BUILD)/clang/ngx_http_stytch_tat_module.so \
	    $(BUILD)/clang/ngx_http_stytch_tat_module.so

unit: deps-test
	$(MAKE) -C t/unit run

test: all deps-test
	bash scripts/test.sh

# nginx and the module under ASan+UBSan with the whole t/ suite, valgrind
# on the core paths, and every fuzz target for FUZZ_SECONDS each
FUZZ_SECONDS ?= 30

hardening: all deps-test
	@sh scripts/apt-ensure.sh clang libclang-rt-14-dev valgrind
	bash scripts/sanitize.sh
	bash scripts/valgrind.sh
	bash fuzz/run.sh $(FUZZ_SECONDS)

run: all deps-test
	bash scripts/run.sh

bench: all deps-test
	bash bench/run.sh

bench-hit: all deps-test
	@sh scripts/apt-ensure.sh wrk valgrind
	bash bench/hit.sh

bench-peers: all deps-test
	@sh scripts/apt-ensure.sh wrk valgrind libnginx-mod-http-lua \
	    lua-resty-core lua-resty-lrucache lua-cjson lua-luaossl
	BENCH_PEERS=1 bash bench/hit.sh

bench-cold: all deps-test
	@sh scripts/apt-ensure.sh wrk valgrind libnginx-mod-http-lua \
	    lua-resty-core lua-resty-lrucache lua-cjson lua-luaossl
	bash bench/cold.sh

clean:
	rm -rf $(BUILD)
	$(MAKE) -C t/unit clean

# ---------------------------------------------------------------- releases
#
#   make dist     build/ngx_http_stytch_tat_module-VERSION.tar.gz: what a
#                 builder needs (sources, config, README and the docs it
#                 links, LICENSE, CHANGELOG, examples)
#   make deb      build/deb/libnginx-mod-http-stytch-tat_VERSION-1_ARCH.deb,
#                 Debian's nginx module packaging (debian/), from that tarball
#   make package-roundtrip  the .deb into Debian's nginx and out again
#   make matrix   build + unit tests + t/ against several nginx and OpenSSL
#                 versions (Debian chroots, nginx built from source):
#                 NGINX_TARBALL="nginx-X.tar.gz ..." for your own versions

VERSION     := $(shell sed -n 's/^\#define NGX_HTTP_STYTCH_TAT_VERSION *"\(.*\)"/\1/p' \
                   src/ngx_http_stytch_tat_version.h)
DIST        := ngx_http_stytch_tat_module-$(VERSION)
DIST_FILES  := config ngx_http_stytch_tat_module.c $(wildcard src/*.c src/*.h) \
               README.md LICENSE CHANGELOG.md $(wildcard docs/*.md) \
               $(wildcard examples/*)

.PHONY: dist deb package-roundtrip matrix

dist: $(BUILD)/$(DIST).tar.gz

# reproducible: sorted, no owners, every mtime the last commit's time
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null \
                         || stat -c %Y src/ngx_http_stytch_tat_version.h)

$(BUILD)/$(DIST).tar.gz: $(DIST_FILES)
	@test -n "$(VERSION)" || { echo "no version in src/ngx_http_stytch_tat_version.h"; exit 1; }
	mkdir -p $(BUILD)
	tar --create --sort=name --owner=0 --group=0 --numeric-owner \
	    --mtime="@$(SOURCE_DATE_EPOCH)" \
	    --transform='s,^,$(DIST)/,' $(DIST_FILES) | gzip -n -9 > $@.tmp
	mv $@.tmp $@
	@echo "$@"

deb: dist
	bash scripts/build-deb.sh $(BUILD)/$(DIST).tar.gz

package-roundtrip: deb
	bash scripts/package-roundtrip.sh

matrix: deps-test
	bash scripts/matrix.sh
