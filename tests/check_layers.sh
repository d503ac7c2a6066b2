#!/bin/sh
# check_layers.sh - the tree's shape, checked on every `make check` (TAP).
#
# Layers, bottom first (docs/ARCHITECTURE.md); a file may include its own
# layer and the ones this table lets it:
#   src/base    basics        libc, libevent
#   kv          storage       basics
#   src/domain  domain model  basics
#   src/auth    access        basics, domain (beside kv and repo: neither
#                             includes it, it includes neither)
#   repo        repositories  basics, kv, domain
#   src/broker  broker        basics, kv, domain, auth, repo
#   src/module  modules       basics, kv, domain, auth, repo, broker
#   src/http    HTTP          basics, kv, domain, auth, repo, broker, modules
#   src/*       main          everything
# Also: every quoted include names its folder from the top of the tree; a
# *_private.h is included only from its own folder; and no file outside the
# headers that define the inline wrappers reaches through an ops table
# (->ops->). The linker enforces calls (each layer is its own library); this
# enforces what a header can drag in without a call.
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

layer_of() { # path -> layer number (auth: a, beside 1 and 3), or empty outside the layers
    case $1 in
    src/base/*) echo 0 ;;
    kv/*) echo 1 ;;
    src/domain/*) echo 2 ;;
    src/auth/*) echo a ;;
    repo/*) echo 3 ;;
    src/broker/*) echo 4 ;;
    src/module/*) echo 5 ;;
    src/http/*) echo 6 ;;
    src/*/*) echo ;;
    src/*) echo 7 ;;
    *) echo ;;
    esac
}

# may FROM include TO? (layer numbers)
allowed() {
    [ "$1" = "$2" ] && return 0
    case "$1:$2" in
    1:0 | 2:0 | 3:0 | 3:1 | 3:2) return 0 ;;
    4:[0-3] | 5:[0-4] | 6:[0-5] | 7:[0-6]) return 0 ;;
    a:0 | a:2 | [4-7]:a) return 0 ;;
    esac
    return 1
}

n=0
fail=0
ok() { # status, description
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        fail=1
    fi
}

files=$(find src kv repo tests bench examples include -name '*.[ch]' -not -path '*/node_modules/*' | sort)
[ -n "$files" ] || { echo "Bail out! no sources under $top"; exit 1; }

bad_folder=""
bad_layer=""
bad_private=""
for f in $files; do
    from=$(layer_of "$f")
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        case $inc in
        src/* | kv/* | repo/* | tests/* | examples/*) ;;
        *) bad_folder="$bad_folder $f:$inc" ;;
        esac
        case $inc in
        *_private.h)
            [ "$(dirname "$inc")" = "$(dirname "$f")" ] || bad_private="$bad_private $f:$inc" ;;
        esac
        [ -n "$from" ] || continue
        to=$(layer_of "$inc")
        [ -n "$to" ] || continue
        allowed "$from" "$to" || bad_layer="$bad_layer $f:$inc"
    done
done
ok "$([ -z "$bad_folder" ]; echo $?)" "every quoted include names its folder${bad_folder:+:$bad_folder}"
ok "$([ -z "$bad_layer" ]; echo $?)" "no include runs up the layers${bad_layer:+:$bad_layer}"
ok "$([ -z "$bad_private" ]; echo $?)" "private headers stay in their folder${bad_private:+:$bad_private}"

# ->ops-> only where the wrappers are defined.
reach=$(grep -ln -- '->ops->' $files | grep -v -x -e kv/kv.h -e repo/repo.h -e src/broker/sink.h)
ok "$([ -z "$reach" ]; echo $?)" "no ->ops-> outside the wrapper headers${reach:+: $(echo $reach)}"

# The storage and access layers report, they do not log.
logs=$(grep -ln 'src/base/log.h' kv/*.[ch] repo/*.[ch] src/auth/*.[ch] 2>/dev/null)
ok "$([ -z "$logs" ]; echo $?)" "kv/, repo/ and src/auth/ do not log${logs:+: $(echo $logs)}"

# Every source file says what it is for in its first line.
nohead=""
for f in $files; do
    head -n 1 "$f" | grep -q '^/\* [A-Za-z0-9_.]* - ' || nohead="$nohead $f"
done
ok "$([ -z "$nohead" ]; echo $?)" "every file starts with a line saying what it is for${nohead:+:$nohead}"

echo "1..$n"
exit $fail
