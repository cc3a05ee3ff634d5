#!/usr/bin/env bash
# valgrind memcheck of the module's core paths in Debian's nginx, one
# process (master_process off; daemon off;), the module loaded:
#
#   for each signing key (RS256, ES256, EdDSA), one nginx under valgrind:
#     the JWKS, minting ($stytch_tat_jwt), bad identities (400/401), the
#     exchange against the Stytch emulator (consumer and B2B), the cache and
#     its status page; with RS256 also the emulator's fault modes (5xx, 429,
#     malformed, truncated, oversized, resets, stall), fail open, a refused
#     profile and a small stytch_tat_buffer_size (no reload: nginx's
#     single-process mode answers no request after SIGHUP; reloads run in
#     scripts/sanitize.sh, t/020-cache.t);
#   then SIGQUIT, and valgrind's report is checked.
#
#   bash scripts/valgrind.sh            (make builds the module first)
#   VALGRIND_KEEP=1 bash scripts/valgrind.sh   keep the work directory
#
# Fails (non-zero) on any memcheck error (invalid read/write/free,
# uninitialised values, overlaps ...), on a definitely lost block with a
# module frame (ngx_http_stytch_tat_*) in its stack, on an unexpected
# status, or when nginx does not exit cleanly.  Definite leaks of nginx core
# alone (no module frame) are listed, not failed.
#
# Logs: build/valgrind/valgrind-ALG.log, build/valgrind/error-ALG.log.
set -u
cd "$(dirname "$0")/.."
root=$PWD

NGINX=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${TEST_NGINX_MODULE:-$root/build/ngx_http_stytch_tat_module.so}
out=$root/build/valgrind
keys=$root/build/test-keys

PROFILE=trusted-auth-token-profile-test-00000000-0000-0000-0000-000000000000
B2B_PROFILE=trusted-auth-token-profile-test-b2b00000-0000-0000-0000-000000000000
ORG=organization-test-00000000-0000-0000-0000-000000000000

log() { printf '== %s\n' "$*"; }
die() { printf 'valgrind.sh: %s\n' "$*" >&2; exit 1; }

command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
command -v curl >/dev/null || die "curl is not installed"
[ -x "$NGINX" ] || die "no $NGINX"
[ -f "$MODULE" ] || make -s || die "cannot build the module"
[ -f "$MODULE" ] || die "no $MODULE"
[ -d t/emulator/node_modules ] || (cd t/emulator && npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci in t/emulator failed"
bash scripts/test-keys.sh "$keys" || die "test keys"

t0=$(date +%s)
mkdir -p "$out"

# nginx dlclose()s the module when it destroys its cycle at exit, before
# valgrind's leak check: what the module keeps in static variables for the
# process's life (a digest context per worker, say) would then count as
# "definitely lost", and its frames could not be named.  The module stays
# mapped with dlclose() as a no-op, as it does in any running nginx.
if [ ! -f "$out/nodlclose.so" ] || [ "$0" -nt "$out/nodlclose.so" ]; then
    printf '%s\n' 'int dlclose(void *handle) { (void) handle; return 0; }' \
        > "$out/nodlclose.c"
    cc -shared -fPIC -O1 -o "$out/nodlclose.so" "$out/nodlclose.c" \
        || die "cannot build nodlclose.so"
fi
work=$(mktemp -d /tmp/stytch-tat-vg.XXXXXX)
chmod 755 "$work"
emu_pid= vg_pid=

cleanup() {
    [ -n "$vg_pid" ] && kill -KILL "$vg_pid" 2>/dev/null
    [ -n "$emu_pid" ] && { kill "$emu_pid" 2>/dev/null; wait "$emu_pid" 2>/dev/null; }
    if [ -n "${VALGRIND_KEEP:-}" ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------------ emulator
# as scripts/test.sh starts it

mkdir -p "$work/emu"
cp t/emulator/config.example.json "$work/emu/config.json"
node t/emulator/server.mjs --listen localhost:0 --control 127.0.0.1:0 \
    --dir "$work/emu" --config "$work/emu/config.json" \
    > "$work/emu/stdout" 2> "$work/emu/stderr" &
emu_pid=$!
for _ in $(seq 100); do
    [ -s "$work/emu/ready" ] && break
    sleep 0.1
done
[ -s "$work/emu/ready" ] || { cat "$work/emu/stderr" >&2; die "the emulator did not start"; }
ready=$(cat "$work/emu/ready")
emu_port=$(node -e 'console.log(JSON.parse(process.argv[1]).listen_port)' "$ready")
ctl_port=$(node -e 'console.log(JSON.parse(process.argv[1]).control_port)' "$ready")
ca=$work/emu/ca.pem

emu() {   # METHOD PATH [JSON]
    curl -sf -X "$1" "http://127.0.0.1:$ctl_port$2" \
        ${3:+-H 'Content-Type: application/json' --data "$3"} > /dev/null \
        || echo "valgrind.sh: emulator control $1 $2 failed" >&2
}

# the profiles read the JWKS of the nginx under test
emu_setup() {   # NGINX_PORT
    local m='{"email":"email","token_id":"jti","external_user_id":"sub","role_ids":"assignments"}'
    emu POST /reset
    emu POST /config "{\"profiles\":[
      {\"profile_id\":\"$PROFILE\",\"issuer\":\"https://auth.example.com\",
       \"audience\":\"https://api.example.com\",
       \"jwks_url\":\"http://127.0.0.1:$1/jwks\",\"attribute_mapping\":$m,
       \"jit_provisioning\":true,\"algorithms\":[\"RS256\",\"ES256\",\"EdDSA\"]},
      {\"profile_id\":\"$B2B_PROFILE\",\"issuer\":\"https://auth.example.com\",
       \"audience\":\"https://api.example.com\",
       \"jwks_url\":\"http://127.0.0.1:$1/jwks\",
       \"attribute_mapping\":{\"email\":\"email\",\"token_id\":\"jti\",\"external_member_id\":\"sub\",\"organization_id\":\"org\"},
       \"jit_provisioning\":true,\"algorithms\":[\"RS256\",\"ES256\",\"EdDSA\"],\"b2b\":true}],
     \"organizations\":[{\"organization_id\":\"$ORG\",\"organization_slug\":\"example\",\"organization_name\":\"Example\"}]}"
}

# ------------------------------------------------------------------ nginx

write_conf() {   # DIR PORT KEY
    local dir=$1 port=$2 key=$3
    mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp"
    cat > "$dir/conf/nginx.conf" <<EOF
load_module $MODULE;
master_process off;
daemon off;
error_log $dir/logs/error.log info;
pid $dir/logs/nginx.pid;

events { worker_connections 256; }

http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    default_type text/plain;

    stytch_tat_signing_key $key;
    stytch_tat_signing_key $keys/rsa2.pem kid=second-key;
    stytch_tat_credentials $keys/creds;
    stytch_tat_issuer https://auth.example.com;
    stytch_tat_audience https://api.example.com;
    stytch_tat_profile_id $PROFILE;
    stytch_tat_zone zone=vg:1m;

    upstream stytch_api {
        server 127.0.0.1:$emu_port;
        keepalive 4;
    }

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

        # valgrind is slow: generous timeouts, except where a stall is wanted
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_ssl_trusted_certificate $ca;
        proxy_ssl_verify on;
        proxy_ssl_name localhost;
        proxy_ssl_server_name on;
        proxy_ssl_session_reuse on;
        proxy_connect_timeout 10s;
        proxy_read_timeout 20s;

        location = /ready { return 200 "ready\n"; }
        location = /jwks { stytch_tat_jwks; }
        location = /status { stytch_tat_status; }
        location = /metrics { stytch_tat_status prometheus; }

        location = /_attest {
            internal;
            proxy_pass https://stytch_api/v1/sessions/attest;
        }
        location = /_attest_b2b {
            internal;
            proxy_pass https://stytch_api/v1/b2b/sessions/attest;
        }
        location = /_attest_small {
            internal;
            proxy_pass https://stytch_api/v1/sessions/attest;
        }
        location = /_attest_stall {
            internal;
            proxy_pass https://stytch_api/v1/sessions/attest;
            proxy_read_timeout 2s;
        }
        location = /_authenticate {
            internal;
            proxy_pass https://stytch_api/v1/sessions/authenticate;
        }

        location = /mint {
            stytch_tat_email \$http_x_email;
            stytch_tat_subject \$http_x_user;
            stytch_tat_claim assignments \$http_x_groups list=,;
            stytch_tat_claim name \$http_x_name;
            return 200 "\$stytch_tat_jwt\n";
        }

        location /app {
            stytch_tat /_attest;
            stytch_tat_email \$http_x_email;
            stytch_tat_subject \$http_x_user;
            stytch_tat_claim assignments \$http_x_groups list=,;
            add_header X-Error \$stytch_tat_error always;
            proxy_pass http://unix:$dir/backend.sock:/backend/;
        }
        location /b2b {
            stytch_tat /_attest_b2b;
            stytch_tat_profile_id $B2B_PROFILE;
            stytch_tat_organization_id $ORG claim=org;
            stytch_tat_email \$http_x_email;
            stytch_tat_subject \$http_x_user;
            add_header X-Error \$stytch_tat_error always;
            proxy_pass http://unix:$dir/backend.sock:/backend/;
        }
        location /cached {
            stytch_tat /_attest;
            stytch_tat_refresh /_authenticate;
            stytch_tat_cache vg;
            stytch_tat_email \$http_x_email;
            add_header X-Cache \$stytch_tat_cache_status always;
            add_header X-Error \$stytch_tat_error always;
            proxy_pass http://unix:$dir/backend.sock:/backend/;
        }
        location /open {
            stytch_tat /_attest;
            stytch_tat_fail open;
            stytch_tat_email \$http_x_email;
            add_header X-Error \$stytch_tat_error always;
            proxy_pass http://unix:$dir/backend.sock:/backend/;
        }
        location /small {
            stytch_tat /_attest_small;
            stytch_tat_buffer_size 512;
            stytch_tat_email \$http_x_email;
            add_header X-Error \$stytch_tat_error always;
            proxy_pass http://unix:$dir/backend.sock:/backend/;
        }
        location /stall {
            stytch_tat /_attest_stall;
            stytch_tat_email \$http_x_email;
            add_header X-Error \$stytch_tat_error always;
            proxy_pass http://unix:$dir/backend.sock:/backend/;
        }
        location /unknown-profile {
            stytch_tat /_attest;
            stytch_tat_profile_id trusted-auth-token-profile-test-nope;
            stytch_tat_email \$http_x_email;
            add_header X-Error \$stytch_tat_error always;
            proxy_pass http://unix:$dir/backend.sock:/backend/;
        }
    }

    # the application: a server of its own, since the one above drops
    # client X-Stytch-* headers
    server {
        listen unix:$dir/backend.sock;

        location /backend/ {
            return 200 "jwt=\$http_x_stytch_session_jwt
user=\$http_x_stytch_user_id
session=\$http_x_stytch_session_id
";
        }
    }
}
EOF
}

failures=0
check() {   # NAME WANT_STATUS URI [curl args...]
    local name=$1 want=$2 uri=$3 got
    shift 3
    got=$(curl -s -o "$work/body" -D "$work/headers" -w '%{http_code}' --max-time 60 \
          "http://127.0.0.1:$port$uri" "$@")
    if [ "$got" = "$want" ]; then
        printf '   ok   %-44s %s\n' "$name" "$got"
    else
        printf '   FAIL %-44s got %s, want %s\n' "$name" "$got" "$want"
        head -c 300 "$work/body"; echo
        failures=$((failures + 1))
    fi
}

body_has() {   # NAME REGEX
    if grep -Eq "$2" "$work/body"; then
        printf '   ok   %-44s\n' "$1"
    else
        printf '   FAIL %-44s body: %s\n' "$1" "$(head -c 200 "$work/body")"
        failures=$((failures + 1))
    fi
}

header_has() {   # NAME REGEX
    if grep -Eiq "$2" "$work/headers"; then
        printf '   ok   %-44s\n' "$1"
    else
        printf '   FAIL %-44s headers: %s\n' "$1" "$(tr -d '\r' < "$work/headers" | tr '\n' ' ')"
        failures=$((failures + 1))
    fi
}

fault() {   # JSON
    emu POST /faults "$1"
}

# the requests of every key; the fault modes with RS256 only
drive() {   # ALG
    local alg=$1 long
    long=$(printf 'a%.0s' $(seq 1100))

    check "JWKS" 200 /jwks
    body_has "JWKS has both keys" '"kid":"second-key"'
    check "mint $alg" 200 /mint -H 'X-Email: ada.lovelace@example.com' \
        -H 'X-User: user_123456' -H 'X-Groups: editor, reader,,admin' \
        -H $'X-Name: Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac'
    body_has "a compact JWS" '^ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$'
    # a claim refused: $stytch_tat_jwt is empty (and a log line names it)
    check "mint: invalid UTF-8 claim" 200 /mint -H 'X-Email: a@example.com' \
        -H $'X-Name: \xc3\x28'
    body_has "... no token" '^$'
    check "mint: over-long claim" 200 /mint -H 'X-Email: a@example.com' \
        -H "X-Name: $long"
    body_has "... no token" '^$'
    check "mint: list over 4096 bytes of JSON" 200 /mint -H 'X-Email: a@example.com' \
        -H "X-Groups: $(printf '"%.0s,' $(seq 500))" -H "X-Name: $(printf '"%.0s' $(seq 1000))"
    body_has "... no token" '^$'
    check "no identity: 401" 401 /app
    check "identity with control byte: 400" 400 /app -H $'X-Email: a\x01b@example.com'
    check "identity invalid UTF-8: 400" 400 /app -H $'X-Email: \xff@example.com'

    check "exchange (consumer)" 200 /app -H 'X-Email: ada.lovelace@example.com' \
        -H 'X-User: user_123456' -H 'X-Groups: editor,reader' \
        -H 'X-Stytch-Session-Jwt: forged'
    body_has "the upstream got the session" '^user=user-test-'
    check "exchange (B2B)" 200 /b2b -H 'X-Email: grace.hopper@example.com' -H 'X-User: u-grace'
    body_has "the upstream got the member" '^user=member-test-'
    check "cache: miss" 200 /cached -H 'X-Email: cache@example.com'
    check "cache: hit" 200 /cached -H 'X-Email: cache@example.com'
    header_has "X-Cache: HIT" '^X-Cache: HIT'
    check "status page" 200 /status
    check "prometheus" 200 /metrics

    [ "$alg" = RS256 ] || return 0

    check "refused profile: 500" 500 /unknown-profile -H 'X-Email: a@example.com'
    fault '{"path":"/v1/sessions/attest","mode":"status","status":500,"count":1}'
    check "Stytch 500: 502" 502 /app -H 'X-Email: a@example.com'
    fault '{"path":"/v1/sessions/attest","mode":"status","status":400,"error_type":"invalid_trusted_auth_token","count":1}'
    check "Stytch 400: 403" 403 /app -H 'X-Email: a@example.com'
    fault '{"path":"/v1/sessions/attest","mode":"rate_limit","retry_after":7,"count":1}'
    check "Stytch 429: 503" 503 /app -H 'X-Email: a@example.com'
    header_has "Retry-After passed on" '^Retry-After: 7'
    fault '{"path":"/v1/sessions/attest","mode":"malformed_json","count":1}'
    check "malformed JSON: 502" 502 /app -H 'X-Email: a@example.com'
    fault '{"path":"/v1/sessions/attest","mode":"truncated","count":1}'
    check "truncated answer: 502" 502 /app -H 'X-Email: a@example.com'
    fault '{"path":"/v1/sessions/attest","mode":"oversized","count":1}'
    check "oversized answer: 502" 502 /app -H 'X-Email: a@example.com'
    check "answer over a 512 byte buffer: 502" 502 /small -H 'X-Email: small@example.com'
    fault '{"path":"/v1/sessions/attest","mode":"reset_before_headers","count":1}'
    check "reset before headers: 502" 502 /app -H 'X-Email: a@example.com'
    fault '{"path":"/v1/sessions/attest","mode":"reset_after_headers","count":1}'
    check "reset after headers: 502" 502 /app -H 'X-Email: a@example.com'
    fault '{"path":"/v1/sessions/attest","mode":"stall","count":1}'
    check "stalled Stytch: 504" 504 /stall -H 'X-Email: a@example.com'
    fault '{"path":"/v1/sessions/attest","mode":"latency","latency_ms":300,"count":1}'
    check "slow Stytch: 200" 200 /app -H 'X-Email: slow@example.com'
    fault '{"path":"/v1/sessions/attest","mode":"status","status":503,"count":1}'
    check "fail open on 503: 200" 200 /open -H 'X-Email: a@example.com'
    body_has "... without a session" '^user=$'
    emu DELETE /faults
    check "exchange after the faults" 200 /app -H 'X-Email: after@example.com'
}

# the memcheck report: errors, and definite leaks with or without module frames
analyze() {   # LOG
    python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1], errors='replace').read()
lines = [re.sub(r'^==\d+== ?', '', l) for l in text.splitlines() if re.match(r'^==\d+==', l)]
records, cur = [], None
for l in lines:
    if l == '':
        if cur: records.append(cur); cur = None
        continue
    if cur is None:
        cur = [l]
    else:
        cur.append(l)
if cur: records.append(cur)
err_re = re.compile(r'^(Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised|'
                    r'Syscall param|Source and destination overlap|Argument .* of function|Invalid .*size|'
                    r'Jump to the invalid address|Process terminating)')
errors, mod_leaks, core_leaks = [], [], []
for r in records:
    head = r[0]
    if err_re.match(head):
        errors.append(r)
    elif 'definitely lost in loss record' in head:
        (mod_leaks if any('ngx_http_stytch_tat_' in x for x in r) else core_leaks).append(r)
for l in lines:
    if re.search(r'(in use at exit|total heap usage|definitely lost:|indirectly lost:|possibly lost:|'
                 r'still reachable:|suppressed:|ERROR SUMMARY)', l):
        print('   ' + l.strip())
def show(kind, recs):
    for r in recs[:10]:
        print('   --- ' + kind)
        for x in r[:24]:
            print('   ' + x)
show('memcheck error', errors)
show('definite leak with a module frame', mod_leaks)
if core_leaks:
    print('   %d definite leak record(s) of nginx core/OpenSSL alone (no module frame), not failed:'
          % len(core_leaks))
    for r in core_leaks:
        frames = [re.sub(r'^\s*(at|by) 0x[0-9A-F]+: ', '', x) for x in r[1:]]
        print('     ' + r[0].split(' in loss record')[0] + ': ' + ' < '.join(frames[:6]))
print('   memcheck errors: %d, definite leaks with module frames: %d' % (len(errors), len(mod_leaks)))
sys.exit(1 if errors or mod_leaks else 0)
PY
}

status=0

for spec in RS256:rsa.pem ES256:ec.pem EdDSA:ed.pem; do
    alg=${spec%%:*}
    key=$keys/${spec#*:}
    port=$(free_port)
    dir=$work/nginx-$alg
    vlog=$out/valgrind-$alg.log
    write_conf "$dir" "$port" "$key"
    emu_setup "$port"

    log "$alg: nginx under valgrind on 127.0.0.1:$port"
    "$NGINX" -t -q -p "$dir/" -c "$dir/conf/nginx.conf" || die "$alg: nginx -t failed"

    ts=$(date +%s)
    LD_PRELOAD=$out/nodlclose.so \
    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite --error-exitcode=99 \
        --keep-debuginfo=yes --num-callers=40 --track-fds=no \
        --log-file="$vlog" \
        "$NGINX" -p "$dir/" -c "$dir/conf/nginx.conf" \
        > "$dir/logs/stdout" 2>&1 &
    vg_pid=$!

    up=
    for _ in $(seq 600); do
        if curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/ready"; then up=1; break; fi
        kill -0 "$vg_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$up" ]; then
        cat "$dir/logs/stdout" "$dir/logs/error.log" >&2 2>/dev/null
        tail -30 "$vlog" >&2
        die "$alg: nginx did not come up under valgrind"
    fi
    log "$alg: up in $(( $(date +%s) - ts ))s"

    drive "$alg"

    kill -QUIT "$vg_pid"
    rc=0
    for _ in $(seq 300); do kill -0 "$vg_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$vg_pid" 2>/dev/null; then
        echo "   FAIL nginx did not exit within 30s of SIGQUIT"
        kill -KILL "$vg_pid"
        status=1
    fi
    wait "$vg_pid"
    rc=$?
    vg_pid=
    cp "$dir/logs/error.log" "$out/error-$alg.log"

    log "$alg: valgrind exit $rc after $(( $(date +%s) - ts ))s; $vlog"
    if grep -E '\[(alert|emerg|crit)\]' "$dir/logs/error.log"; then
        echo "   FAIL [alert]/[emerg]/[crit] in the error log"
        status=1
    fi
    analyze "$vlog" || status=1
    case $rc in
    0|99) ;;   # 99: definite leaks or errors, judged above
    *) echo "   FAIL nginx/valgrind exited $rc"; status=1 ;;
    esac
done

[ $failures -eq 0 ] || { log "$failures request check(s) failed"; status=1; }
if grep -q "secret-test-emulator" "$work/emu/stderr"; then
    log "the emulator logged the secret"; status=1
fi
log "total: $(( $(date +%s) - t0 ))s: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
