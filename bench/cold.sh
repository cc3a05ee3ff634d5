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
. "$(dirname "$0")/lib.sh"
bench_init cold
secs=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNECTIONS:-32}
delay=${BENCH_DELAY_MS:-50}
cg_secs=${BENCH_CG_SECONDS:-20}
port=${BENCH_PORT:-18780}
base_module=${BENCH_BASE_MODULE:-}
only=${BENCH_ONLY:-mod lua${base_module:+ base}}
module=${BENCH_MODULE:-$root/build/ngx_http_stytch_tat_module.so}

bench_need wrk nginx node valgrind callgrind_control taskset openssl
bench_keys

up=$((port + 1))
stytch=$((port + 2))
stytch_ctl=$((port + 3))
cg_port=$((port + 4))
declare -A vport=([mod]=$((port + 5)) [lua]=$((port + 6)) [base]=$((port + 7)))

# the fake Stytch, on core 0, with a certificate for localhost
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$work/stytch.key" -out "$work/stytch.pem" 2> /dev/null
taskset -c 0 node bench/fake-stytch.mjs "$stytch" "$stytch_ctl" \
    "$work/stytch.pem" "$work/stytch.key" "$delay" \
    > "$work/stytch.out" 2>&1 &
bench_pids+=($!)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$stytch_ctl/stats" && break
    sleep 0.1
done

# the upstream: a separate nginx, one worker on core 0
bench_upstream "$up"

kid=""

conf() {
    # $1: variant, $2: port, $3: main lines
    local mod=0 lua=0
    case $1 in mod|base) mod=1 ;; lua) lua=1 ;; esac
    cat <<EOC
$( [ $1 = mod ] && echo "load_module $module;" )
$( [ $1 = base ] && echo "load_module $base_module;" )
$( [ $lua = 1 ] && bench_conf_lua_modules )
$3
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    # the attest subrequest's time from Stytch against its main request's
    log_format cold '\$connection \$connection_requests \$uri \$request_time \$upstream_response_time';
    access_log logs/cold.log cold buffer=64k flush=1s;
$( [ $mod = 1 ] && bench_conf_module bench 256m )
$( [ $lua = 1 ] && bench_conf_lua 256m )
    upstream stytch_api { server 127.0.0.1:$stytch; keepalive 64; }
    upstream backend { server 127.0.0.1:$up; keepalive 64; }
    server {
        listen 127.0.0.1:$2;
$( [ $mod = 1 ] && echo "        location = /jwks { stytch_tat_jwks; }" )
$(bench_conf_attest "$work/stytch.pem" "log_subrequest on;
            $( [ $lua = 1 ] && bench_conf_lua_attest )")
        location /app {
$( [ $mod = 1 ] && echo "            $(bench_app_lines)" )
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
    bench_nginx_start "$d"
}

worker() { bench_worker "$work/$1"; }

# wrk on core 0 against port $1, a new identity every request; $work/wrk.out
load() {
    COLD=1 bench_wrk "http://127.0.0.1:$1/app" "${2:-$secs}" --latency
    bench_wrk_warn "$1"
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

median() { bench_median "$@"; }

bench_banner

# the module's instance first: the OpenResty peer signs with the same key
# under the same kid
for v in $only; do
    if [ "$v" = mod ]; then
        start mod
        kid=$(curl -s "http://127.0.0.1:${vport[mod]}/jwks" | bench_jwks_kid)
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
for r in $(seq "$rounds"); do
    for v in $only; do
        p=${vport[$v]}
        w=$(worker "$v")
        curl -s -o /dev/null "http://127.0.0.1:$stytch_ctl/reset"
        : > "$work/$v/logs/cold.log"
        read -r _ u0 s0 < <(bench_stat "$w")
        load "$p"
        read -r _ u1 s1 < <(bench_stat "$w")
        st=$(stats)
        sleep 1.2
        nx99=$(nginx_added "$work/$v/logs/cold.log")
        nxb99=$(nginx_added "$work/$v/logs/cold.log" 1)
        ngx99[$v]="${ngx99[$v]:-} $nx99"
        ngxb99[$v]="${ngxb99[$v]:-} $nxb99"
        n=$(bench_wrk_requests)
        q=$(bench_wrk_rps)
        a=$(echo "$st" | stat_field count)
        f99=$(echo "$st" | stat_field p99)
        c99=$(wrk_pct 99%)
        rps[$v]="${rps[$v]:-} $q"
        cpu[$v]="${cpu[$v]:-} $(bench_us $((u1 + s1 - u0 - s0)) "$a" %.1f)"
        p99[$v]="${p99[$v]:-} $c99"
        fake99[$v]="${fake99[$v]:-} $f99"
        own99[$v]="${own99[$v]:-} $(awk -v a="$c99" -v b="$f99" 'BEGIN { printf "%.2f", a - b }')"
        [ -z "${BENCH_VERBOSE:-}" ] || sed -n "/Latency Distribution/,/requests in/p" "$work/wrk.out"
        echo "  round $r $v: $q sessions/s, $n requests, $a attests, $(( u1 + s1 - u0 - s0 )) ticks; p99 $c99 ms, fake Stytch's own p99 $f99 ms, p99 added in nginx $nx99 ms ($nxb99 ms with the upstream's time)"
        [ "$a" -ge "$n" ] || echo "  warning: $v: $a attests for $n requests" >&2
    done
done
for v in $only; do bench_quit "$work/$v"; done
sleep 0.5

# ----------------------------------------------------------------- callgrind
declare -A ir
if [ -z "${BENCH_NO_CALLGRIND:-}" ]; then
    for v in $only; do
        d=$work/cg-$v
        mkdir -p "$d/logs" "$d/conf"
        conf "$v" "$cg_port" "master_process off;
daemon off;" > "$d/conf/nginx.conf"
        bench_callgrind "$d" $(case $v in lua) echo --smc-check=all-non-file ;; esac)
        bench_wait_http "http://127.0.0.1:$cg_port/"
        load "$cg_port" 5
        bench_cg_measure "$d" "$cg_secs" 3 load "$cg_port"
        n=$cg_n t=$cg_t
        ir[$v]=$(awk -v t="$t" -v n="$n" 'BEGIN { printf "%d", t / n }')
        echo "  callgrind $v: $t instructions, $n new sessions: ${ir[$v]} per session"
        bench_cg_annotate "$n" 500 --inclusive=yes --threshold=100 \
            > "$out/cold-$v.txt"
        bench_cg_annotate "$n" 200 --threshold=99 > "$out/cold-$v-self.txt"
        bench_cg_stop "$d"
    done
fi

# --------------------------------------------------------------------- table
ratio() { bench_ratio "$@"; }
{
    echo "date: $(bench_date)  machine: $(nproc) cores, $(bench_cpu_model)"
    echo "wrk: 1 thread, $conns connections, a new identity every request, ${secs}s x $rounds rounds (medians); fake Stytch delay $delay ms; $(bench_git)"
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
