#!/usr/bin/env bash
# The integration suite (t/*.t) against an nginx 1.22.1 built from the
# upstream source with AddressSanitizer + UBSan, the module built in the
# same tree (--add-dynamic-module).  Everything lives under build/asan/:
#
#   build/asan/nginx_1.22.1.orig.tar.gz   upstream source (apt-get source)
#   build/asan/nginx/                     the tree; objs/nginx, objs/*.so
#   build/asan/logs/                      sanitizer reports (must stay empty)
#
#   bash scripts/sanitize.sh              build (or rebuild what changed) and test
#   SANITIZE_BUILD_ONLY=1 bash scripts/sanitize.sh
#   PROVE_FILES="t/001-mint.t" bash scripts/sanitize.sh
#   CC=gcc bash scripts/sanitize.sh       (default: clang; the tree is per CC)
#
# Exit status: non-zero when the build or a test fails, or when any
# sanitizer report was written (they are printed).
#
# Notes (each one cost a false report or a hang to learn)
# - Reports go to files (log_path) because the workers are daemonized and
#   their stderr is /dev/null; the workers run as nobody when the tests run
#   as root, hence the 0777 log directory.
# - nginx dlclose()s dynamic modules when the master destroys its cycle
#   pool at exit, before LeakSanitizer runs: a leak from the module would be
#   reported with "<unknown module>" frames.  A tiny preload library
#   (build/asan/nodlclose.so) makes dlclose() a no-op, for nginx only
#   (through the wrapper build/asan/nginx-run), so every frame symbolizes.
# - Every dynamic module defines its own ngx_modules[]: clang's ODR
#   indicator and detect_odr_violation=0 keep ASan from poisoning nginx's
#   array with the module's redzone (the master died on reload otherwise).
# - UBSan suppressions (nginx core idioms) match on source file names, which
#   need no symbolizer: a symbolizer started in the master is inherited by
#   the workers, which then read each other's answers (wrong frames, and
#   workers hung in it, so reloads never finished).
# - t/000-harness.t SIGSEGVs a worker on purpose and expects "exited on
#   signal 11": it runs with handle_segv=0, every other file with ASan's
#   handler.
# - scripts/lsan.supp holds narrow suppressions for nginx core's own
#   exit-time allocations; it never names the module's frames.
# - clang (the default) is the tested compiler; CC=gcc builds a separate
#   tree but lacks the ODR indicator.
set -u
cd "$(dirname "$0")/.."
root=$PWD

NGINX_VERSION=1.22.1
CC=${CC:-clang}
asan=$root/build/asan
tree=$asan/nginx
[ "$CC" = clang ] || tree=$asan/nginx-$(basename "$CC")
logs=$asan/logs
tarball=$asan/nginx_$NGINX_VERSION.orig.tar.gz
SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1"
# clang's ODR indicator: the module's own ngx_modules[] (every dynamic
# module has one) must not be registered, and its redzone poisoned, at the
# address of nginx's ngx_modules[], which the dynamic linker resolves it to:
# the master's memcpy() of that array on reload would be reported
case $(basename "$CC") in
clang*) SAN_FLAGS="$SAN_FLAGS -fsanitize-address-use-odr-indicator" ;;
esac

log() { printf '== %s\n' "$*"; }
die() { printf 'sanitize.sh: %s\n' "$*" >&2; exit 1; }

t0=$(date +%s)
mkdir -p "$asan"

# ------------------------------------------------------------------ source

if [ ! -s "$tarball" ]; then
    log "fetching nginx $NGINX_VERSION source (apt-get source)"
    src_list=/etc/apt/sources.list.d/debian-src.sources
    if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ /etc/apt/sources.list; then
        [ -f /etc/apt/sources.list.d/debian.sources ] \
            || die "no /etc/apt/sources.list.d/debian.sources to mirror as deb-src"
        sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
            > "$src_list"
        apt-get update -qq || die "apt-get update failed"
    fi
    # the Debian part may 404 on a snapshot mirror: only the .orig matters
    (cd "$asan" && apt-get source --download-only -qq nginx) >/dev/null 2>&1
    if [ ! -s "$tarball" ]; then
        apt-get update -qq
        (cd "$asan" && apt-get source --download-only -qq nginx) >/dev/null 2>&1
    fi
    [ -s "$tarball" ] || die "no $tarball after apt-get source"
fi

# ------------------------------------------------------------------ build

conf_args=(
    --with-cc="$CC"
    --with-cc-opt="$SAN_FLAGS"
    --with-ld-opt="-fsanitize=address,undefined"
    --prefix="$tree/prefix"
    --with-debug
    --with-threads
    --with-pcre
    --with-http_ssl_module
    --with-http_auth_request_module
    --with-http_realip_module
    --with-http_stub_status_module
    --with-http_sub_module
    --with-http_v2_module
    --add-dynamic-module="$root"
)
stamp="$(printf '%s\n' "$NGINX_VERSION" "${conf_args[@]}" | cksum | cut -d' ' -f1)"

if [ ! -f "$tree/objs/Makefile" ] || [ "$(cat "$tree/.conf-stamp" 2>/dev/null)" != "$stamp" ] \
   || [ "$root/config" -nt "$tree/objs/Makefile" ]
then
    log "configuring $tree"
    rm -rf "$tree"
    mkdir -p "$tree"
    tar -xzf "$tarball" -C "$tree" --strip-components=1 || die "cannot unpack $tarball"
    (cd "$tree" && ./configure "${conf_args[@]}" > configure.log 2>&1) \
        || { tail -30 "$tree/configure.log"; die "configure failed"; }
    echo "$stamp" > "$tree/.conf-stamp"
fi

log "building nginx + module with ASan/UBSan (make -j2)"
tb=$(date +%s)
make -s -j2 -C "$tree" -f objs/Makefile binary modules > "$asan/make.log" 2>&1 \
    || { tail -40 "$asan/make.log"; die "build failed"; }
log "build: $(( $(date +%s) - tb ))s"

# dlclose() as a no-op: see the notes above
if [ ! -f "$asan/nodlclose.so" ] || [ "$0" -nt "$asan/nodlclose.so" ]; then
    printf '%s\n' \
        '/* keeps dynamic modules mapped until exit, for LeakSanitizer */' \
        'int dlclose(void *handle) { (void) handle; return 0; }' \
        > "$asan/nodlclose.c"
    cc -shared -fPIC -O1 -o "$asan/nodlclose.so" "$asan/nodlclose.c" \
        || die "cannot build nodlclose.so"
fi

supp=$root/scripts/lsan.supp

# UBSan: nginx core's own, long-standing idioms.  Matched on the source
# file UBSan knows statically (never a file of the module): that needs no
# symbolizer, and a symbolizer started by the master would be shared by the
# workers it forks, which then read each other's answers (wrong frames,
# hangs).  nginx passes {0, NULL} strings to memcpy() with a zero length
# and offsets empty (NULL) buffers by zero.
cat > "$asan/ubsan.supp" <<'EOF_SUPP'
# generated by scripts/sanitize.sh
# ngx_cpymem() of an empty ngx_str_t whose data is NULL: ngx_pstrdup(),
# ngx_sprintf_str() ("%V" of an empty string)
nonnull-attribute:src/core/ngx_string.c
# ngx_http_send_response(): b->last = val.data + val.len, empty value
pointer-overflow:src/http/ngx_http_core_module.c
# ngx_http_script_add_code(): code pointer relocation after
# ngx_array_push_n() of an empty array
pointer-overflow:src/http/ngx_http_script.c
# HTTP/2 frames (ngx_http_v2_write_uint16/32()) and the request-line
# parser's method compares (ngx_str3_cmp() ... on a pipelined request) read
# and write unaligned where the platform allows it (NGX_HAVE_NONALIGNED on
# x86), by design
alignment:src/http/v2/*
alignment:src/http/ngx_http_parse.c
EOF_SUPP
cat > "$asan/nginx-run" <<EOF
#!/bin/sh
# nginx with ASan/UBSan reports to $logs (generated by scripts/sanitize.sh)
# one log_path for both (the combined runtime keeps only one); the slow
# unwinder for malloc stacks, or leaks through libcrypto stop at its frame;
# no ODR check: every dynamic module defines its own ngx_modules[],
# ngx_module_names[] and ngx_module_order[] (objs/*_modules.c), by design
export ASAN_OPTIONS="detect_leaks=1:detect_odr_violation=0:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1:fast_unwind_on_malloc=0:log_path=$logs/san\${ASAN_OPTIONS_EXTRA:+:\$ASAN_OPTIONS_EXTRA}"
export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0\${LSAN_OPTIONS_EXTRA:+:\$LSAN_OPTIONS_EXTRA}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:suppressions=$asan/ubsan.supp:log_path=$logs/san"
export LD_PRELOAD="$asan/nodlclose.so\${LD_PRELOAD:+:\$LD_PRELOAD}"
exec "$tree/objs/nginx" "\$@"
EOF
chmod 755 "$asan/nginx-run"

[ -n "${SANITIZE_BUILD_ONLY:-}" ] && { log "built in $(( $(date +%s) - t0 ))s"; exit 0; }

# ------------------------------------------------------------------ test

rm -rf "$logs"
mkdir -p "$logs"
chmod 0777 "$logs"
# the workers (nobody) must reach the log directory
for d in "$asan" "$root/build" "$root"; do chmod o+x "$d" 2>/dev/null; done

log "integration tests against the ASan/UBSan nginx"
tt=$(date +%s)
status=0
files=${PROVE_FILES:-t/}
case $files in t|t/|./t|./t/) files=$(ls t/*.t) ;; esac
# the harness's self-test kills a worker with SIGSEGV and expects "exited on
# signal 11": ASan's SEGV handler must stay out of that one file
harness_files= other_files=
for f in $files; do
    case $f in
    *000-harness.t) harness_files="$harness_files $f" ;;
    *)              other_files="$other_files $f" ;;
    esac
done
run_tests() {
    TEST_NGINX_BINARY=$asan/nginx-run \
    TEST_NGINX_MODULE=$tree/objs/ngx_http_stytch_tat_module.so \
    PROVE_FILES="$1" ASAN_OPTIONS_EXTRA="${2:-}" \
        bash scripts/test.sh || status=1
}
[ -n "$harness_files" ] && run_tests "$harness_files" handle_segv=0
[ -n "$other_files" ] && run_tests "$other_files"
log "tests: $(( $(date +%s) - tt ))s"

reports=$(find "$logs" -type f -size +0 | sort)
if [ -n "$reports" ]; then
    n=$(printf '%s\n' "$reports" | wc -l)
    log "$n sanitizer report file(s):"
    for f in $reports; do
        printf -- '---- %s\n' "$f"
        cat "$f"
    done
    status=1
else
    log "no sanitizer reports"
fi

[ $status -eq 0 ] || log "FAILED"
log "total: $(( $(date +%s) - t0 ))s"
exit $status
