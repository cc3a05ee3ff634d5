#!/usr/bin/env bash
# Zone bytes per cached session against the number of roles it has
# (issue 19, "Cost": at most 256 bytes more per session, on average, for
# sessions with up to 8 roles).  Since authorization at the edge, a
# session stored in a zone where some location requires anything of it
# keeps, beside its JWT, its roles, factors and organization read from
# the JWT once (the claims blob), in a slab slot of its own.
#
# One nginx (one worker) with one zone per role count N of BENCH_COUNTS,
# all of the same size, each filled with BENCH_IDENTITIES new identities
# through the emulator, whose trusted auth token profile maps the
# `assignments` claim to role_ids: zone roles-N's identities are assigned
# the first N roles of BENCH_ROLES, and their sessions hold those and
# stytch_user.
#
# Per zone: bytes per session, (size - free) / entries, slab rounding and
# the zone's own structures included; the growth from the first count,
# the difference of the zones' free bytes over the entries; and the node
# the module asks the slab allocator for, before rounding: its fixed part
# (BENCH_NODE_HEADER: offsetof(ngx_rbtree_node_t, color) +
# offsetof(ngx_http_stytch_tat_node_t, data), 176 on x86_64) plus the
# session's fields (token, JWT, user id, session id) and the claims blob,
# whose size is computed here from the JWT's payload by the blob's format
# (src/ngx_http_stytch_tat_rbac.c: 4 bytes, a length byte and the bytes of
# each role, of the organization id and slug, and of each distinct
# factor's type and delivery method, plus 8 per factor).  The slab
# allocator rounds a node of up to 2048 bytes to a power of two, and a
# larger one to whole 4 KB pages.
#
# With BENCH_BASE_MODULE=FILE (a build from before authorization at the
# edge, e.g. of 1c2861c~3) the same is measured with that build, for the
# same sessions, and the last column is what the blob costs.  The
# module's locations require a factor (stytch_tat_require_factor), so
# that the zone keeps the sessions' roles; no stytch_tat_rbac_policy is
# configured: the policy is one document per zone, not per session.
#
# Environment: BENCH_IDENTITIES (1000), BENCH_ZONE_SIZE (16m),
# BENCH_COUNTS ("0 2 8"), BENCH_ROLES (eight comma-separated role ids),
# BENCH_PORT (18580, 18581, and those + 10 for the upstreams),
# BENCH_MODULE, BENCH_BASE_MODULE, BENCH_DEBUG=1 to keep the work
# directory.  Result: bench/results/authz-zone.txt.
set -eu
. "$(dirname "$0")/lib.sh"
bench_init authz-zone
n=${BENCH_IDENTITIES:-1000}
zsize=${BENCH_ZONE_SIZE:-16m}
port=${BENCH_PORT:-18580}
counts=${BENCH_COUNTS:-0 2 8}
roles=${BENCH_ROLES:-admin,editor,reader,writer,auditor,developer,billing-viewer,support-agent}
header=${BENCH_NODE_HEADER:-176}
module=${BENCH_MODULE:-$root/build/ngx_http_stytch_tat_module.so}
base=${BENCH_BASE_MODULE:-}
conns=${BENCH_CONNECTIONS:-32}

bench_need wrk nginx node taskset
bench_keys
bench_emulator_deps

IFS=, read -r -a role_list <<< "$roles"
for c in $counts; do
    [ "$c" -le "${#role_list[@]}" ] \
        || { echo "BENCH_COUNTS: $c is more than the roles of BENCH_ROLES" >&2; exit 1; }
done

# the first N roles of BENCH_ROLES, comma-separated
assigned() { (IFS=,; echo "${role_list[*]:0:$1}"); }

# the emulator: the example configuration, its profile trusting the JWKS
# of the instance being filled, every role of BENCH_ROLES a role of the
# project's policy (reading documents)
emulator() {
    # $1: its directory, $2: the nginx port whose /jwks it trusts
    mkdir -p "$1"
    node -e '
        const fs = require("fs");
        const [file, jwks, roles] = process.argv.slice(1);
        const c = JSON.parse(fs.readFileSync(file, "utf8"));
        for (const p of c.profiles) p.jwks_url = jwks;
        const ids = roles.split(",");
        c.rbac_roles = [...new Set([...c.rbac_roles, ...ids])];
        const known = new Set(c.rbac_policy.roles.map((r) => r.role_id));
        for (const id of ids) {
            if (!known.has(id)) {
                c.rbac_policy.roles.push({ role_id: id, description: "",
                    permissions: [{ resource_id: "documents", actions: ["read"] }] });
            }
        }
        process.stdout.write(JSON.stringify(c, null, 2));
    ' "$root/t/emulator/config.example.json" "http://127.0.0.1:$2/jwks" \
        "$roles" > "$1/config.json"
    bench_emulator_start "$1" "$1/config.json" 0
    bench_ready_port "$1" listen_port
}

conf() {
    # $1: module file, $2: port, $3: emulator port, $4: emulator dir,
    # $5: 1 when the build has authorization at the edge: a requirement
    # (a factor: no policy needed) makes the zone keep the sessions' roles
    local c
    cat <<EOC
load_module $1;
worker_processes 1;
worker_cpu_affinity 10;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
$(bench_conf_module roles-x 1m)
$(for c in $counts; do echo "    stytch_tat_zone zone=roles-$c:$zsize;"; done)
    upstream stytch_api { server 127.0.0.1:$3; keepalive 64; }
    server {
        listen 127.0.0.1:$(($2 + 10));
        location / {
            return 200 "\$http_x_stytch_session_jwt \$http_x_stytch_user_id \$http_x_stytch_session_id \$http_x_token";
        }
    }
    server {
        listen 127.0.0.1:$2;
        location = /jwks { stytch_tat_jwks; }
        location = /status { stytch_tat_status; }
$(bench_conf_attest "$4/ca.pem")
$(for c in $counts; do cat <<EOL
        location /roles-$c {
            stytch_tat /_stytch_attest;
            stytch_tat_cache roles-$c;
            stytch_tat_email roles-$c-\$http_x_email;
            stytch_tat_subject roles-$c-\$http_x_user;
            $( [ "$c" = 0 ] || echo "stytch_tat_claim assignments \"$(assigned "$c")\" list=,;" )
            $( [ "$5" = 1 ] && echo "stytch_tat_require_factor trusted_auth_token;" )
            proxy_set_header X-Token \$stytch_session_token;
            proxy_pass http://127.0.0.1:$(($2 + 10));
        }
EOL
done)
    }
}
EOC
}

# zone Z of the instance on port P: "size free entries"
zone() {
    curl -s "http://127.0.0.1:$1/status" | node -e '
        let s = ""; process.stdin.on("data", (d) => s += d).on("end", () => {
            const z = JSON.parse(s).zones[process.argv[1]];
            console.log(z.size, z.free, z.entries);
        });' "$2"
}

# every identity of the zone cached: wrk until it holds them all, as long
# as each run adds some
fill() {
    # $1: port, $2: zone (and location)
    local e=0 last=-1
    while [ "$e" -gt "$last" ]; do
        last=$e
        IDENTITIES=$n bench_wrk "http://127.0.0.1:$1/$2" 3
        bench_wrk_warn "$1"
        set -- "$1" "$2" $(zone "$1" "$2")
        e=$5
        [ "$e" -ge "$n" ] && return 0
    done
    echo "filling $2 on port $1 stopped at $e of $n entries" >&2
    exit 1
}

# a session's sizes, from "JWT USER_ID SESSION_ID TOKEN" on stdin:
# "roles jwt_bytes fields_bytes blob_bytes"
sizes() {
    node -e '
        let s = ""; process.stdin.on("data", (d) => s += d).on("end", () => {
            const [jwt, uid, sid, tok] = s.trim().split(" ");
            const claims = JSON.parse(Buffer.from(jwt.split(".")[1], "base64url"));
            const sess = claims["https://stytch.com/session"] || {};
            const org = claims["https://stytch.com/organization"];
            const roles = [...new Set(sess.roles || [])];
            const factors = new Map();
            for (const f of sess.authentication_factors || []) {
                factors.set(f.type + "\0" + (f.delivery_method || ""), f);
            }
            let blob = 4;
            for (const r of roles) blob += 1 + Buffer.byteLength(r);
            if (org && typeof org.organization_id === "string") blob += 1 + Buffer.byteLength(org.organization_id);
            if (org && typeof org.slug === "string") blob += 1 + Buffer.byteLength(org.slug);
            for (const f of factors.values()) {
                blob += 8 + 1 + Buffer.byteLength(f.type) + 1 + Buffer.byteLength(f.delivery_method || "");
            }
            const fields = [jwt, uid, sid, tok].reduce((a, f) => a + Buffer.byteLength(f || ""), 0);
            console.log(roles.length, jwt.length, fields, blob);
        });'
}

declare -A per grow nroles jwt node
measure() {
    # $1: name (module, base), $2: module file, $3: port
    local name=$1 d=$work/$1 e c size free entries free0="" nr jl fl bl
    mkdir -p "$d/logs" "$d/conf"
    e=$(emulator "$work/emu-$name" "$3")
    conf "$2" "$3" "$e" "$work/emu-$name" "$([ "$1" = module ] && echo 1 || echo 0)" \
        > "$d/conf/nginx.conf"
    bench_nginx_start "$d"
    for c in $counts; do
        fill "$3" "roles-$c"
        read -r size free entries < <(zone "$3" "roles-$c")
        per[$name/$c]=$(awk -v s="$size" -v f="$free" -v n="$entries" \
                            'BEGIN { printf "%.0f", (s - f) / n }')
        [ -n "$free0" ] || free0=$free
        grow[$name/$c]=$(awk -v a="$free0" -v b="$free" -v n="$entries" \
                             'BEGIN { printf "%+.0f", (a - b) / n }')
        # what one of its sessions holds (user0, cached: no new entry)
        read -r nr jl fl bl < <(bench_as 0 "http://127.0.0.1:$3/roles-$c" | sizes)
        nroles[$c]=$nr
        jwt[$name/$c]=$jl
        node[$name/$c]=$((header + fl + $( [ "$name" = module ] && echo "$bl" || echo 0 )))
        echo "  $name roles-$c: $entries entries, ${per[$name/$c]} bytes per session, ${grow[$name/$c]} over roles-${counts%% *}; node ${node[$name/$c]} bytes (JWT $jl, blob $bl), $nr roles"
    done
    bench_quit "$d"
}

bench_banner
measure module "$module" "$port"
[ -z "$base" ] || measure base "$base" $((port + 1))

first=${counts%% *}
{
    echo "date: $(bench_date)  machine: $(nproc) cores, $(bench_cpu_model); $(bench_git)"
    echo "$n identities per zone ($zsize), slab rounding included; BENCH_ROLES=$roles"
    echo
    if [ -n "$base" ]; then
        echo "| assigned roles | roles in the session | session JWT bytes | node bytes | bytes/session | over $first | base build: node bytes | bytes/session | over $first | module - base |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    else
        echo "| assigned roles | roles in the session | session JWT bytes | node bytes | bytes/session | over $first |"
        echo "|---:|---:|---:|---:|---:|---:|"
    fi
    sum=0
    for c in $counts; do
        line="| $c | ${nroles[$c]} | ${jwt[module/$c]} | ${node[module/$c]} | ${per[module/$c]} | ${grow[module/$c]}"
        if [ -n "$base" ]; then
            dd=$(( ${per[module/$c]} - ${per[base/$c]} ))
            sum=$((sum + dd))
            line="$line | ${node[base/$c]} | ${per[base/$c]} | ${grow[base/$c]} | $(printf '%+d' "$dd")"
        fi
        echo "$line |"
    done
    if [ -n "$base" ]; then
        echo
        echo "module - base, averaged over the counts measured ($counts): $(awk -v s="$sum" -v k="$(wc -w <<< "$counts")" 'BEGIN { printf "%+.0f", s / k }') bytes per session (target: at most +256)"
    fi
} | tee "$out/authz-zone.txt"
