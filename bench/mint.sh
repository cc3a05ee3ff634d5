#!/bin/bash
# Mint throughput of the module's token code against "openssl speed".
#
#   bash bench/mint.sh [--breakdown]
#
# Builds bench/mint.c with the module's sources (-O2) into build/bench/,
# then, on one core (BENCH_CPU, default 0), for BENCH_SECONDS (default 3)
# each: the module's full mint per algorithm, and "openssl speed -elapsed"
# for rsa2048, ecdsap256 and ed25519 (one process).  bench/mint.c also
# times, in slices alternating with its mints, the same bare signature
# "openssl speed" times ("in-process"): that ratio is the one to trust on a
# busy machine, where two separate runs see different load.  With BENCH_ROUNDS=N
# (default 1) the two alternate N times per algorithm and the best of each
# is kept, which evens out other load on the machine.  Prints the table and
# writes it to bench/results/mint.txt.  A benchmark, not a test: it fails
# only when something does not build or run.

set -euo pipefail

. "$(dirname "$0")/lib.sh"
cd "$bench_root"

SECONDS_EACH=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-1}
CPU=${BENCH_CPU:-0}
CC=${CC:-cc}
BUILD=build/bench
OUT=bench/results/mint.txt
BREAKDOWN=

case "${1:-}" in
    --breakdown) BREAKDOWN=--breakdown ;;
    "") ;;
    *) echo "usage: bash bench/mint.sh [--breakdown]" >&2; exit 2 ;;
esac

if ! [[ $SECONDS_EACH =~ ^[0-9]+$ ]] || [ "$SECONDS_EACH" -lt 1 ]; then
    echo "mint.sh: BENCH_SECONDS must be a whole number of seconds" >&2
    exit 2
fi

if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || [ "$ROUNDS" -lt 1 ]; then
    echo "mint.sh: BENCH_ROUNDS must be a positive number" >&2
    exit 2
fi

mkdir -p "$BUILD" bench/results

# the module's sources are built as nginx builds them: -Wno-unused-parameter
$CC -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -Isrc \
    bench/mint.c src/ngx_http_stytch_tat_jose.c \
    src/ngx_http_stytch_tat_claims.c \
    -o "$BUILD/mint" -ljansson -lcrypto

pin=()
if command -v taskset > /dev/null 2>&1; then
    pin=(taskset -c "$CPU")
fi

# "openssl speed" prints "... sign verify sign/s verify/s" last
speed() {
    "${pin[@]}" openssl speed -seconds "$SECONDS_EACH" -elapsed "$1" \
        2> /dev/null | tail -1 | awk '{ print $(NF-1) }'
}

declare -A module openssl ref target
target[RS256]=90
target[ES256]=70
target[EdDSA]=70

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

max() {
    awk -v a="${1:-0}" -v b="$2" 'BEGIN { print (b + 0 > a + 0) ? b : a }'
}

for pair in RS256:rsa2048 ES256:ecdsap256 EdDSA:ed25519; do
    alg=${pair%%:*}
    test=${pair##*:}
    module[$alg]=0
    openssl[$alg]=0
    ref[$alg]=0

    for ((round = 1; round <= ROUNDS; round++)); do
        extra=
        if [ "$round" = 1 ]; then
            extra=$BREAKDOWN
        fi

        out=$("${pin[@]}" "$BUILD/mint" -s "$SECONDS_EACH" -a "$alg" $extra \
              | tee -a "$raw")
        m=$(awk '$1 == "mint" { print $3 }' <<< "$out")
        r=$(awk '$1 == "ref" { print $3 }' <<< "$out")
        o=$(speed "$test")

        if ! [[ $m =~ ^[0-9.]+$ && $r =~ ^[0-9.]+$ && $o =~ ^[0-9.]+$ ]]
        then
            echo "mint.sh: no figure from bench/mint.c or openssl speed $test" >&2
            exit 1
        fi

        # the best round; the in-process pair is kept together
        if awk -v m="$m" -v b="${module[$alg]}" 'BEGIN { exit !(m > b) }'
        then
            module[$alg]=$m
            ref[$alg]=$r
        fi
        openssl[$alg]=$(max "${openssl[$alg]}" "$o")
    done
done

{
    echo "# mint throughput, one core (cpu $CPU), ${SECONDS_EACH}s each, best of $ROUNDS round(s)"
    echo "# $(uname -m), $(nproc) cores, $(bench_cpu_model)"
    echo "# $(openssl version), jansson $(pkg-config --modversion jansson 2>/dev/null || echo '?'), $($CC --version | head -1)"
    echo "# $(bench_date), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    printf '%-6s %14s %16s %8s %7s %-7s %14s %10s\n' alg "module mints/s" \
        "openssl signs/s" "ratio %" target "" "in-process ref" "ratio %"
    for alg in RS256 ES256 EdDSA; do
        ratio=$(awk -v m="${module[$alg]}" -v o="${openssl[$alg]}" \
                'BEGIN { printf "%.1f", 100 * m / o }')
        inproc=$(awk -v m="${module[$alg]}" -v o="${ref[$alg]}" \
                 'BEGIN { printf "%.1f", 100 * m / o }')
        verdict=$(awk -v r="$ratio" -v t="${target[$alg]}" \
                  'BEGIN { print (r >= t) ? "met" : "MISSED" }')
        printf '%-6s %14.0f %16.0f %8s %6s%% %-7s %14.0f %10s\n' "$alg" \
            "${module[$alg]}" "${openssl[$alg]}" "$ratio" "${target[$alg]}" \
            "$verdict" "${ref[$alg]}" "$inproc"
    done

    if [ -n "$BREAKDOWN" ]; then
        echo
        echo "# breakdown: microseconds per operation (bench/README.md)"
        printf '%-6s %-12s %12s %10s\n' alg part "ops/s" "us/op"
        awk '$1 == "part" { printf "%-6s %-12s %12.0f %10.2f\n", $2, $3, $4, $5 }' \
            "$raw"
    fi
} | tee "$OUT"
