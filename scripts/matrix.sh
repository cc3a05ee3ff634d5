#!/usr/bin/env bash
# make matrix: the module built, unit-tested and run through the whole t/
# suite against each nginx and OpenSSL its users run:
#
#   host     Debian 12's nginx 1.22.1 and OpenSSL 3.0 (this machine)
#   trixie   Debian 13's nginx 1.26.3 and OpenSSL 3.5, in a debootstrap chroot
#   sid      Debian sid's nginx 1.30 and OpenSSL 3.6, in a debootstrap chroot
#   source   nginx built here from each tarball (stable and mainline), with
#            this machine's OpenSSL; the module built for it by
#            scripts/build-for-nginx.sh, as a user would
#
# In the chroots the Debian package is also built (make deb) and taken
# through that release's nginx (scripts/package-roundtrip.sh).
#
#   MATRIX="host trixie sid source"   the cells to run (default: all)
#   NGINX_TARBALL="a.tar.gz ..."      the source cells' tarballs (default:
#                                     ../shared/nginx/nginx-*.tar.gz)
#   MATRIX_CHROOTS=DIR                where chroots live (/var/tmp/...)
#   MATRIX_FRESH=1                    make the chroots anew (default in CI)
#
# Each chroot gets a copy of the working tree (with the emulator's
# node_modules, which are plain JavaScript) and runs the same commands as
# the host, with Debian's own nginx, nginx-dev, OpenSSL and Node.js there.
# Builds come first (the chroots are made meanwhile), then the test suites
# one at a time, so that no suite shares the two cores with a build.
# Exit status: non-zero when any cell fails; a table is printed at the end.
set -u
cd "$(dirname "$0")/.."
root=$PWD
out=$root/build/matrix
chroots=${MATRIX_CHROOTS:-/var/tmp/stytch-tat-matrix}
cells=${MATRIX:-host trixie sid source}
fresh=${MATRIX_FRESH:-${CI:+1}}

log() { printf '== %s\n' "$*"; }
want() { case " $cells " in *" $1 "*) return 0 ;; esac; return 1; }

t0=$(date +%s)
mkdir -p "$out"

# ------------------------------------------------------------ bookkeeping

declare -A NGINX SSL WHERE RES
rows=()

# step CELL KIND COMMAND...: runs it, output in build/matrix/CELL/KIND.log
step() {
    local cell=$1 kind=$2 t rc
    shift 2
    mkdir -p "$out/$cell"
    t=$(date +%s)
    "$@" > "$out/$cell/$kind.log" 2>&1
    rc=$?
    t=$(( $(date +%s) - t ))
    if [ $rc -eq 0 ]; then
        RES[$cell.$kind]="ok $(summary "$kind" "$out/$cell/$kind.log")"
        log "$cell: $kind ok (${t}s)"
    else
        RES[$cell.$kind]="FAIL"
        log "$cell: $kind FAILED (${t}s), build/matrix/$cell/$kind.log:"
        tail -30 "$out/$cell/$kind.log" | sed 's/^/    /'
    fi
    return $rc
}

# how many tests ran, from the runners' closing lines
summary() {
    local n
    case $1 in
    unit) n=$(grep -ho '\[  PASSED  \] [0-9]* test' "$2" | awk '{ s += $4 } END { print s }')
          [ -n "$n" ] && echo "($n)" ;;
    t)    n=$(grep -ho 'Files=[0-9]*, Tests=[0-9]*' "$2" | tail -1 | sed 's/.*Tests=//')
          [ -n "$n" ] && echo "($n)" ;;
    esac
}

unit_tests() {
    make -s -C t/unit clean && make -s -C t/unit run \
        && make -s -C t/unit SANITIZE=1 run
    local rc=$?
    make -s -C t/unit clean
    return $rc
}

# the emulator's packages, installed on the host once (the chroots get them)
npm_ci() {
    local d
    for d in t/emulator t/tools; do
        if [ ! -d "$d/node_modules" ] || [ "$d/package-lock.json" -nt "$d/node_modules" ]; then
            (cd "$d" && npm ci --no-audit --no-fund --loglevel=error) || return 1
            touch "$d/node_modules"
        fi
    done
}

# ------------------------------------------------------------ chroots: start

suites=()
want trixie && suites+=(trixie)
want sid && suites+=(sid)
declare -A CREATE_PID
for s in "${suites[@]}"; do
    mkdir -p "$out/$s"
    if [ -n "$fresh" ]; then
        bash scripts/debian-chroot.sh remove "$chroots/$s" || exit 1
    fi
    log "$s: making the chroot in the background ($chroots/$s)"
    bash scripts/debian-chroot.sh create "$s" "$chroots/$s" \
        > "$out/$s/create.log" 2>&1 &
    CREATE_PID[$s]=$!
done

# ------------------------------------------------------------ builds

if want host; then
    rows+=(host)
    NGINX[host]="$(/usr/sbin/nginx -v 2>&1 | sed 's,.*/,,') (Debian)"
    SSL[host]=$(openssl version | awk '{ print $2 }')
    WHERE[host]="Debian 12, this machine"
    step host build make -s
fi

tarballs=()
if want source; then
    if [ -n "${NGINX_TARBALL:-}" ]; then
        read -r -a tarballs <<< "$NGINX_TARBALL"
    else
        for f in "$root"/../shared/nginx/nginx-*.tar.gz; do
            [ -f "$f" ] && tarballs+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
        done
        [ ${#tarballs[@]} -gt 0 ] \
            || log "source: no ../shared/nginx/nginx-*.tar.gz (set NGINX_TARBALL)"
    fi
fi

# nginx itself from a tarball, --with-compat and the modules the suite uses
# (those of scripts/sanitize.sh)
build_nginx() {
    local tarball=$1 dir=$2 configure
    rm -rf "$dir/nginx"
    mkdir -p "$dir/nginx"
    tar -xzf "$tarball" -C "$dir/nginx" --strip-components=1 || return 1
    if [ -x "$dir/nginx/configure" ]; then configure=./configure
    else configure=./auto/configure
    fi
    (cd "$dir/nginx" && $configure --prefix="$dir/prefix" --with-compat \
        --with-debug --with-threads --with-pcre --with-http_ssl_module \
        --with-http_auth_request_module --with-http_realip_module \
        --with-http_stub_status_module --with-http_sub_module \
        --with-http_v2_module) || return 1
    make -C "$dir/nginx" -f objs/Makefile -j2 binary
}

build_source() {
    local tarball=$1 dir=$2
    build_nginx "$tarball" "$dir" || return 1
    # the module as a user builds it for that nginx, checked to load into it
    bash scripts/build-for-nginx.sh --nginx "$dir/nginx/objs/nginx" \
        --out "$dir/module" "$tarball"
}

for tb in "${tarballs[@]}"; do
    v=$(basename "$tb" .tar.gz)
    v=${v#nginx-}
    cell=nginx-$v
    rows+=("$cell")
    NGINX[$cell]="$v (source)"
    SSL[$cell]=$(openssl version | awk '{ print $2 }')
    WHERE[$cell]="$(basename "$tb"), this machine"
    RES[$cell.unit]="as Debian 12"
    step "$cell" build build_source "$tb" "$out/$cell"
done

# ------------------------------------------------------------ chroots: build

npm_ci > "$out/npm.log" 2>&1 || { cat "$out/npm.log"; log "npm ci failed"; }

# a copy of the working tree (tracked and new files, not build/) and the
# emulator's node_modules, at /src in the chroot
copy_tree() {
    local dir=$1
    rm -rf --one-file-system "$dir/src"
    mkdir -p "$dir/src"
    { git ls-files -z -c -o --exclude-standard
      find t/emulator/node_modules t/tools/node_modules -print0 2>/dev/null
    } | tar --null --no-recursion --ignore-failed-read -T - -cf - \
      | tar -xf - -C "$dir/src"
}

in_chroot() {
    local s=$1
    shift
    bash scripts/debian-chroot.sh run "$chroots/$s" bash -c "cd /src && $*"
}

for s in "${suites[@]}"; do
    rows+=("$s")
    case $s in
    trixie) WHERE[$s]="Debian 13 (trixie) chroot" ;;
    *)      WHERE[$s]="Debian $s chroot" ;;
    esac
    if ! wait "${CREATE_PID[$s]}"; then
        RES[$s.build]="FAIL (chroot)"
        log "$s: the chroot could not be made, build/matrix/$s/create.log:"
        tail -20 "$out/$s/create.log" | sed 's/^/    /'
        continue
    fi
    sed 's/^/    /' "$out/$s/create.log"
    NGINX[$s]="$(chroot "$chroots/$s" /usr/sbin/nginx -v 2>&1 | sed 's,.*/,,') (Debian)"
    SSL[$s]=$(chroot "$chroots/$s" openssl version | awk '{ print $2 }')
    copy_tree "$chroots/$s" || { RES[$s.build]="FAIL (copy)"; continue; }
    # DEB_BUILD: the chroot has its packages; nginx-core is no more in 13
    step "$s" build in_chroot "$s" 'make -s DEB_BUILD= all'
done

# ------------------------------------------------------------ tests

if want host && [ "${RES[host.build]}" != FAIL ]; then
    step host unit unit_tests
    step host t env PROVE_FILES=t/ bash scripts/test.sh
fi

for tb in "${tarballs[@]}"; do
    v=$(basename "$tb" .tar.gz)
    cell=nginx-${v#nginx-}
    [ "${RES[$cell.build]}" = FAIL ] && continue
    step "$cell" t env TEST_NGINX_BINARY="$out/$cell/nginx/objs/nginx" \
        TEST_NGINX_MODULE="$out/$cell/module/ngx_http_stytch_tat_module.so" \
        PROVE_FILES=t/ bash scripts/test.sh
done

for s in "${suites[@]}"; do
    case ${RES[$s.build]:-} in ok*) ;; *) continue ;; esac
    step "$s" unit in_chroot "$s" 'make -s -C t/unit run && make -s -C t/unit SANITIZE=1 run'
    step "$s" t in_chroot "$s" 'PROVE_FILES=t/ bash scripts/test.sh'
done

# the Debian package of each Debian release, built there and taken through
# its nginx and out again (the host's: make package-roundtrip, after this)
for s in "${suites[@]}"; do
    case ${RES[$s.build]:-} in ok*) ;; *) continue ;; esac
    step "$s" deb in_chroot "$s" 'make -s deb && bash scripts/package-roundtrip.sh' \
        && RES[$s.deb]="ok $(grep -ho 'nginx-abi-[0-9a-z.-]*' "$out/$s/deb.log" | head -1)"
done

# ------------------------------------------------------------ the table

{
    printf '\n%-16s %-8s %-36s %-6s %-13s %-10s %s\n' nginx OpenSSL where \
        build unit t/ .deb
    for c in "${rows[@]}"; do
        printf '%-16s %-8s %-36s %-6s %-13s %-10s %s\n' "${NGINX[$c]:-?}" \
            "${SSL[$c]:-?}" "${WHERE[$c]}" "${RES[$c.build]:-skipped}" \
            "${RES[$c.unit]:-skipped}" "${RES[$c.t]:-skipped}" \
            "${RES[$c.deb]:--}"
    done
    printf '\nunit: C unit tests, plain and under ASan+UBSan (count: tests run);\n'
    printf 't/: the integration suite (count: prove tests);\n'
    printf '.deb: make deb and the package round trip in that release (its\n'
    printf 'nginx-abi); Debian 12: make package-roundtrip; total %ss\n' \
        "$(( $(date +%s) - t0 ))"
} > "$out/table.txt"
cat "$out/table.txt"

# a failed cell, or one whose t/ did not run, fails the run
status=0
for c in "${rows[@]}"; do
    case "${RES[$c.build]:-} ${RES[$c.unit]:-} ${RES[$c.t]:-} ${RES[$c.deb]:-}" in
    *FAIL*) status=1 ;;
    esac
    case ${RES[$c.t]:-} in ok*) ;; *) status=1 ;; esac
done

exit $status
