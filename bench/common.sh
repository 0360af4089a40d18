# Shell helpers both bench scripts source.

# The value of field $2 in a `key=value ...` result line $1; exits if it is missing.
value() {
    local found
    found=$(echo "$1" | sed -n "s/.* $2=\([0-9.]*\).*/\1/p")
    if [ -z "$found" ]; then
        echo "no $2 in: $1" >&2
        exit 1
    fi
    echo "$found"
}

# The median of the numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
