#!/usr/bin/env bash
# scripts/calls.sh: which of the module's C files call which (a function
# one file defines, called in another), one "caller callee" pair a line;
# then whether any two files call each other, or any longer circle
# exists (tsort).  Exits 1 on a circle.
#
#   bash scripts/calls.sh          the pairs, and the verdict
set -u
cd "$(dirname "$0")/.."

files="ngx_http_stytch_tat_module.c $(ls src/*.c)"
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT

for f in $files; do
    calls=$(grep -o "ngx_http_stytch_tat_[a-z0-9_]*(" "$f" | sed 's/($//' | sort -u)
    for g in $files; do
        [ "$f" = "$g" ] && continue
        defs=$(grep -o "^ngx_http_stytch_tat_[a-z0-9_]*(" "$g" | sed 's/($//' | sort -u)
        if [ -n "$(comm -12 <(echo "$calls") <(echo "$defs"))" ]; then
            echo "$(basename "$f" .c) $(basename "$g" .c)" | sed 's/ngx_http_stytch_tat_//g'
        fi
    done
done > "$edges"

cat "$edges"
status=0
while read -r a b; do
    if grep -qx "$b $a" "$edges"; then
        echo "circle: $a and $b call each other"
        status=1
    fi
done < "$edges"
if ! tsort "$edges" > /dev/null 2>&1; then
    echo "circle: tsort finds a loop"
    status=1
fi
[ $status = 0 ] && echo "no circle: $(wc -l < "$edges") calls between files, none both ways, no loop"
exit $status
