#!/usr/bin/env bash
# Benchmarks of the exchange and the cache, each a ratio against a baseline
# measured in the same run (see bench/README.md):
#
#   1. hit path: proxy_pass to a local upstream with the module, every
#      identity cached, against the same proxy_pass without the module;
#   2. cold path: a new identity every request against the emulator (no
#      added latency), beside minting alone ($stytch_tat_jwt, no Stytch);
#   3. zone bytes per cached identity.
#
# Loopback only; each load run is bounded by BENCH_SECONDS (default 5).
set -eu
cd "$(dirname "$0")/.."
root=$PWD
secs=${BENCH_SECONDS:-5}
conns=${BENCH_CONNECTIONS:-32}
out=$root/bench/results
mkdir -p "$out"
work=$(mktemp -d /tmp/stytch-tat-bench.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/logs" "$work/conf"

keys=$root/build/test-keys
bash scripts/test-keys.sh "$keys"
[ -d t/emulator/node_modules ] || (cd t/emulator && npm ci --no-audit --no-fund --loglevel=error)

port=${BENCH_PORT:-18480}

cp t/emulator/config.example.json "$work/emu.json"
sed -i "s#http://127.0.0.1:8080/.well-known/jwks.json#http://127.0.0.1:$port/jwks#" "$work/emu.json"
node t/emulator/server.mjs --listen localhost:0 --control 127.0.0.1:0 \
    --dir "$work/emu" --config "$work/emu.json" > "$work/emu.out" 2> "$work/emu.err" &
emu=$!
nginx_pid() { cat "$work/logs/nginx.pid" 2>/dev/null; }
cleanup() {
    [ -n "$(nginx_pid)" ] && kill -QUIT "$(nginx_pid)" 2>/dev/null
    kill $emu 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
[ -n "${BENCH_DEBUG:-}" ] && trap - EXIT
for _ in $(seq 100); do [ -s "$work/emu/ready" ] && break; sleep 0.1; done
[ -s "$work/emu/ready" ] || { cat "$work/emu.err" >&2; exit 1; }
eport=$(node -e 'console.log(JSON.parse(process.argv[1]).listen_port)' "$(cat "$work/emu/ready")")

conf() {
    # $1: load the module (1/0); $2: the /app location's extra lines
    cat > "$work/conf/nginx.conf" <<EOC
$( [ "$1" = 1 ] && echo "load_module $root/build/ngx_http_stytch_tat_module.so;" )
worker_processes 1;
worker_cpu_affinity 10;
error_log logs/error.log error;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    $( [ "$1" = 1 ] && cat <<EOM
    stytch_tat_signing_key $keys/rsa.pem;
    stytch_tat_credentials $keys/creds;
    stytch_tat_issuer https://auth.example.com;
    stytch_tat_audience https://api.example.com;
    stytch_tat_profile_id trusted-auth-token-profile-test-00000000-0000-0000-0000-000000000000;
    stytch_tat_zone zone=bench:10m;
EOM
)
    upstream backend { server 127.0.0.1:$((port + 1)); keepalive 64; }
    upstream stytch_api { server 127.0.0.1:$eport; keepalive 64; }
    server {
        listen 127.0.0.1:$((port + 1));
        location / { return 200 "ok\n"; }
        location = /app/headers {
            return 200 "\$http_x_stytch_session_jwt \$http_x_stytch_user_id \$http_x_stytch_session_id";
        }
    }
    server {
        listen 127.0.0.1:$port;
        $( [ "$1" = 1 ] && cat <<EOM
        location = /jwks { stytch_tat_jwks; }
        location = /status { stytch_tat_status; }
        location = /_stytch_attest {
            internal;
            proxy_pass https://stytch_api/v1/sessions/attest;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_trusted_certificate $work/emu/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }
        location = /mint {
            stytch_tat_email \$http_x_email;
            stytch_tat_subject \$http_x_user;
            stytch_tat_claim assignments \$http_x_groups list=,;
            return 200 "\$stytch_tat_jwt\n";
        }
EOM
)
        location /app {
            $2
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://backend;
        }
    }
}
EOC
}

start() {
    [ -n "$(nginx_pid)" ] && { kill -QUIT "$(nginx_pid)"; sleep 0.5; }
    nginx -p "$work" -c conf/nginx.conf
    sleep 0.3
}

rps() {
    # prints requests/s of a wrk run on $1, with env for identities.lua
    # wrk on the first core, nginx's worker on the second: less noise
    taskset -c 0 wrk -t1 -c"$conns" -d"${secs}s" -s bench/identities.lua "http://127.0.0.1:$port$1" \
        > "$work/wrk.out" 2>&1
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.out")
    [ -z "$non2xx" ] || echo "  (warning: $non2xx non-2xx answers on $1)" >&2
    awk '/^Requests\/sec/ {printf "%d", $2}' "$work/wrk.out"
}

module_lines='stytch_tat /_stytch_attest;
            stytch_tat_cache bench;
            stytch_tat_email $http_x_email;
            stytch_tat_subject $http_x_user;
            stytch_tat_claim assignments $http_x_groups list=,;'

median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

rounds=${BENCH_ROUNDS:-3}
echo "== 1. hit path ($conns connections, $rounds rounds of ${secs}s, 1 worker, 100 cached identities)"
conf 1 "$module_lines"
start
for i in $(seq 0 99); do
    curl -s -o /dev/null -H "X-Email: user$i@example.com" -H "X-User: user$i" \
         -H "X-Groups: editor,reader" "http://127.0.0.1:$port/app"
done
# what the upstream gets: the same headers, set statically, make a second
# baseline that isolates the module's own work from the upstream's
set -- $(curl -s -H "X-Email: user1@example.com" -H "X-User: user1" \
              -H "X-Groups: editor,reader" "http://127.0.0.1:$port/app/headers")
jwt_len=${#1}
same_lines="proxy_set_header X-Stytch-Session-Jwt \"$1\";
            proxy_set_header X-Stytch-User-Id \"$2\";
            proxy_set_header X-Stytch-Session-Id \"$3\";"
bases=(); sames=(); hits=()
for r in $(seq "$rounds"); do
    conf 0 ""; start
    bases+=("$(IDENTITIES=100 rps /app)")
    conf 0 "$same_lines"; start
    sames+=("$(IDENTITIES=100 rps /app)")
    # a fresh start empties the zone: warm it again
    conf 1 "$module_lines"; start
    for i in $(seq 0 99); do
        curl -s -o /dev/null -H "X-Email: user$i@example.com" -H "X-User: user$i" \
             -H "X-Groups: editor,reader" "http://127.0.0.1:$port/app"
    done
    hits+=("$(IDENTITIES=100 rps /app)")
done
base=$(median "${bases[@]}"); same=$(median "${sames[@]}"); hit=$(median "${hits[@]}")
echo "  rounds: plain ${bases[*]}; same headers ${sames[*]}; module ${hits[*]}"
echo "  plain proxy_pass:                          $base req/s"
echo "  plain, setting the same headers statically: $same req/s"
echo "  with the module (every request a HIT):      $hit req/s"
hit_ratio=$(awk -v a="$hit" -v b="$base" 'BEGIN { printf "%.1f", 100 * a / b }')
own_ratio=$(awk -v a="$hit" -v b="$same" 'BEGIN { printf "%.1f", 100 * a / b }')
echo "  module / plain:          $hit_ratio% (target 95%)"
echo "  module / same headers:   $own_ratio% (the module's own cost; the session JWT is $jwt_len bytes)"
conf 1 "$module_lines"
start

echo "== 3. zone bytes per cached identity (1000 identities)"
for i in $(seq 0 999); do
    curl -s -o /dev/null -H "X-Email: user$i@example.com" -H "X-User: user$i" \
         -H "X-Groups: editor,reader" "http://127.0.0.1:$port/app"
done
st=$(curl -s "http://127.0.0.1:$port/status")
per=$(node -e '
    const z = JSON.parse(process.argv[1]).zones.bench;
    console.log(Math.round((z.size - z.free) / z.entries), z.entries, z.size);
' "$st")
set -- $per
bytes=$1
echo "  $bytes bytes per identity over $2 entries (4 KB pages: slab rounding included)"
echo "  a 10m zone holds about $(( 10 * 1024 * 1024 / bytes )) identities (target: 4096 bytes or less each)"

echo "== 2. cold path: a new identity every request, emulator without added latency"
mint=$(rps /mint)
cold=$(COLD=1 rps /app)
echo "  minting alone (\$stytch_tat_jwt):   $mint tokens/s"
echo "  new identities through Stytch:      $cold sessions/s"
echo "  cold/mint:                          $(awk -v a="$cold" -v b="$mint" 'BEGIN { printf "%.1f", 100 * a / b }')% (the emulator verifies, provisions and signs each session)"

{
    echo "date: $(date -u +%FT%TZ)  machine: $(nproc) cores  wrk: 1 thread, $conns connections, ${secs}s"
    echo "hit path: plain $base req/s, same headers $same req/s, module $hit req/s: module/plain $hit_ratio%, module/same headers $own_ratio%"
    echo "zone: $bytes bytes per identity; a 10m zone holds about $(( 10 * 1024 * 1024 / bytes ))"
    echo "cold path: mint $mint tokens/s, new identities $cold sessions/s"
} | tee "$out/exchange.txt"
