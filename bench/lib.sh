# Shared by bench/*.sh and bench/soak/lib.sh (sourced, bash): the work
# directory and its cleanup, the Stytch emulator, nginx instances (the
# upstream, the tested ones, one under callgrind), the configuration lines
# they have in common, wrk and /proc measurements, and the lines that date
# a result.  Everything started here is stopped by bench_cleanup (an EXIT
# trap set by bench_init).

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_pids=()
bench_hz=$(getconf CLK_TCK)

# bench_init NAME: into the repository; root, out (bench/results/) and work
# (a new /tmp/stytch-tat-NAME.XXXXXX, kept with BENCH_DEBUG=1)
bench_init() {
    bench_name=$1
    cd "$bench_root"
    root=$bench_root
    out=$root/bench/results
    mkdir -p "$out"
    work=$(mktemp -d "/tmp/stytch-tat-$1.XXXXXX")
    chmod 755 "$work"
    trap bench_cleanup EXIT
}

# stops every nginx with a pid file in $work or one level below, the
# processes in bench_pids and those whose pid is in $work/*/pid (emulators,
# sidecars: started in subshells, they leave a file)
bench_cleanup() {
    local d p
    set +e
    for d in "$work" "$work"/*/; do
        [ -s "$d/logs/nginx.pid" ] && kill -QUIT "$(cat "$d/logs/nginx.pid")"
    done 2> /dev/null
    for p in "${bench_pids[@]}" $(cat "$work"/*/pid 2> /dev/null); do
        kill "$p" 2> /dev/null
    done
    wait 2> /dev/null
    [ -n "${BENCH_DEBUG:-}" ] || rm -rf "$work"
}

# bench_need TOOL...: stops, naming the first one not on the PATH
bench_need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" > /dev/null \
            || { echo "bench/$bench_name.sh needs $tool" >&2; exit 1; }
    done
}

# the test keys (keys: their directory) and the credentials as a Basic
# value (basic), for the peers that send them themselves
bench_keys() {
    keys=$bench_root/build/test-keys
    bash "$bench_root/scripts/test-keys.sh" "$keys"
    basic=$(tr -d '\n' < "$keys/creds" | base64 -w0)
}

bench_emulator_deps() {
    [ -d "$bench_root/t/emulator/node_modules" ] \
        || (cd "$bench_root/t/emulator" && npm ci --no-audit --no-fund --loglevel=error)
}

# bench_emulator_start DIR CONFIG [CPUS]: t/emulator/server.mjs on free
# loopback ports, on CPUS (taskset) if given, its files in DIR (ready,
# ca.pem, pid, out, err); returns once it is ready
bench_emulator_start() {
    mkdir -p "$1"
    ${3:+taskset -c "$3"} node "$bench_root/t/emulator/server.mjs" \
        --listen localhost:0 --control 127.0.0.1:0 --dir "$1" --config "$2" \
        > "$1/out" 2> "$1/err" &
    echo $! > "$1/pid"
    for _ in $(seq 100); do [ -s "$1/ready" ] && break; sleep 0.1; done
    [ -s "$1/ready" ] || { cat "$1/err" >&2; echo "emulator did not start" >&2; exit 1; }
}

# bench_ready_port DIR FIELD: listen_port or control_port of its ready file
bench_ready_port() { sed "s/.*\"$2\":\([0-9]*\).*/\1/" "$1/ready"; }

# bench_emulator DIR JWKS_PORT [CPUS]: the emulator with the example
# configuration, its profile trusting the JWKS of
# http://127.0.0.1:JWKS_PORT/jwks; prints its HTTPS port
bench_emulator() {
    mkdir -p "$1"
    sed "s#http://127.0.0.1:8080/.well-known/jwks.json#http://127.0.0.1:$2/jwks#" \
        "$bench_root/t/emulator/config.example.json" > "$1/config.json"
    bench_emulator_start "$1" "$1/config.json" "${3:-}"
    bench_ready_port "$1" listen_port
}

# bench_upstream PORT [LOCATIONS]: the upstream, a separate nginx in
# $work/up answering "ok" (and LOCATIONS), one worker on core 0
bench_upstream() {
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
        listen 127.0.0.1:$1;
        keepalive_requests 1000000;
        location / { return 200 "ok\n"; }
${2:-}
    }
}
EOC
    nginx -p "$work/up" -c conf/nginx.conf
}

# bench_nginx_start DIR: nginx with DIR/conf/nginx.conf, DIR its prefix;
# returns once its worker is there
bench_nginx_start() {
    nginx -p "$1" -c conf/nginx.conf
    for _ in $(seq 50); do [ -n "$(bench_worker "$1")" ] && break; sleep 0.1; done
}

# bench_worker DIR: the pid of the (first) worker of the nginx of prefix DIR
bench_worker() { ps -o pid= --ppid "$(cat "$1/logs/nginx.pid" 2>/dev/null)" 2>/dev/null | head -1 | tr -d ' '; }

# bench_quit DIR...: a graceful stop of the nginx of each prefix
bench_quit() {
    local d
    for d; do kill -QUIT "$(cat "$d/logs/nginx.pid")"; done
}

# ------------------------------------------------------ configuration lines

# bench_conf_module ZONE SIZE: the module's http lines, with the test keys
# and the emulator's profile
bench_conf_module() {
    cat <<EOC
    stytch_tat_signing_key $keys/rsa.pem;
    stytch_tat_credentials $keys/creds;
    stytch_tat_issuer https://auth.example.com;
    stytch_tat_audience https://api.example.com;
    stytch_tat_profile_id trusted-auth-token-profile-test-00000000-0000-0000-0000-000000000000;
    stytch_tat_zone zone=$1:$2;
EOC
}

# bench_conf_lua_modules, bench_conf_lua SIZE: the OpenResty peer's main
# and http lines, its shared dict SIZE; it signs with the same key under
# the same kid ($kid) as the module
bench_conf_lua_modules() {
    cat <<EOC
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
EOC
}

bench_conf_lua() {
    cat <<EOC
    lua_package_path "$bench_root/bench/peers/openresty/?.lua;;";
    lua_shared_dict stytch_tat $1;
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
EOC
}

# the OpenResty peer's attest subrequest sends its own headers
bench_conf_lua_attest() {
    echo "proxy_pass_request_headers off;
            proxy_set_header Content-Type application/json;
            proxy_set_header Authorization \"Basic $basic\";"
}

# bench_conf_attest CA [LINES]: the internal location that proxies to
# Stytch (upstream stytch_api) over TLS verified with CA, LINES added
bench_conf_attest() {
    cat <<EOC
        location = /_stytch_attest {
            internal;
            proxy_pass https://stytch_api/v1/sessions/attest;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            ${2:-}
            proxy_ssl_trusted_certificate $1;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }
EOC
}

# bench_app_lines [SUBJECT]: the exchange in /app, the identity from the
# headers bench/identities.lua sends (X-Email, X-User, X-Groups)
bench_app_lines() {
    echo 'stytch_tat /_stytch_attest;
            stytch_tat_cache bench;
            stytch_tat_email $http_x_email;
            stytch_tat_subject '"${1:-\$http_x_user}"';
            stytch_tat_claim assignments $http_x_groups list=,;'
}

# bench_as I URL [CURL OPTIONS]: curl -s as identity userI, with the
# headers of bench/identities.lua
bench_as() {
    local i=$1 url=$2
    shift 2
    curl -s "$@" -H "X-Email: user$i@example.com" -H "X-User: user$i" \
         -H "X-Groups: editor,reader" "$url"
}

# the kid of the (first) key of the JWKS document on stdin
bench_jwks_kid() { sed 's/.*"kid":"\([^"]*\)".*/\1/'; }

# ------------------------------------------------------------- measurements

# bench_wrk URL SECONDS [WRK OPTIONS]: wrk, 1 thread and $conns connections
# on core 0, with bench/identities.lua; its output in $work/wrk.out
bench_wrk() {
    local url=$1 secs=$2
    shift 2
    taskset -c 0 wrk -t1 -c"$conns" -d"${secs}s" "$@" \
        -s "$bench_root/bench/identities.lua" "$url" > "$work/wrk.out" 2>&1
}

# bench_wrk_warn PORT: a warning when wrk's answers were not all 2xx
bench_wrk_warn() {
    if grep -q Non-2xx "$work/wrk.out"; then
        echo "  warning: $(grep Non-2xx "$work/wrk.out") on port $1" >&2
    fi
}

bench_wrk_requests() { awk '/requests in/ {print $1}' "$work/wrk.out"; }
bench_wrk_rps() { awk '/^Requests\/sec/ {printf "%d", $2}' "$work/wrk.out"; }

# bench_stat PID: its minor page faults, user and system clock ticks
bench_stat() { awk '{print $10, $14, $15}' "/proc/$1/stat"; }

# bench_us TICKS N FORMAT: microseconds per unit of TICKS over N units
bench_us() {
    awk -v a="$1" -v n="$2" -v hz="$bench_hz" -v f="$3" 'BEGIN { printf f, 1e6 * a / hz / n }'
}

# bench_wait_http URL: until it answers (up to a minute: valgrind is slow)
bench_wait_http() {
    for _ in $(seq 300); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.2
    done
}

# bench_callgrind DIR [VALGRIND OPTIONS]: nginx with DIR/conf/nginx.conf (a
# single process) under callgrind on core 1, instrumentation off while it
# starts and warms; bench_cg is its pid
bench_callgrind() {
    local d=$1
    shift
    taskset -c 1 valgrind --tool=callgrind --instr-atstart=no "$@" \
        ${BENCH_CG_OPTS:-} \
        --callgrind-out-file="$d/callgrind.out" \
        nginx -p "$d" -c conf/nginx.conf > "$d/valgrind.log" 2>&1 &
    bench_cg=$!
    bench_pids+=("$bench_cg")
}

# bench_cg_measure DIR SECONDS WARM LOAD...: instrumentation on, WARM
# seconds of LOAD (a command that takes its seconds last), counters zeroed,
# SECONDS of LOAD, dumped.  Sets cg_file (the dump), cg_n (requests: the
# calls of ngx_http_free_request) and cg_t (instructions)
bench_cg_measure() {
    local d=$1 secs=$2 warm=$3
    shift 3
    callgrind_control -i on "$bench_cg" > /dev/null
    "$@" "$warm"
    ( sleep 1; callgrind_control -z "$bench_cg" > /dev/null;
      sleep "$secs"; callgrind_control -d "$bench_cg" > /dev/null ) &
    "$@" $((secs + 2))
    wait $!
    cg_file=$(ls -t "$d"/callgrind.out* | head -1)
    cg_n=$(awk -v f=ngx_http_free_request '
        /^c?fn=\(/ {
            id = $0; sub(/^c?fn=/, "", id); name = id
            sub(/\).*/, ")", id); sub(/^\([0-9]+\) ?/, "", name)
            if (name != "") names[id] = name
            if ($0 ~ /^cfn=/) callee = names[id]
            next
        }
        /^calls=/ { if (callee == f) { split($0, a, /[= ]/); n += a[2] } }
        END { print n + 0 }' "$cg_file")
    cg_t=$(awk '/^(summary|totals):/ {print $2; exit}' "$cg_file")
}

# bench_cg_annotate N MIN [OPTIONS]: callgrind_annotate of cg_file, per
# request (N of them), the lines of MIN instructions or more
bench_cg_annotate() {
    local n=$1 min=$2
    shift 2
    callgrind_annotate "$@" "$cg_file" 2> /dev/null \
        | awk -v n="$n" -v min="$min" '/^ *[0-9,]+ \(/ {
              c = $1; gsub(/,/, "", c)
              if (c / n >= min) printf "%10.0f  %s\n", c / n, $0 }'
}

# bench_cg_stop DIR: the nginx under callgrind stopped, its dumps removed
# (kept with BENCH_DEBUG=1)
bench_cg_stop() {
    kill "$bench_cg"
    wait "$bench_cg" 2>/dev/null || true
    [ -n "${BENCH_DEBUG:-}" ] || rm -f "$1"/callgrind.out*
}

# ------------------------------------------------------------------ results

bench_median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else printf "-" }'; }
bench_date() { date -u +%FT%TZ; }
bench_cpu_model() { grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'; }
# "git COMMIT", "+dirty" when the module's sources differ from it
bench_git() {
    echo "git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src ngx_http_stytch_tat_module.c || echo +dirty)"
}
bench_banner() {
    echo "== bench/$bench_name.sh: $(bench_date), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
}
