#!/usr/bin/env bash
# Builds ngx_http_stytch_tat_module.so for an nginx you already run, checks
# that it loads into that nginx, and says where to put it.
#
#   scripts/build-for-nginx.sh [--nginx BINARY] [--out DIR] [SOURCE]
#
#   BINARY  the nginx to build for (default: `nginx` on PATH, /usr/sbin/nginx)
#   SOURCE  nginx's source of exactly BINARY's version: a tarball
#           (nginx-1.26.3.tar.gz from nginx.org) or an unpacked tree.
#           Default: Debian's nginx-dev tree (/usr/share/nginx/src) when its
#           version is BINARY's.
#   DIR     where the .so goes (default: build/for-nginx-VERSION)
#
# A dynamic module loads only into the nginx version it was built with, and
# only when both were configured --with-compat (or with identical
# arguments); see docs/install.md, "Building for your nginx".  Needs a C
# compiler, make, and the jansson, OpenSSL (3.0 or later), PCRE2 and zlib
# headers.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)

die() { printf 'build-for-nginx.sh: %s\n' "$*" >&2; exit 1; }
log() { printf '== %s\n' "$*"; }

bin= out= src=
while [ $# -gt 0 ]; do
    case $1 in
    --nginx) bin=${2:?--nginx needs a path}; shift 2 ;;
    --out)   out=${2:?--out needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,20s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*)      die "unknown option $1" ;;
    *)       src=$1; shift ;;
    esac
done

[ -n "$bin" ] || bin=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$bin" ] || die "no nginx binary at $bin (use --nginx PATH)"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

info=$("$bin" -V 2>&1) || die "$bin -V failed"
version=$(printf '%s\n' "$info" | sed -n 's,^nginx version: [^/]*/\([0-9.]*\).*,\1,p')
[ -n "$version" ] || die "cannot read the version from $bin -V"
args_line=$(printf '%s\n' "$info" | sed -n 's/^configure arguments: //p')

# the configure arguments as words, quotes honoured (xargs splits like a
# shell, without evaluating anything)
args=()
while IFS= read -r a; do
    args+=("$a")
done < <(printf '%s\n' "$args_line" | xargs -n1 printf '%s\n' 2>/dev/null)

compat=no
modules_path=
prefix=
for a in "${args[@]}"; do
    case $a in
    --with-compat)     compat=yes ;;
    --modules-path=*)  modules_path=${a#*=} ;;
    --prefix=*)        prefix=${a#*=} ;;
    esac
done
[ -n "$modules_path" ] || modules_path=${prefix:-/usr/local/nginx}/modules

log "nginx $version at $bin (--with-compat: $compat)"

[ -n "$out" ] || out=$here/build/for-nginx-$version
mkdir -p "$out"
out=$(cd "$out" && pwd)
tree=$out/nginx-src

# ------------------------------------------------------------ the source

debian_tree=/usr/share/nginx/src
tree_version() {
    sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$1/src/core/nginx.h" 2>/dev/null
}

if [ -z "$src" ]; then
    if [ -f "$debian_tree/conf_flags" ] \
       && [ "$(tree_version "$debian_tree")" = "$version" ]
    then
        src=$debian_tree
    else
        cat >&2 <<END
build-for-nginx.sh: no nginx $version source here.
Download nginx-$version.tar.gz from https://nginx.org/download/ (same
version as your nginx), then run:

    $0 --nginx $bin nginx-$version.tar.gz

(On Debian or Ubuntu, "apt-get install nginx-dev" gives the source of the
distribution's own nginx.)
END
        exit 2
    fi
fi

rm -rf "$tree"
mkdir -p "$tree"
if [ -d "$src" ]; then
    cp -r "$src/." "$tree/" || die "cannot copy $src"
else
    tar -xzf "$src" -C "$tree" --strip-components=1 || die "cannot unpack $src"
fi

have=$(tree_version "$tree")
[ "$have" = "$version" ] || die "$src is nginx $have, but $bin is nginx $version:
a module built from it would not load (\"module ... version ... instead
of ...\").  Use the source of nginx $version."

# a release tarball has ./configure; nginx's repository, auto/configure
if [ -x "$tree/configure" ]; then configure=./configure
elif [ -f "$tree/auto/configure" ]; then configure=./auto/configure
else die "$src: no configure script"
fi

# ------------------------------------------------------------ configure

conf=()
if [ -f "$tree/conf_flags" ]; then
    # Debian's nginx-dev: exactly the flags Debian's nginx was built with
    # shellcheck disable=SC1091
    . "$tree/conf_flags"
    conf=("${NGX_CONF_FLAGS[@]}")
elif [ $compat = yes ]; then
    # --with-compat fixes the layout of every structure a module sees: the
    # other arguments (and the libraries they need) do not matter
    conf=(--with-compat)
else
    # no --with-compat: the module must be built with the same arguments,
    # less the modules of others whose source is not here
    echo "warning: $bin was built without --with-compat; building with its" >&2
    echo "         own configure arguments (each needs its libraries)" >&2
    for a in "${args[@]}"; do
        case $a in
        --add-module=*|--add-dynamic-module=*) ;;
        *) conf+=("$a") ;;
        esac
    done
fi

log "configuring nginx $version with the module ($out/configure.log)"
(cd "$tree" && $configure "${conf[@]}" ${NGX_EXTRA_CONF:-} \
        --with-cc-opt="${CC_OPT:--g -O2 -fPIC}" \
        --with-ld-opt="${LD_OPT:--fPIC}" \
        --add-dynamic-module="$here") > "$out/configure.log" 2>&1 \
    || { tail -15 "$out/configure.log"; die "configure failed"; }

log "building the module ($out/make.log)"
make -C "$tree" -f objs/Makefile -j"${JOBS:-2}" modules > "$out/make.log" 2>&1 \
    || { tail -30 "$out/make.log"; die "build failed"; }

so=$out/ngx_http_stytch_tat_module.so
cp "$tree/objs/ngx_http_stytch_tat_module.so" "$so" || die "no module built"

# ------------------------------------------------------------ load it

log "checking that $bin loads it (nginx -t)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stytch-tat-load.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/logs"
cat > "$tmp/nginx.conf" <<END
load_module $so;
error_log $tmp/logs/error.log notice;
pid $tmp/logs/nginx.pid;
events {}
http {
    stytch_tat_zone zone=load_check:1m;
}
END
if ! "$bin" -t -p "$tmp/" -c "$tmp/nginx.conf" > "$tmp/t.out" 2>&1; then
    cat "$tmp/t.out" >&2
    die "$bin does not load $so"
fi
grep -ho 'stytch-tat module/[0-9.]*' "$tmp/logs/error.log" | head -1

cat <<END

Built: $so
for nginx $version ($bin).  To use it:

    cp $so $modules_path/
    # at the top of nginx.conf (Debian: a file in /etc/nginx/modules-enabled/)
    load_module modules/ngx_http_stytch_tat_module.so;

then "nginx -t" and reload.
END
