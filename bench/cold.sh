#!/usr/bin/env bash
# `make bench-cold`: the cold path, a new identity every request, each one
# minted, exchanged with a fake Stytch that answers after a fixed delay
# (bench/fake-stytch.mjs, 50 ms), cached and handed on, for:
#
#   mod    the module (stytch_tat, stytch_tat_cache)
#   lua    the OpenResty peer (bench/peers/openresty/stytch_tat.lua)
#   base   with BENCH_BASE_MODULE=FILE: the module built from another
#          commit, for a before/after in the same run
#
# For each: sessions/s (wrk), the nginx worker's CPU per new session (from
# /proc/PID/stat around each wrk run, utime + stime over the sessions), its
# instructions per new session under callgrind, and the latency a client
# sees on top of Stytch's own: wrk's p99 minus the fake's p99 of its own
# time per answer (request's first byte to answer's last, delay included),
# and wrk's p99 minus the bare delay.  Ratios against the OpenResty peer of
# the same run.
#
# Layout (2 cores) as bench/hit.sh: the tested nginx has one worker on
# core 1; wrk, the upstream (a separate nginx answering `ok`) and the fake
# Stytch on core 0.  Both instances run side by side, idle but for the one
# measured, so that the wrk rounds interleave them (medians kept).
# The internal location keeps up to 64 TLS connections to Stytch alive
# (hit.sh: 16) for both, so that 32 concurrent attests need no handshakes.
#
# Environment: BENCH_SECONDS (10) per wrk run, BENCH_ROUNDS (3),
# BENCH_CONNECTIONS (32), BENCH_DELAY_MS (50), BENCH_CG_SECONDS (20) of load
# under callgrind, BENCH_PORT (18780 and up), BENCH_ONLY ("mod lua", and base),
# BENCH_NO_CALLGRIND=1, BENCH_CG_OPTS (e.g. --cache-sim=yes),
# BENCH_DEBUG=1 to keep the work directory.
# Results: bench/results/cold.txt (the table), bench/results/cold-*.txt
# (each variant's functions under callgrind, inclusive, per new session).
set -eu
cd "$(dirname "$0")/.."
root=$PWD
secs=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNECTIONS:-32}
delay=${BENCH_DELAY_MS:-50}
cg_secs=${BENCH_CG_SECONDS:-20}
port=${BENCH_PORT:-18780}
base_module=${BENCH_BASE_MODULE:-}
only=${BENCH_ONLY:-mod lua${base_module:+ base}}
out=$root/bench/results
mkdir -p "$out"
work=$(mktemp -d /tmp/stytch-tat-cold.XXXXXX)
chmod 755 "$work"
module=${BENCH_MODULE:-$root/build/ngx_http_stytch_tat_module.so}

for tool in wrk nginx node valgrind callgrind_control taskset openssl; do
    command -v $tool > /dev/null || { echo "bench/cold.sh needs $tool" >&2; exit 1; }
done

keys=$root/build/test-keys
bash scripts/test-keys.sh "$keys"

up=$((port + 1))
stytch=$((port + 2))
stytch_ctl=$((port + 3))
cg_port=$((port + 4))
declare -A vport=([mod]=$((port + 5)) [lua]=$((port + 6)) [base]=$((port + 7)))

pids=()
cleanup() {
    set +e
    for d in "$work"/*/; do
        [ -s "$d/logs/nginx.pid" ] && kill -QUIT "$(cat "$d/logs/nginx.pid")"
    done 2> /dev/null
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
    wait 2> /dev/null
    [ -n "${BENCH_DEBUG:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# the fake Stytch, on core 0, with a certificate for localhost
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$work/stytch.key" -out "$work/stytch.pem" 2> /dev/null
taskset -c 0 node bench/fake-stytch.mjs "$stytch" "$stytch_ctl" \
    "$work/stytch.pem" "$work/stytch.key" "$delay" \
    > "$work/stytch.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$stytch_ctl/stats" && break
    sleep 0.1
done

# the upstream: a separate nginx, one worker on core 0
mkdir -p "$work/up/logs" "$work/up/conf"
cat > "$work/up/conf/nginx.conf" <<EOC
worker_processes 1;
worker_cpu_affinity 01;
error_log logs/error.log error;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$up;
        keepalive_requests 1000000;
        location / { return 200 "ok\n"; }
    }
}
EOC
nginx -p "$work/up" -c conf/nginx.conf

basic=$(tr -d '\n' < "$keys/creds" | base64 -w0)
kid=""

conf() {
    # $1: variant, $2: port, $3: main lines
    local mod=0 lua=0
    case $1 in mod|base) mod=1 ;; lua) lua=1 ;; esac
    cat <<EOC
$( [ $1 = mod ] && echo "load_module $module;" )
$( [ $1 = base ] && echo "load_module $base_module;" )
$( [ $lua = 1 ] && cat <<EOM
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
EOM
)
$3
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    # the attest subrequest's time from Stytch against its main request's
    log_format cold '\$connection \$connection_requests \$uri \$request_time \$upstream_response_time';
    access_log logs/cold.log cold buffer=64k flush=1s;
$( [ $mod = 1 ] && cat <<EOM
    stytch_tat_signing_key $keys/rsa.pem;
    stytch_tat_credentials $keys/creds;
    stytch_tat_issuer https://auth.example.com;
    stytch_tat_audience https://api.example.com;
    stytch_tat_profile_id trusted-auth-token-profile-test-00000000-0000-0000-0000-000000000000;
    stytch_tat_zone zone=bench:256m;
EOM
)
$( [ $lua = 1 ] && cat <<EOM
    lua_package_path "$root/bench/peers/openresty/?.lua;;";
    lua_shared_dict stytch_tat 256m;
    init_by_lua_block {
        require("stytch_tat").init({
            key_file = "$keys/rsa.pem", kid = "$kid",
            issuer = "https://auth.example.com",
            audience = "https://api.example.com",
            profile_id = "trusted-auth-token-profile-test-00000000-0000-0000-0000-000000000000",
            ttl = 300, attest_uri = "/_stytch_attest",
        })
    }
    init_worker_by_lua_block { require("stytch_tat").init_worker() }
EOM
)
    upstream stytch_api { server 127.0.0.1:$stytch; keepalive 64; }
    upstream backend { server 127.0.0.1:$up; keepalive 64; }
    server {
        listen 127.0.0.1:$2;
$( [ $mod = 1 ] && echo "        location = /jwks { stytch_tat_jwks; }" )
        location = /_stytch_attest {
            internal;
            log_subrequest on;
            proxy_pass https://stytch_api/v1/sessions/attest;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            $( [ $lua = 1 ] && echo "proxy_pass_request_headers off;
            proxy_set_header Content-Type application/json;
            proxy_set_header Authorization \"Basic $basic\";" )
            proxy_ssl_trusted_certificate $work/stytch.pem;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }
        location /app {
$( [ $mod = 1 ] && cat <<'EOM'
            stytch_tat /_stytch_attest;
            stytch_tat_cache bench;
            stytch_tat_email $http_x_email;
            stytch_tat_subject $http_x_user;
            stytch_tat_claim assignments $http_x_groups list=,;
EOM
)
$( [ $lua = 1 ] && echo '            access_by_lua_block { require("stytch_tat").access() }' )
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://backend;
        }
    }
}
EOC
}

start() {
    # $1: variant
    local d=$work/$1
    mkdir -p "$d/logs" "$d/conf"
    conf "$1" "${vport[$1]}" "worker_processes 1;
worker_cpu_affinity 10;" > "$d/conf/nginx.conf"
    nginx -p "$d" -c conf/nginx.conf
    for _ in $(seq 50); do [ -n "$(worker "$1")" ] && break; sleep 0.1; done
}

worker() { ps -o pid= --ppid "$(cat "$work/$1/logs/nginx.pid" 2>/dev/null)" 2>/dev/null | head -1 | tr -d ' '; }

# wrk on core 0 against port $1, a new identity every request; $work/wrk.out
load() {
    COLD=1 taskset -c 0 wrk -t1 -c"$conns" -d"${2:-$secs}s" --latency \
        -s bench/identities.lua "http://127.0.0.1:$1/app" > "$work/wrk.out" 2>&1
    if grep -q Non-2xx "$work/wrk.out"; then
        echo "  warning: $(grep Non-2xx "$work/wrk.out") on port $1" >&2
    fi
}

# wrk's percentile $1 ("99%") in ms
wrk_pct() {
    awk -v p="$1" '$1 == p {
        v = $2
        if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v) }
        else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
        printf "%.2f", v }' "$work/wrk.out"
}

# p99 over the requests logged in $1 of the main request's time minus its
# attest's time from Stytch and minus the upstream's (the backend's) time:
# what nginx with the module or the peer adds, at nginx's millisecond
# resolution; $2=1: the upstream's time left in
nginx_added() {
    awk -v be="${2:-0}" '$3 == "/_stytch_attest" { att[$1 " " $2] = $5; next }
         { main[$1 " " $2] = $4 - (be ? 0 : $5) }
         END {
             for (k in main) if (k in att) print (main[k] - att[k]) * 1000
         }' "$1" | sort -g | awk '{ a[NR] = $1 }
         END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.0f", a[i] }'
}

stats() { curl -s "http://127.0.0.1:$stytch_ctl/stats"; }
stat_field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

echo "== bench/cold.sh: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# the module's instance first: the OpenResty peer signs with the same key
# under the same kid
for v in $only; do
    if [ "$v" = mod ]; then
        start mod
        kid=$(curl -s "http://127.0.0.1:${vport[mod]}/jwks" \
                  | sed 's/.*"kid":"\([^"]*\)".*/\1/')
    fi
done
if [ -z "$kid" ]; then
    kid=$(openssl pkey -in "$keys/rsa.pem" -pubout -outform DER | openssl dgst -sha256 -binary | base64 -w0 | tr '+/' '-_' | tr -d =)
fi
for v in $only; do [ "$v" = mod ] || start "$v"; done

# a first load each: TLS connections to Stytch, the workers' heaps
for v in $only; do load "${vport[$v]}" 3; done

# ---------------------------------------------------------------- wrk rounds
declare -A rps cpu p99 own99 fake99 ngx99 ngxb99
hz=$(getconf CLK_TCK)
for r in $(seq "$rounds"); do
    for v in $only; do
        p=${vport[$v]}
        w=$(worker "$v")
        curl -s -o /dev/null "http://127.0.0.1:$stytch_ctl/reset"
        : > "$work/$v/logs/cold.log"
        read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$w/stat")
        load "$p"
        read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$w/stat")
        st=$(stats)
        sleep 1.2
        nx99=$(nginx_added "$work/$v/logs/cold.log")
        nxb99=$(nginx_added "$work/$v/logs/cold.log" 1)
        ngx99[$v]="${ngx99[$v]:-} $nx99"
        ngxb99[$v]="${ngxb99[$v]:-} $nxb99"
        n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
        q=$(awk '/^Requests\/sec/ {printf "%d", $2}' "$work/wrk.out")
        a=$(echo "$st" | stat_field count)
        f99=$(echo "$st" | stat_field p99)
        c99=$(wrk_pct 99%)
        rps[$v]="${rps[$v]:-} $q"
        cpu[$v]="${cpu[$v]:-} $(awk -v a=$((u1 + s1 - u0 - s0)) -v n="$a" -v hz="$hz" 'BEGIN { printf "%.1f", 1e6 * a / hz / n }')"
        p99[$v]="${p99[$v]:-} $c99"
        fake99[$v]="${fake99[$v]:-} $f99"
        own99[$v]="${own99[$v]:-} $(awk -v a="$c99" -v b="$f99" 'BEGIN { printf "%.2f", a - b }')"
        [ -z "${BENCH_VERBOSE:-}" ] || sed -n "/Latency Distribution/,/requests in/p" "$work/wrk.out"
        echo "  round $r $v: $q sessions/s, $n requests, $a attests, $(( u1 + s1 - u0 - s0 )) ticks; p99 $c99 ms, fake Stytch's own p99 $f99 ms, p99 added in nginx $nx99 ms ($nxb99 ms with the upstream's time)"
        [ "$a" -ge "$n" ] || echo "  warning: $v: $a attests for $n requests" >&2
    done
done
for v in $only; do
    kill -QUIT "$(cat "$work/$v/logs/nginx.pid")"
done
sleep 0.5

# ----------------------------------------------------------------- callgrind
cg_requests() {
    awk -v f=ngx_http_free_request '
        /^c?fn=\(/ {
            id = $0; sub(/^c?fn=/, "", id); name = id
            sub(/\).*/, ")", id); sub(/^\([0-9]+\) ?/, "", name)
            if (name != "") names[id] = name
            if ($0 ~ /^cfn=/) callee = names[id]
            next
        }
        /^calls=/ { if (callee == f) { split($0, a, /[= ]/); n += a[2] } }
        END { print n + 0 }' "$1"
}

cg_total() { awk '/^(summary|totals):/ {print $2; exit}' "$1"; }

declare -A ir
if [ -z "${BENCH_NO_CALLGRIND:-}" ]; then
    for v in $only; do
        d=$work/cg-$v
        mkdir -p "$d/logs" "$d/conf"
        conf "$v" "$cg_port" "master_process off;
daemon off;" > "$d/conf/nginx.conf"
        taskset -c 1 valgrind --tool=callgrind --instr-atstart=no \
            $(case $v in lua) echo --smc-check=all-non-file ;; esac) \
            ${BENCH_CG_OPTS:-} \
            --callgrind-out-file="$d/callgrind.out" \
            nginx -p "$d" -c conf/nginx.conf > "$d/valgrind.log" 2>&1 &
        cg=$!
        pids+=($cg)
        for _ in $(seq 300); do
            curl -s -o /dev/null "http://127.0.0.1:$cg_port/" && break
            sleep 0.2
        done
        load "$cg_port" 5
        callgrind_control -i on "$cg" > /dev/null
        load "$cg_port" 3
        ( sleep 1; callgrind_control -z "$cg" > /dev/null;
          sleep "$cg_secs"; callgrind_control -d "$cg" > /dev/null ) &
        load "$cg_port" $((cg_secs + 2))
        wait $!
        f=$(ls -t "$d"/callgrind.out* | head -1)
        n=$(cg_requests "$f")
        t=$(cg_total "$f")
        ir[$v]=$(awk -v t="$t" -v n="$n" 'BEGIN { printf "%d", t / n }')
        echo "  callgrind $v: $t instructions, $n new sessions: ${ir[$v]} per session"
        callgrind_annotate --inclusive=yes --threshold=100 "$f" 2> /dev/null \
            | awk -v n="$n" '/^ *[0-9,]+ \(/ {
                  c = $1; gsub(/,/, "", c)
                  if (c / n >= 500) printf "%10.0f  %s\n", c / n, $0 }' \
            > "$out/cold-$v.txt"
        callgrind_annotate --threshold=99 "$f" 2> /dev/null \
            | awk -v n="$n" '/^ *[0-9,]+ \(/ {
                  c = $1; gsub(/,/, "", c)
                  if (c / n >= 200) printf "%10.0f  %s\n", c / n, $0 }' \
            > "$out/cold-$v-self.txt"
        kill "$cg"
        wait "$cg" 2>/dev/null || true
        [ -n "${BENCH_DEBUG:-}" ] || rm -f "$d"/callgrind.out*
    done
fi

# --------------------------------------------------------------------- table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else printf "-" }'; }
{
    echo "date: $(date -u +%FT%TZ)  machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "wrk: 1 thread, $conns connections, a new identity every request, ${secs}s x $rounds rounds (medians); fake Stytch delay $delay ms; git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src ngx_http_stytch_tat_module.c || echo +dirty)"
    echo
    echo "| variant | sessions/s | worker CPU us/session | of lua | instructions/session | of lua | p99 ms | fake Stytch p99 ms | p99 added ms | p99 - delay ms | p99 added in nginx ms | the same with the upstream ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    l_c=$(median ${cpu[lua]:-0}); l_ir=${ir[lua]:-0}
    for v in $only; do
        c=$(median ${cpu[$v]})
        pp=$(median ${p99[$v]})
        echo "| $v | $(median ${rps[$v]}) | $c | $(ratio "$c" "$l_c") | ${ir[$v]:--} | $( [ -n "${ir[$v]:-}" ] && ratio "${ir[$v]}" "$l_ir" || echo -) | $pp | $(median ${fake99[$v]}) | $(median ${own99[$v]}) | $(awk -v a="$pp" -v b="$delay" 'BEGIN { printf "%.2f", a - b }') | $(median ${ngx99[$v]}) | $(median ${ngxb99[$v]}) |"
    done
    echo
    for v in $only; do
        echo "rounds $v: sessions/s${rps[$v]}; us/session${cpu[$v]}; p99 ms${p99[$v]}; fake p99 ms${fake99[$v]}; added ms${own99[$v]}; in nginx ms${ngx99[$v]}; with the upstream ms${ngxb99[$v]}"
    done
} | tee "$out/cold.txt"
