#!/usr/bin/env bash
# Builds the Debian package from the release tarball, the way Debian builds
# its own nginx modules (debian/: dh-sequence-nginx from nginx-dev):
#
#   bash scripts/build-deb.sh build/ngx_http_stytch_tat_module-VERSION.tar.gz
#
# Everything happens in build/deb/ (the tarball as the .orig, unpacked, with
# debian/ beside it), so the source tree stays clean; the .deb lands there.
set -u
cd "$(dirname "$0")/.."
root=$PWD

die() { printf 'build-deb.sh: %s\n' "$*" >&2; exit 1; }

tarball=${1:?usage: build-deb.sh DIST_TARBALL}
[ -f "$tarball" ] || die "no $tarball (make dist)"
version=$(sed -n 's/^#define NGX_HTTP_STYTCH_TAT_VERSION *"\(.*\)"/\1/p' \
          src/ngx_http_stytch_tat_version.h)
pkg=libnginx-mod-http-stytch-tat

# debian/changelog must name the same upstream version
deb_version=$(dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null \
              || sed -n '1s/.*(\(.*\)).*/\1/p' debian/changelog)
[ "${deb_version%-*}" = "$version" ] \
    || die "debian/changelog has $deb_version, the module is $version"

# the build dependencies of debian/control (nginx-dev brings the nginx
# binary, which dh_auto_test loads the module into)
sh scripts/apt-ensure.sh build-essential dpkg-dev debhelper nginx-dev libjansson-dev \
    libssl-dev || exit 1

out=$root/build/deb
rm -rf "$out"
mkdir -p "$out"
cp "$tarball" "$out/${pkg}_$version.orig.tar.gz"
tar -xzf "$tarball" -C "$out" || die "cannot unpack $tarball"
src=$out/ngx_http_stytch_tat_module-$version
cp -r debian "$src/"

echo "== dpkg-buildpackage -us -uc -b in $src"
(cd "$src" && dpkg-buildpackage -us -uc -b) > "$out/build.log" 2>&1 \
    || { tail -40 "$out/build.log"; die "dpkg-buildpackage failed (build/deb/build.log)"; }

deb=$(ls "$out"/${pkg}_"$deb_version"_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || die "no .deb in $out"
echo "== $deb"
dpkg-deb -f "$deb" Package Version Architecture Depends
dpkg-deb -c "$deb" | awk '{ print "   ", $6 }'
