#!/usr/bin/env bash
# `make bench-hit`: the cost of a zone HIT, against proxy_pass alone and
# against proxy_pass setting the same three headers statically, in one run:
#
#   plain     proxy_pass to a local upstream, no module loaded
#   static    the same, plus proxy_set_header of the three X-Stytch-*
#             headers with the very bytes the module sends (no module)
#   hit-1     the module, every request the one cached identity
#   hit-10k   the module, requests cycling through 10,000 cached identities
#   lua-1, lua-10k  with BENCH_PEERS=1 (make bench-peers): the same exchange
#             in OpenResty's Lua (bench/peers/openresty/stytch_tat.lua)
#   hit-1c    hit-1 with the request of cookie-1: the same Cookie header
#             (a browser's requests carry it on a zone hit too)
#   cookie-1  cluster mode (stytch_tat_session_jwks, stytch_tat_cookie on):
#             every request carries the session cookie another node (a
#             probe instance) got for the identity; this node's zone never
#             attests it, it verifies the cookie's JWT (once) and hands it on
#   authz-1   hit-1 with authorization at the edge: the location requires
#             one permission (stytch_tat_require_permission documents read,
#             granted by the identity's role "reader" in the emulator's
#             RBAC policy, fetched through /_stytch_rbac_policy) and one
#             factor (stytch_tat_require_factor trusted_auth_token)
#   node-1, node-10k  likewise: auth_request to a Node sidecar
#             (bench/peers/node/sidecar.mjs); its CPU per request is given
#             apart ("sidecar us/req")
#
# For each: req/s (wrk), the nginx worker's CPU per request and its minor
# page faults per 1000 requests (both from /proc/PID/stat around each wrk
# run), and the worker's instructions per request under callgrind
# (deterministic for a binary and its inputs: the figure to trust on a
# shared machine).  Every figure is also given as a ratio to "static".
#
# Layout (2 cores): the tested nginx has one worker on core 1; wrk, the
# upstream (a separate nginx) and the Stytch emulator are on core 0.  The
# four tested instances run side by side, idle but for the one measured, so
# that the wrk rounds interleave them (BENCH_ROUNDS, median kept).
#
# Environment: BENCH_SECONDS (5) per wrk run, BENCH_ROUNDS (3),
# BENCH_CONNECTIONS (32), BENCH_IDENTITIES (10000), BENCH_CG_SECONDS (10)
# of load under callgrind, BENCH_PORT (18680, and the next 5),
# BENCH_SUBJECT (\$http_x_user; \$http_x_email reads both from one header),
# BENCH_NO_CALLGRIND=1 to skip callgrind, BENCH_ONLY="plain hit-1" to run
# some variants only, BENCH_DEBUG=1 to keep the work directory,
# BENCH_HOLD=SECONDS to keep the instances up that long after the wrk
# rounds (to look at them), BENCH_PRELOAD=LIB to start them with LD_PRELOAD,
# BENCH_CG_OPTS="--cache-sim=yes" for more of callgrind (cache misses),
# BENCH_BASELINE_TRIM (8388608): glibc's trim threshold for the instances
# without the module (0: glibc's default of 128 KB; see tunables() below).
# The emulator's session JWTs live 5 minutes and the caches refresh them a
# minute ahead: the wrk rounds (variants x BENCH_ROUNDS x BENCH_SECONDS,
# after the warm-ups) must end within 4 minutes of the first warm-up, or
# hits turn into attests (hit runs warn when the zone counted fewer hits
# than requests).  With the peers, 3 rounds of 5 s fit.
# Results: bench/results/hit.txt (the table) and bench/results/hit-*.txt
# (the module's own functions under callgrind, inclusive, per request).
set -eu
. "$(dirname "$0")/lib.sh"
bench_init hit
secs=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNECTIONS:-32}
many=${BENCH_IDENTITIES:-10000}
cg_secs=${BENCH_CG_SECONDS:-10}
port=${BENCH_PORT:-18680}
only=${BENCH_ONLY:-plain static hit-1 hit-10k hit-1c cookie-1 authz-1${BENCH_PEERS:+ lua-1 lua-10k node-1 node-10k}}
up=$((port + 5))
module=${BENCH_MODULE:-$root/build/ngx_http_stytch_tat_module.so}

bench_need wrk nginx valgrind callgrind_control taskset
bench_keys
bench_emulator_deps

declare -A vport=([plain]=$port [static]=$((port + 1)) [hit-1]=$((port + 2))
                  [hit-10k]=$((port + 3)) [lua-1]=$((port + 6))
                  [lua-10k]=$((port + 7)) [node-1]=$((port + 8))
                  [node-10k]=$((port + 9)) [hit-1c]=$((port + 21))
                  [cookie-1]=$((port + 20)) [authz-1]=$((port + 22)))
declare -A vids=([plain]=1 [static]=1 [hit-1]=1 [hit-10k]=$many [lua-1]=1
                 [lua-10k]=$many [node-1]=1 [node-10k]=$many [hit-1c]=1
                 [cookie-1]=1 [authz-1]=1)
# the sidecars' ports: the variant's + 10, callgrind's instance's + 10
sidecar_port() { echo $(( $1 + 10 )); }
cg_port=$((port + 4))

# the Stytch emulator, on core 0; it fetches the JWKS from the instance
# being warmed, hence one emulator per module instance
emulator() {
    # $1: name, $2: port of the nginx whose /jwks it trusts
    bench_emulator "$work/emu-$1" "$2" 0
}

# the Node peer's sidecar, on core 0, with t/emulator's jose and stytch
sidecar() {
    # $1: name, $2: port, $3: emulator port
    local dir=$work/node-$1
    mkdir -p "$dir"
    cp bench/peers/node/sidecar.mjs "$dir/"
    ln -sfn "$root/t/emulator/node_modules" "$dir/node_modules"
    NODE_EXTRA_CA_CERTS=$work/emu-$1/ca.pem taskset -c 0 node \
        "$dir/sidecar.mjs" "$2" "$keys/rsa.pem" "$kid" "$keys/creds" \
        "https://localhost:$3" > "$dir/out" 2> "$dir/err" &
    echo $! > "$dir/pid"
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$2/status" && return 0
        sleep 0.1
    done
    cat "$dir/err" >&2
    exit 1
}

# the upstream: a separate nginx, one worker on core 0; /app/headers
# echoes the session headers it gets
bench_upstream "$up" '        location = /app/headers {
            return 200 "$http_x_stytch_session_jwt $http_x_stytch_user_id $http_x_stytch_session_id";
        }'

conf() {
    # $1: variant, $2: port, $3: emulator port, $4: extra main lines,
    # $5: the sidecar's port
    local mod=0 lua=0 node=0 extra=""
    case $1 in
    hit-*) mod=1; extra=$module_lines ;;
    authz-*) mod=1; extra=$authz_lines ;;
    cookie-*) mod=1; extra=$cookie_lines ;;
    lua-*) lua=1; extra=$lua_lines ;;
    node-*) node=1; extra=$node_lines ;;
    static) extra=$static_lines ;;
    esac
    cat <<EOC
$( [ $mod = 1 ] && echo "load_module $module;" )
$( [ $lua = 1 ] && bench_conf_lua_modules )
$4
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
$( [ $mod = 1 ] && bench_conf_module bench 64m )
$( [ $lua = 1 ] && bench_conf_lua 64m )
$( [ $mod = 1 ] || [ $lua = 1 ] && cat <<EOM
    upstream stytch_api { server 127.0.0.1:$3; keepalive 16; }
EOM
)
$( [ $node = 1 ] && cat <<EOM
    upstream sidecar { server 127.0.0.1:$5; keepalive 64; }
EOM
)
    upstream backend { server 127.0.0.1:$up; keepalive 64; }
    server {
        listen 127.0.0.1:$2;
$( [ $mod = 1 ] && cat <<EOM
        location = /jwks { stytch_tat_jwks; }
        location = /status { stytch_tat_status; }
        location = /_stytch_session_jwks {
            internal;
            proxy_pass https://stytch_api/v1/sessions/jwks/project-test-00000000-0000-0000-0000-000000000000;
            proxy_ssl_trusted_certificate $work/emu-$(emu_of "$1")/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
        }
        location = /_stytch_rbac_policy {
            internal;
            proxy_pass https://stytch_api/v1/rbac/policy;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_trusted_certificate $work/emu-$(emu_of "$1")/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
        }
EOM
)
$( [ $node = 1 ] && cat <<EOM
        location = /jwks {
            default_type application/jwk-set+json;
            alias $work/jwks.json;
        }
        location = /status { proxy_pass http://sidecar; }
        location = /_auth {
            internal;
            proxy_pass http://sidecar;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
EOM
)
$( [ $lua = 1 ] && cat <<EOM
        location = /jwks {
            default_type application/jwk-set+json;
            alias $work/jwks.json;
        }
        location = /status {
            content_by_lua_block { require("stytch_tat").status() }
        }
EOM
)
$( [ $mod = 1 ] || [ $lua = 1 ] && bench_conf_attest "$work/emu-$(emu_of "$1")/ca.pem" \
       "$( [ $lua = 1 ] && bench_conf_lua_attest )" )
        location /app {
            $extra
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://backend;
        }
    }
}
EOC
}

module_lines=$(bench_app_lines "${BENCH_SUBJECT:-}")
# cluster mode; leeway=5m keeps the probe's 5-minute JWT good for the run
cookie_lines=$module_lines'
            stytch_tat_cookie on;
            stytch_tat_session_jwks /_stytch_session_jwks leeway=5m;'
# authorization at the edge: the identity's roles (X-Groups, mapped to
# role_ids by the emulator's profile) are editor and reader, and reader
# may read documents in t/emulator/config.example.json's policy
authz_lines=$module_lines'
            stytch_tat_rbac_policy /_stytch_rbac_policy;
            stytch_tat_require_permission documents read;
            stytch_tat_require_factor trusted_auth_token;'
# the cookie variants talk to the emulator whose session the cookie holds
emu_of() { case $1 in cookie-*|cg-cookie-*) echo cookie-probe ;; *) echo "$1" ;; esac; }
cookie=""
static_lines=""
lua_lines='access_by_lua_block { require("stytch_tat").access() }'
node_lines='auth_request /_auth;
            auth_request_set $stytch_jwt $upstream_http_x_stytch_session_jwt;
            auth_request_set $stytch_uid $upstream_http_x_stytch_user_id;
            auth_request_set $stytch_sid $upstream_http_x_stytch_session_id;
            proxy_set_header X-Stytch-Session-Jwt $stytch_jwt;
            proxy_set_header X-Stytch-User-Id $stytch_uid;
            proxy_set_header X-Stytch-Session-Id $stytch_sid;'
kid=""

start() {
    # $1: variant, $2: port, $3: emulator port, $4: sidecar port
    local d=$work/$1
    mkdir -p "$d/logs" "$d/conf"
    conf "$1" "$2" "${3:-0}" "worker_processes 1;
worker_cpu_affinity 10;" "${4:-0}" > "$d/conf/nginx.conf"
    LD_PRELOAD=${BENCH_PRELOAD:-} GLIBC_TUNABLES=$(tunables "$1") \
        bench_nginx_start "$d"
}

# The instances without the module keep their heap as the module's worker
# does (see init_process in ngx_http_stytch_tat_module.c): otherwise the
# baseline's CPU per request includes glibc trimming and regrowing its heap,
# which the module's does not (BENCH_BASELINE_TRIM=0: glibc's default)
trim=${BENCH_BASELINE_TRIM:-8388608}
tunables() {
    case $1 in
    hit-*|authz-*) ;;
    *) [ "$trim" = 0 ] || echo "glibc.malloc.trim_threshold=$trim" ;;
    esac
}

worker() { bench_worker "$work/$1"; }

entries() {
    curl -s "http://127.0.0.1:$1/status" \
        | sed -n 's/.*"entries": *\([0-9]*\).*/\1/p' | head -1
}

hits() {
    curl -s "http://127.0.0.1:$1/status" \
        | sed -n 's/.*"hits": *\([0-9]*\).*/\1/p' | head -1
}

# requests let in with the client's own session JWT (cluster mode)
clients() {
    curl -s "http://127.0.0.1:$1/status" \
        | sed -n 's/.*"verify":{"ok":\([0-9]*\),"cached":\([0-9]*\).*/\1 \2/p' \
        | awk '{print $1 + $2}' | head -1
}

# wrk on core 0 against $1 (port) with $2 identities; writes $work/wrk.out
load() {
    IDENTITIES=$2 COOKIE=$(case $1 in "${vport[cookie-1]}"|"${vport[hit-1c]}") echo "$cookie" ;; "$cg_port") echo "${cg_cookie:-}" ;; esac) \
        bench_wrk "http://127.0.0.1:$1/app" "${3:-$secs}"
    bench_wrk_warn "$1"
}

# every identity cached: wrk until the zone holds them all, as long as
# each run adds some
warm() {
    # $1: port, $2: identities
    local n=0 last=-1
    while [ "$n" -gt "$last" ]; do
        last=$n
        load "$1" "$2" 3
        n=$(entries "$1")
        n=${n:-0}
        [ "$n" -ge "$2" ] && return 0
    done
    echo "warm-up of port $1 stopped at $n of $2 entries" >&2
    exit 1
}

median() { bench_median "$@"; }

bench_banner

# the session JWT the module hands on, for the static baseline's bytes
emu=$(emulator hit-probe "$cg_port")
start hit-probe "$cg_port" "$emu"
bench_as 0 "http://127.0.0.1:$cg_port/app" -o /dev/null
set -- $(bench_as 0 "http://127.0.0.1:$cg_port/app/headers")
[ $# = 3 ] || { echo "no session from the probe instance" >&2; exit 1; }
jwt_len=${#1}
# the OpenResty peer signs with the same key and kid, and serves this JWKS
curl -s "http://127.0.0.1:$cg_port/jwks" > "$work/jwks.json"
kid=$(bench_jwks_kid < "$work/jwks.json")
static_lines="proxy_set_header X-Stytch-Session-Jwt \"$1\";
            proxy_set_header X-Stytch-User-Id \"$2\";
            proxy_set_header X-Stytch-Session-Id \"$3\";"
bench_quit "$work/hit-probe"
sleep 0.5

# another node's cookie for user0: a probe in cluster mode attests once
case " $only " in *" cookie-"*|*" hit-1c "*)
    cemu=$(emulator cookie-probe "$cg_port")
    start cookie-probe "$cg_port" "$cemu"
    cookie=$(bench_as 0 "http://127.0.0.1:$cg_port/app" -D - -o /dev/null \
             | sed -n 's/^Set-Cookie: \(stytch_session_jwt=[^;]*\);.*/\1/p')
    [ -n "$cookie" ] || { echo "no session cookie from the probe" >&2; exit 1; }
    bench_quit "$work/cookie-probe"
    sleep 0.5
esac

# ---------------------------------------------------------------- wrk rounds
declare -A rps cpu flt side
for v in $only; do
    case $v in
    cookie-*) start "$v" "${vport[$v]}" "$cemu" ;;
    hit-*|authz-*|lua-*) start "$v" "${vport[$v]}" "$(emulator "$v" "${vport[$v]}")" ;;
    node-*)
        e=$(emulator "$v" "${vport[$v]}")
        sidecar "$v" "$(sidecar_port "${vport[$v]}")" "$e"
        start "$v" "${vport[$v]}" "$e" "$(sidecar_port "${vport[$v]}")"
        ;;
    *) start "$v" "${vport[$v]}" ;;
    esac
done
# the module's instances get every identity cached; all of them get a
# first load, so that no round pays for a new worker's heap growing
for v in $only; do
    case $v in hit-*|authz-*|lua-*|node-*)
        echo "  warming $v: ${vids[$v]} identities"
        warm "${vport[$v]}" "${vids[$v]}"
    esac
    load "${vport[$v]}" "${vids[$v]}" 2
done

for r in $(seq "$rounds"); do
    for v in $only; do
        p=${vport[$v]}
        w=$(worker "$v")
        h0=$(case $v in hit-*|authz-*) hits "$p" ;; cookie-*) clients "$p" ;; *) echo 0 ;; esac)
        sc=$(cat "$work/node-$v/pid" 2>/dev/null || true)
        read -r f0 u0 s0 < <(bench_stat "$w")
        [ -z "$sc" ] || read -r _ nu0 ns0 < <(bench_stat "$sc")
        load "$p" "${vids[$v]}"
        read -r f1 u1 s1 < <(bench_stat "$w")
        [ -z "$sc" ] || read -r _ nu1 ns1 < <(bench_stat "$sc")
        n=$(bench_wrk_requests)
        q=$(bench_wrk_rps)
        if [ "${v#cookie-}" != "$v" ]; then
            h1=$(clients "$p")
            [ $((h1 - h0)) -ge "$n" ] \
                || echo "  warning: $v: $((h1 - h0)) cookies taken for $n requests" >&2
        fi
        if [ "${v#hit-}" != "$v" ] || [ "${v#authz-}" != "$v" ]; then
            h1=$(hits "$p")
            # the status requests themselves are no hits; wrk's last
            # in-flight requests are counted by nginx, not by wrk
            [ $((h1 - h0)) -ge "$n" ] \
                || echo "  warning: $v: $((h1 - h0)) hits for $n requests" >&2
        fi
        rps[$v]="${rps[$v]:-} $q"
        cpu[$v]="${cpu[$v]:-} $(bench_us $((u1 + s1 - u0 - s0)) "$n" %.2f)"
        flt[$v]="${flt[$v]:-} $(awk -v a=$((f1 - f0)) -v n="$n" 'BEGIN { printf "%.1f", 1000 * a / n }')"
        [ -z "$sc" ] || side[$v]="${side[$v]:-} $(bench_us $((nu1 + ns1 - nu0 - ns0)) "$n" %.2f)"
        echo "  round $r $v: $q req/s, $(( f1 - f0 )) page faults, $(( u1 + s1 - u0 - s0 )) ticks, $n requests${sc:+, sidecar $(( nu1 + ns1 - nu0 - ns0 )) ticks}"
    done
done
if [ -n "${BENCH_HOLD:-}" ]; then
    for v in $only; do echo "  hold: $v on port ${vport[$v]}, worker $(worker "$v")"; done
    sleep "$BENCH_HOLD"
fi
for v in $only; do bench_quit "$work/$v"; done
sleep 0.5

# ----------------------------------------------------------------- callgrind
# One process (master_process off) under callgrind, instrumentation off
# while it starts and warms; on, zeroed, BENCH_CG_SECONDS of load, dumped.
# Requests: the calls of ngx_http_free_request in the dump.
declare -A ir
if [ -z "${BENCH_NO_CALLGRIND:-}" ]; then
    for v in $only; do
        d=$work/cg-$v
        mkdir -p "$d/logs" "$d/conf"
        eport=0
        cg_cookie=""
        case $v in
        cookie-*) eport=$cemu; cg_cookie=$cookie ;;
        hit-1c) eport=$(emulator "cg-$v" "$cg_port"); cg_cookie=$cookie ;;
        hit-*|authz-*|lua-*) eport=$(emulator "cg-$v" "$cg_port") ;;
        node-*)
            eport=$(emulator "cg-$v" "$cg_port")
            sidecar "cg-$v" "$(sidecar_port "$cg_port")" "$eport"
            ;;
        esac
        # the instance is named after its emulator's CA
        conf "$v" "$cg_port" "$eport" "master_process off;
daemon off;" "$(sidecar_port "$cg_port")" \
            | sed "s#$work/emu-$v/#$work/emu-cg-$v/#" > "$d/conf/nginx.conf"
        # (a cookie variant's emulator is the probe's: emu_of kept it)
        # LuaJIT writes the code it runs: valgrind must look for that
        GLIBC_TUNABLES=$(tunables "$v") bench_callgrind "$d" \
            $(case $v in lua-*) echo --smc-check=all-non-file ;; esac)
        bench_wait_http "http://127.0.0.1:$cg_port/app"
        case $v in hit-*|authz-*|lua-*|node-*) warm "$cg_port" "${vids[$v]}" ;; esac
        bench_cg_measure "$d" "$cg_secs" 2 load "$cg_port" "${vids[$v]}"
        f=$cg_file n=$cg_n t=$cg_t
        ir[$v]=$(awk -v t="$t" -v n="$n" 'BEGIN { printf "%d", t / n }')
        echo "  callgrind $v: $t instructions, $n requests: ${ir[$v]} per request"
        # with --cache-sim=yes: last-level misses (instruction, data read,
        # data write) per request
        awk -v n="$n" '/^events:/ { for (i = 2; i <= NF; i++) ev[i] = $i }
            /^(summary|totals):/ {
                for (i = 2; i <= NF; i++) if (ev[i] ~ /^(ILmr|DLmr|DLmw)$/) {
                    s = s sprintf(" %s %.2f", ev[i], $i / n); t += $i }
                if (s != "") printf "  callgrind LL misses per request:%s, total %.2f\n", s, t / n
                exit }' "$f"
        # the module's functions and the worker's main stages, inclusive,
        # per request
        bench_cg_annotate "$n" 50 --inclusive=yes --threshold=100 \
            > "$out/hit-$v.txt"
        bench_cg_stop "$d"
        [ ! -s "$work/node-cg-$v/pid" ] || kill "$(cat "$work/node-cg-$v/pid")"
    done
fi

# --------------------------------------------------------------------- table
ratio() { bench_ratio "$@"; }
{
    echo "date: $(bench_date)  machine: $(nproc) cores, $(bench_cpu_model)"
    echo "wrk: 1 thread, $conns connections, ${secs}s x $rounds rounds (medians); session JWT $jwt_len bytes; $(bench_git)"
    echo
    echo "| variant | req/s | of static | worker CPU us/req | above static | minor faults /1000 req | instructions/req | above static |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    s_q=$(median ${rps[static]:-0}); s_c=$(median ${cpu[static]:-0})
    s_ir=${ir[static]:-0}
    for v in $only; do
        q=$(median ${rps[$v]}); c=$(median ${cpu[$v]}); f=$(median ${flt[$v]})
        echo "| $v | $q | $(ratio "$q" "$s_q") | $c | $(awk -v a="$c" -v b="$s_c" 'BEGIN { printf "%+.2f", a - b }') | $f | ${ir[$v]:--} | $( [ -n "${ir[$v]:-}" ] && [ "$s_ir" != 0 ] && printf '%+d' $(( ${ir[$v]} - s_ir )) || echo -) |"
    done
    for b in hit-1c hit-1; do
        case " $only " in *" cookie-1 "*) ;; *) break ;; esac
        case " $only " in *" $b "*) ;; *) continue ;; esac
        echo
        echo "cookie-1 (a session cookie from another node, zone never saw the identity) of $b (zone hit): req/s $(ratio "$(median ${rps[cookie-1]})" "$(median ${rps[$b]})"), instructions $( [ -n "${ir[cookie-1]:-}" ] && [ -n "${ir[$b]:-}" ] && printf '%+d' $(( ${ir[cookie-1]} - ${ir[$b]} )) || echo -)"
    done
    if [[ " $only " == *" authz-1 "* && " $only " == *" hit-1 "* ]]; then
        echo
        echo "authz-1 (one permission and one factor required) of hit-1 (the same zone hit without them): req/s $(ratio "$(median ${rps[authz-1]})" "$(median ${rps[hit-1]})") (target 97%), by round$(for i in $(seq "$rounds"); do set -- ${rps[authz-1]}; a=${!i}; set -- ${rps[hit-1]}; printf ' %s' "$(ratio "$a" "${!i}")"; done), instructions $( [ -n "${ir[authz-1]:-}" ] && [ -n "${ir[hit-1]:-}" ] && printf '%+d' $(( ${ir[authz-1]} - ${ir[hit-1]} )) || echo -)"
    fi
    echo
    for v in $only; do
        echo "rounds $v: req/s${rps[$v]}; us/req${cpu[$v]}; faults/1000${flt[$v]}${side[$v]:+; sidecar us/req${side[$v]}}"
    done
} | tee "$out/hit.txt"
