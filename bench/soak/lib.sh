# Shared by bench/soak-*.sh (sourced, bash): a temp dir, the Stytch
# emulator on free loopback ports, nginx with 2 workers and the module,
# measurements of the workers, checks of the error log. Everything started
# here is stopped by soak_cleanup (an EXIT trap).

soak_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
soak_failures=0
soak_emu_pid=
soak_log_mark=0

soak_fail() { echo "FAIL: $*"; soak_failures=$((soak_failures + 1)); }
soak_ok() { echo "ok: $*"; }

# soak_setup NAME: the temp dir, keys, a frozen copy of the module
soak_setup() {
    work=$(mktemp -d "/tmp/stytch-tat-soak-$1.XXXXXX")
    chmod 755 "$work"
    mkdir -p "$work/logs" "$work/conf" "$work/out"
    trap soak_cleanup EXIT
    trap 'exit 130' INT TERM
    [ -f "$soak_root/build/ngx_http_stytch_tat_module.so" ] \
        || make -C "$soak_root" >/dev/null
    # a copy: another build replacing build/*.so mid-run (or a reload
    # picking up a new one) must not change what is measured
    cp "$soak_root/build/ngx_http_stytch_tat_module.so" "$work/module.so"
    bash "$soak_root/scripts/test-keys.sh" "$soak_root/build/test-keys"
    # copies too: other runs may remake build/test-keys meanwhile
    keys=$work/keys
    mkdir -m 700 "$keys"
    cp "$soak_root/build/test-keys/rsa.pem" "$soak_root/build/test-keys/rsa-pub.pem" \
       "$soak_root/build/test-keys/creds" "$keys/"
    [ -d "$soak_root/t/emulator/node_modules" ] \
        || (cd "$soak_root/t/emulator" && npm ci --no-audit --no-fund --loglevel=error)
    echo "module: $(sha256sum "$work/module.so" | cut -c1-16) ($(git -C "$soak_root" log -1 --format=%h 2>/dev/null), $(git -C "$soak_root" status --porcelain -- src ngx_http_stytch_tat_module.c 2>/dev/null | wc -l) changed src files)"
    echo "work dir: $work; machine: $(nproc) cores"
}

soak_cleanup() {
    local rc=$?
    local pid
    set +e
    pid=$(cat "$work/logs/nginx.pid" 2>/dev/null)
    if [ -n "$pid" ]; then
        kill -QUIT "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    fi
    if [ -n "$soak_emu_pid" ]; then
        kill -TERM "$soak_emu_pid" 2>/dev/null
        wait "$soak_emu_pid" 2>/dev/null
    fi
    if [ -n "${SOAK_KEEP:-}" ]; then
        echo "kept: $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}

# a loopback port nobody listens on now (nginx retries on a bind race)
soak_free_port() {
    perl -MIO::Socket::INET -e \
        'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1)->sockport, "\n"'
}

# the emulator, verifying tokens with the PEM public key of rsa.pem
soak_start_emulator() {
    node -e '
        const fs = require("fs");
        const c = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
        const pem = fs.readFileSync(process.argv[2], "utf8");
        for (const p of c.profiles) { delete p.jwks_url; p.public_keys = [pem]; }
        fs.writeFileSync(process.argv[3], JSON.stringify(c, null, 2));
    ' "$soak_root/t/emulator/config.example.json" "$keys/rsa-pub.pem" "$work/emu.json"
    node "$soak_root/t/emulator/server.mjs" --listen localhost:0 --control 127.0.0.1:0 \
        --dir "$work/emu" --config "$work/emu.json" > "$work/emu.out" 2> "$work/emu.err" &
    soak_emu_pid=$!
    for _ in $(seq 100); do [ -s "$work/emu/ready" ] && break; sleep 0.1; done
    [ -s "$work/emu/ready" ] || { cat "$work/emu.err" >&2; echo "emulator did not start" >&2; exit 1; }
    eport=$(jq -r .listen_port "$work/emu/ready")
    cport=$(jq -r .control_port "$work/emu/ready")
    ctl="http://127.0.0.1:$cport"
}

# emu METHOD PATH [JSON]: a control API call
emu() {
    if [ -n "${3:-}" ]; then
        curl -sS -m 30 -X "$1" -H 'Content-Type: application/json' -d "$3" "$ctl$2"
    else
        curl -sS -m 30 -X "$1" "$ctl$2"
    fi
}

emu_attests() { emu GET /state | jq -r .calls; }
emu_rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$soak_emu_pid/status"; }

# soak_conf ZONE_SIZE EXTRA_APP_LINES [EXTRA_HTTP_LINES]: writes nginx.conf
soak_conf() {
    cat > "$work/conf/nginx.conf" <<EOC
load_module $work/module.so;
worker_processes 2;
error_log logs/error.log ${SOAK_LOG_LEVEL:-warn};
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    stytch_tat_signing_key $keys/rsa.pem;
    stytch_tat_credentials $keys/creds;
    stytch_tat_issuer https://auth.example.com;
    stytch_tat_audience https://api.example.com;
    stytch_tat_profile_id trusted-auth-token-profile-test-00000000-0000-0000-0000-000000000000;
    stytch_tat_zone zone=soak:$1;
    ${3:-}

    upstream stytch_api {
        server 127.0.0.1:$eport;
        keepalive 16;
        # idle connections to Stytch are closed after 2 s: a quiet worker
        # then holds no upstream socket, so its descriptors can be compared
        keepalive_timeout 2s;
    }
    # no keep-alive to the backend: it is this nginx, and its old workers
    # closing idle connections at reload would log upstream write errors
    # (retried by nginx) that are no part of the module
    upstream backend {
        server unix:$work/backend.sock;
    }
    server {
        listen unix:$work/backend.sock;
        location / { return 200 "ok\n"; }
    }
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 100000;
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
            proxy_connect_timeout ${SOAK_TIMEOUT:-1s};
            proxy_send_timeout ${SOAK_TIMEOUT:-1s};
            proxy_read_timeout ${SOAK_TIMEOUT:-1s};
        }
        location /app {
            stytch_tat /_stytch_attest;
            stytch_tat_cache soak;
            stytch_tat_email \$http_x_email;
            stytch_tat_subject \$http_x_user;
            stytch_tat_claim assignments \$http_x_groups list=,;
            add_header X-Soak-Cache \$stytch_tat_cache_status always;
            add_header X-Soak-Error \$stytch_tat_error always;
            $2
            proxy_pass http://backend;
        }
    }
}
EOC
}

soak_start_nginx() {
    local i
    for i in 1 2 3; do
        port=$(soak_free_port)
        soak_conf "$@"
        nginx -t -q -p "$work" -c conf/nginx.conf -e "$work/logs/error.log" \
            || { echo "nginx -t failed" >&2; exit 1; }
        if nginx -p "$work" -c conf/nginx.conf -e "$work/logs/error.log" 2>>"$work/logs/start.err"; then
            break
        fi
        [ "$i" = 3 ] && { cat "$work/logs/start.err" >&2; exit 1; }
    done
    for _ in $(seq 50); do
        [ "$(soak_workers | wc -w)" = 2 ] && curl -s -o /dev/null "http://127.0.0.1:$port/status" && break
        sleep 0.1
    done
    base="http://127.0.0.1:$port"
}

soak_master() { cat "$work/logs/nginx.pid" 2>/dev/null; }
# the current generation's workers (not old ones shutting down)
soak_workers() {
    local m
    m=$(soak_master)
    [ -n "$m" ] || return 0
    ps -o pid=,args= --ppid "$m" | awk '/worker process$/ {print $1}' | sort -n | tr '\n' ' '
}
soak_all_children() { local m; m=$(soak_master); [ -n "$m" ] && ps -o pid=,args= --ppid "$m"; }

# descriptors and memory of one process: "fds rss_kb anon_kb shmem_kb"
soak_proc() {
    local fds
    fds=$(ls "/proc/$1/fd" 2>/dev/null | wc -l)
    awk -v fds="$fds" '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssShmem/ {s=$2}
        END {print fds, r, a, s}' "/proc/$1/status"
}

# waits until no worker has a connection left (idle upstream keep-alive
# connections go after keepalive_timeout 2s), then one line per worker
soak_settle() {
    local w t
    sleep 3
    for t in $(seq 20); do
        local busy=0
        for w in $(soak_workers); do
            # sockets of a worker beyond its listeners and channels
            if ss -tnp 2>/dev/null | grep -q "pid=$w,"; then busy=1; fi
        done
        [ "$busy" = 0 ] && break
        sleep 0.5
    done
}

soak_status() { curl -s -m 10 "$base/status"; }

# error log lines since the last mark that must never appear
soak_log_since_mark() { tail -c +$((soak_log_mark + 1)) "$work/logs/error.log" 2>/dev/null; }
soak_mark_log() { soak_log_mark=$(stat -c %s "$work/logs/error.log" 2>/dev/null || echo 0); }

# soak_check_log WHAT [EXTRA_PATTERN]: the whole error log
soak_check_log() {
    local bad
    bad=$(grep -E "exited on signal|\[alert\]|\[emerg\]|\[crit\]|ngx_slab_alloc\(\) failed${2:+|$2}" \
          "$work/logs/error.log" || true)
    if [ -n "$bad" ]; then
        soak_fail "$1: $(echo "$bad" | wc -l) alert/emerg/crit/signal lines in the error log:"
        echo "$bad" | head -20 | sed 's/^/    /'
    else
        soak_ok "$1: no signal exit, [alert], [emerg], [crit] or ngx_slab_alloc() failure in the error log ($(wc -l < "$work/logs/error.log") lines)"
    fi
}

soak_levels() {
    # counts of error-log lines by level
    grep -oE '\[(debug|info|notice|warn|error|crit|alert|emerg)\]' "$work/logs/error.log" \
        | sort | uniq -c | awk '{printf "%s%s %s", sep, $2, $1; sep=", "} END {print ""}'
}
