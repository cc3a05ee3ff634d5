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
. "$(dirname "$0")/lib.sh"
bench_init exchange
secs=${BENCH_SECONDS:-5}
conns=${BENCH_CONNECTIONS:-32}
mkdir -p "$work/logs" "$work/conf"

bench_keys
bench_emulator_deps

port=${BENCH_PORT:-18480}

eport=$(bench_emulator "$work/emu" "$port")
nginx_pid() { cat "$work/logs/nginx.pid" 2>/dev/null; }

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
$( [ "$1" = 1 ] && bench_conf_module bench 10m )
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
$(bench_conf_attest "$work/emu/ca.pem")
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
    bench_nginx_start "$work"
}

rps() {
    # prints requests/s of a wrk run on $1, with env for identities.lua
    # wrk on the first core, nginx's worker on the second: less noise
    bench_wrk "http://127.0.0.1:$port$1" "$secs"
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.out")
    [ -z "$non2xx" ] || echo "  (warning: $non2xx non-2xx answers on $1)" >&2
    bench_wrk_rps
}

module_lines=$(bench_app_lines)

# warm IDENTITIES: user0 .. userN-1 attested once each, cached
warm() {
    local i
    for i in $(seq 0 $(($1 - 1))); do
        bench_as "$i" "http://127.0.0.1:$port/app" -o /dev/null
    done
}

median() { bench_median "$@"; }

rounds=${BENCH_ROUNDS:-3}
echo "== 1. hit path ($conns connections, $rounds rounds of ${secs}s, 1 worker, 100 cached identities)"
conf 1 "$module_lines"
start
warm 100
# what the upstream gets: the same headers, set statically, make a second
# baseline that isolates the module's own work from the upstream's
set -- $(bench_as 1 "http://127.0.0.1:$port/app/headers")
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
    warm 100
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
warm 1000
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
    echo "date: $(bench_date)  machine: $(nproc) cores  wrk: 1 thread, $conns connections, ${secs}s"
    echo "hit path: plain $base req/s, same headers $same req/s, module $hit req/s: module/plain $hit_ratio%, module/same headers $own_ratio%"
    echo "zone: $bytes bytes per identity; a 10m zone holds about $(( 10 * 1024 * 1024 / bytes ))"
    echo "cold path: mint $mint tokens/s, new identities $cold sessions/s"
} | tee "$out/exchange.txt"
