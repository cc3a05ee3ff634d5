#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each on its seed corpus.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 30 seconds, every target
#
# Per target:
#   1. every seed of fuzz/corpus/TARGET is replayed on its own: a seed that
#      crashes is a regression (a bug found earlier that is back, or not
#      fixed yet);
#   2. the target fuzzes for SECONDS on a copy of the corpus (the seeds that
#      crashed left out), in a temporary directory: the run never grows the
#      repository.  New crashing inputs are kept in build/fuzz/crashes/TARGET/;
#      copy the ones you fixed into fuzz/corpus/TARGET/ as regression seeds.
#
# Prints one summary line per target; exits non-zero if anything crashed.
#
# Knobs: FUZZ_MAKE_ARGS (e.g. "EXTRA_CFLAGS=-DFUZZ_LENIENT_KEYS"),
# FUZZ_ARGS (more libFuzzer flags).
set -u
cd "$(dirname "$0")"
fuzz=$PWD
root=$(cd .. && pwd)
build=$root/build/fuzz

seconds=${1:-30}
shift 2>/dev/null || true
targets=${*:-fuzz_response fuzz_claims fuzz_keyload fuzz_jwks fuzz_verify fuzz_rbac}

case $seconds in
''|*[!0-9]*) echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

# shellcheck disable=SC2086
make -s -C "$fuzz" BUILD="$build" ${FUZZ_MAKE_ARGS:-} $targets >/dev/null \
    || { echo "fuzz/run.sh: build failed" >&2; exit 1; }

max_len() {
    case $1 in
    fuzz_response) echo 16384 ;;
    fuzz_claims)   echo 8192 ;;
    fuzz_keyload)  echo 8192 ;;
    fuzz_verify)   echo 12288 ;;
    fuzz_rbac)     echo 16384 ;;
    *)             echo 4096 ;;
    esac
}

dict() {
    case $1 in
    fuzz_response) echo "$fuzz/dict/response.dict" ;;
    fuzz_keyload)  echo "$fuzz/dict/keyload.dict" ;;
    fuzz_verify)   echo "$fuzz/dict/verify.dict" ;;
    fuzz_rbac)     echo "$fuzz/dict/rbac.dict" ;;
    esac
}

# the sanitizer's own line and the first frame in the module or a harness
crash_where() {
    local log=$1 summary frame
    summary=$(grep -m1 -E '^SUMMARY: |check failed:|runtime error:' "$log" \
              | sed 's/ (BuildId: [0-9a-f]*)//; s/^SUMMARY: //')
    frame=$(grep -m1 -E '#[0-9]+ 0x[0-9a-f]+ in ngx_http_stytch_tat_' "$log")
    [ -n "$frame" ] || frame=$(grep -m1 -E '#[0-9]+ 0x[0-9a-f]+ in LLVMFuzzerTestOneInput' "$log")
    frame=$(echo "$frame" | sed 's/.* in //; s/ (BuildId.*//; s|'"$root"'/fuzz/\.\./||; s|'"$root"'/||')
    echo "${summary:-unknown}${frame:+ @ $frame}"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# the interesting part of a report: the error line and its stack
show_report() {
    sed -n '/^==[0-9]*==ERROR\|check failed\|runtime error/,/^SUMMARY/p' "$1" \
        | grep -E '^(==|    #[0-9]+ |[^ ].*(failed|error))' \
        | grep -v -E 'in fuzzer::|in main |libc_start|in _start' \
        | sed 's/ (BuildId: [0-9a-f]*)//' | head -"${2:-14}"
}

status=0
summary=()
declare -A shown

for t in $targets; do
    bin=$build/$t
    work=$(mktemp -d "${TMPDIR:-/tmp}/$t.XXXXXX")
    mkdir -p "$work/corpus" "$work/artifacts"

    # 1. replay each seed

    seeds=0 bad=()
    for f in "$fuzz/corpus/$t"/*; do
        [ -f "$f" ] || continue
        seeds=$((seeds + 1))
        if "$bin" -runs=1 "$f" > "$work/replay.log" 2>&1; then
            cp "$f" "$work/corpus/"
        else
            bad+=("$(basename "$f")")
            where=$(crash_where "$work/replay.log")
            echo "== $t: seed $(basename "$f") crashes: $where"
            if [ -z "${shown[$where]:-}" ]; then
                shown[$where]=1
                show_report "$work/replay.log"
            fi
        fi
    done

    # 2. fuzz

    d=$(dict "$t")
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$seconds" -max_len="$(max_len "$t")" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" ${d:+-dict="$d"} ${FUZZ_ARGS:-} \
        "$work/corpus" > "$work/fuzz.log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))

    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/fuzz.log" | tail -1)
    new=$(ls "$work/artifacts" 2>/dev/null | wc -l)

    line=$(printf '%-14s %s  %d seeds' "$t" "$([ ${#bad[@]} -eq 0 ] && [ $rc -eq 0 ] && echo PASS || echo FAIL)" "$seeds")
    [ ${#bad[@]} -gt 0 ] && line="$line (${#bad[@]} crashing: ${bad[*]})"
    line="$line, ${runs:-?} runs in ${took}s, ${cov:-cov ?}"

    if [ $rc -ne 0 ]; then
        status=1
        if [ "$new" -gt 0 ]; then
            mkdir -p "$build/crashes/$t"
            cp "$work/artifacts/"* "$build/crashes/$t/"
            line="$line, NEW CRASH: $(crash_where "$work/fuzz.log") -> build/fuzz/crashes/$t/$(ls "$work/artifacts" | head -1)"
        else
            line="$line, fuzzer exited $rc (see below)"
        fi
        where=$(crash_where "$work/fuzz.log")
        echo "== $t: fuzzing stopped: $where"
        if [ -z "${shown[$where]:-}" ]; then
            shown[$where]=1
            show_report "$work/fuzz.log" 20
        fi
        [ "$new" -gt 0 ] || tail -20 "$work/fuzz.log"
    fi

    [ ${#bad[@]} -gt 0 ] && status=1
    summary+=("$line")
    rm -rf "$work"
done

echo
printf '%s\n' "${summary[@]}"
exit $status
