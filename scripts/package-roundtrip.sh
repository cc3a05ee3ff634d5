#!/usr/bin/env bash
# The Debian package's round trip through Debian's nginx, as root:
#
#   1. apt install ./libnginx-mod-http-stytch-tat_*.deb (make deb first)
#   2. the module is enabled in /etc/nginx/modules-enabled; nginx -t passes
#      for Debian's own configuration and for a minimal one that uses the
#      module (a signing key made here with openssl)
#   3. that nginx serves the JWKS and the status with the version
#   4. apt purge; nothing of the package is left
#
#   bash scripts/package-roundtrip.sh [DEB]
#
# Whatever happens, the nginx started here is stopped and the package
# purged again.
set -u
cd "$(dirname "$0")/.."
root=$PWD
pkg=libnginx-mod-http-stytch-tat
so=/usr/lib/nginx/modules/ngx_http_stytch_tat_module.so
available=/usr/share/nginx/modules-available/mod-http-stytch-tat.conf

log() { printf '== %s\n' "$*"; }
fail() { printf 'package-roundtrip.sh: FAILED: %s\n' "$*" >&2; exit 1; }

deb=${1:-$(ls "$root"/build/deb/${pkg}_*.deb 2>/dev/null | tail -1)}
[ -n "$deb" ] && [ -f "$deb" ] || fail "no .deb (make deb)"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
[ "$(id -u)" = 0 ] || fail "needs root (apt install)"

export DEBIAN_FRONTEND=noninteractive
tmp=$(mktemp -d /tmp/stytch-tat-roundtrip.XXXXXX)
chmod 755 "$tmp"

cleanup() {
    if [ -s "$tmp/nginx.pid" ]; then
        /usr/sbin/nginx -c "$tmp/nginx.conf" -s stop 2>/dev/null
        sleep 0.5
    fi
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q installed; then
        apt-get purge -y -qq "$pkg" > /dev/null 2>&1
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# ------------------------------------------------------------ install

log "apt install $deb"
dpkg-deb -f "$deb" Package Version Depends | sed 's/^/   /'
apt-get install -y -qq "$deb" > "$tmp/install.log" 2>&1 \
    || { cat "$tmp/install.log"; fail "apt install"; }
# Debian's postinst may start or reload the packaged nginx: not ours
if [ -d /run/systemd/system ]; then systemctl stop nginx 2>/dev/null; fi

link=$(ls /etc/nginx/modules-enabled/*stytch-tat* 2>/dev/null)
[ -n "$link" ] || fail "no link in /etc/nginx/modules-enabled"
log "enabled: $link -> $(readlink "$link"): $(cat "$link")"
[ -f "$so" ] || fail "no $so"

log "nginx -t (Debian's configuration, which loads modules-enabled/)"
/usr/sbin/nginx -t 2>&1 | sed 's/^/   /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "nginx -t"

# ------------------------------------------------------------ use it

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$tmp/tat-ec.pem" 2>/dev/null || fail "openssl genpkey"
# a free port, as the kernel picks one
port=$(perl -MIO::Socket::INET -e \
       'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1")->sockport')
[ -n "$port" ] || fail "no free port"
mkdir -p "$tmp/logs"
chmod 777 "$tmp/logs"
# the module comes in the way the package enables it: modules-enabled/,
# whose load_module lines are relative to the default prefix (no -p)
cat > "$tmp/nginx.conf" <<END
include /etc/nginx/modules-enabled/*.conf;
error_log $tmp/logs/error.log notice;
pid $tmp/nginx.pid;
events {}
http {
    access_log off;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    stytch_tat_signing_key $tmp/tat-ec.pem kid=roundtrip;
    stytch_tat_zone zone=roundtrip:1m;
    server {
        listen 127.0.0.1:$port;
        location = /.well-known/jwks.json { stytch_tat_jwks; }
        location = /status { stytch_tat_status; }
    }
}
END

log "nginx -t (a minimal configuration using the module)"
/usr/sbin/nginx -t -c "$tmp/nginx.conf" 2>&1 | sed 's/^/   /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "nginx -t"

log "start nginx on 127.0.0.1:$port"
/usr/sbin/nginx -c "$tmp/nginx.conf" || fail "nginx did not start"
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/status" && break
    sleep 0.1
done
jwks=$(curl -sf "http://127.0.0.1:$port/.well-known/jwks.json") \
    || fail "GET /.well-known/jwks.json"
log "JWKS: $jwks"
printf '%s' "$jwks" | grep -q '"kid":"roundtrip"' || fail "the JWKS lacks the key"
printf '%s' "$jwks" | grep -q '"crv":"P-256"' || fail "the JWKS lacks the key"
status=$(curl -sf "http://127.0.0.1:$port/status") || fail "GET /status"
log "status: ${status:0:60}..."
grep -h 'stytch-tat module/' "$tmp/logs/error.log" | sed 's/^/   /'

log "stop nginx"
/usr/sbin/nginx -c "$tmp/nginx.conf" -s quit 2>/dev/null
for _ in $(seq 50); do
    [ -s "$tmp/nginx.pid" ] || break
    sleep 0.1
done
[ -s "$tmp/nginx.pid" ] && fail "nginx did not stop"

# ------------------------------------------------------------ purge

log "apt purge $pkg"
apt-get purge -y -qq "$pkg" > "$tmp/purge.log" 2>&1 \
    || { cat "$tmp/purge.log"; fail "apt purge"; }

left=
dpkg-query -W "$pkg" > /dev/null 2>&1 \
    && dpkg-query -W -f='${Status}' "$pkg" | grep -qv 'not-installed' \
    && left="$left dpkg-status:$(dpkg-query -W -f='${Status}' "$pkg")"
dpkg -L "$pkg" > /dev/null 2>&1 && left="$left dpkg-L"
for f in /etc/nginx/modules-enabled/*stytch-tat* "$so" "$available"; do
    [ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done
[ -z "$left" ] || fail "left after purge:$left"
log "purged: dpkg -L $pkg is empty, no modules-enabled link, no .so, no snippet"
log "round trip OK"
