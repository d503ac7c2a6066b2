#!/bin/sh
# check_install.sh - `make install` (into a temporary DESTDIR) puts the binary,
# both manual pages, the README, the example config and the systemd unit in
# place; the pages format without a warning (groff -ww, man -l); the unit
# passes `systemd-analyze verify` (on a copy whose ExecStart names the
# installed binary, with MANPATH on the installed pages for Documentation=);
# a config already in place survives a new install and an uninstall, which
# removes everything else. Run by `make check` from the build directory (TAP).
top_builddir=$(pwd)
[ -f "$top_builddir/Makefile" ] || { echo "Bail out! run from the build directory"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ssebroker-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/root
# The inner make must not join make check's jobserver.
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$top_builddir" "$@"; }

n=0
fail=0
ok() { # status, description[, detail shown on failure]
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        [ -z "$3" ] || printf '%s\n' "$3" | sed 's/^/# /'
        fail=1
    fi
}
one() { # pattern under $dest -> the one file found, or empty
    find "$dest" -type f -path "$dest$1" | head -n 1
}

out=$(mk install DESTDIR="$dest" 2>&1)
ok $? "make install DESTDIR=..." "$out"

bin=$(one '*/bin/ssebroker')
man1=$(one '*/man1/ssebroker.1')
man5=$(one '*/man5/ssebroker.json.5')
unit=$(one '*/systemd/system/ssebroker.service')
conf=$(one '*/etc/ssebroker/ssebroker.json')
example=$(one '*/doc/ssebroker/examples/ssebroker.json')
readme=$(one '*/doc/ssebroker/README.md')
modhdr=$(one '*/include/ssebroker/module.h')
counter=$(one '*/lib/ssebroker/modules/counter.so')
webhook=$(one '*/lib/ssebroker/modules/webhook.so')
for f in bin man1 man5 unit conf example readme modhdr counter webhook; do
    eval "p=\$$f"
    [ -n "$p" ]
    ok $? "installed: $f${p:+ (${p#"$dest"})}" "$(cd "$dest" && find . -type f)"
done
[ -n "$bin" ] && [ -x "$bin" ] && "$bin" --version | grep -q '^ssebroker [0-9]'
ok $? "the installed binary runs (--version)"

# Manual pages: no groff warning at all (-ww), and man renders them.
for page in "$man1" "$man5"; do
    [ -n "$page" ] || { ok 1 "manual page missing"; continue; }
    name=$(basename "$page")
    warn=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" 2>&1)
    [ $? -eq 0 ] && [ -z "$warn" ]
    ok $? "groff -man -ww: $name formats without a warning" "$warn"
    text=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>"$tmp/man.err")
    [ -z "$(cat "$tmp/man.err")" ] && printf '%s' "$text" | grep -q '^NAME'
    ok $? "man -l $name" "$(cat "$tmp/man.err")"
    printf '%s' "$text" | grep -q '@[a-zA-Z]*@'
    [ $? -ne 0 ]
    ok $? "$name: every @variable@ substituted"
done
if [ -n "$man1" ]; then
    for section in SYNOPSIS OPTIONS SIGNALS ENVIRONMENT FILES 'EXIT STATUS'; do
        grep -q "^\.SH \"*$section" "$man1"
        ok $? "ssebroker(1) has $section"
    done
    # Every long option of --help is in the page.
    missing=""
    for o in $("$bin" --help | grep -o -- '--[a-z]*' | sort -u); do
        grep -q -- "$(printf '%s' "$o" | sed 's/-/\\\\-/g')" "$man1" || missing="$missing $o"
    done
    [ -z "$missing" ]
    ok $? "ssebroker(1) names every option of --help" "missing:$missing"
fi
if [ -n "$man5" ]; then
    # Every key src/config.c and src/config_auth.c accept is in the page.
    srcdir=${TEST_SRCDIR:-$(dirname "$0")}/..
    missing=""
    for k in $(sed -n 's/.*strcmp(key, "\([a-z_0-9]*\)").*/\1/p; s/^ *{"\([a-z_]*\)", [0-9A-Z_]*,.*/\1/p' \
        "$srcdir/src/config.c" "$srcdir/src/config_auth.c" | sort -u); do
        grep -q "$k" "$man5" || missing="$missing $k"
    done
    [ -z "$missing" ]
    ok $? "ssebroker.json(5) names every config key of src/config.c and src/config_auth.c" \
        "missing:$missing"
fi

# The unit, as installed: what it must say.
if [ -n "$unit" ]; then
    bindir_rel=$(dirname "${bin#"$dest"}")
    conf_rel=${conf#"$dest"}
    grep -qx "ExecStart=$bindir_rel/ssebroker --config $conf_rel" "$unit"
    ok $? "ExecStart names the installed binary and config ($bindir_rel, $conf_rel)" \
        "$(grep ExecStart "$unit")"
    for line in Type=notify NotifyAccess=main KillMode=mixed DynamicUser=yes \
        ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
        NoNewPrivileges=yes CapabilityBoundingSet= \
        'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
        SystemCallFilter=@system-service SystemCallArchitectures=native \
        MemoryDenyWriteExecute=yes LockPersonality=yes ProtectKernelTunables=yes \
        ProtectKernelModules=yes ProtectKernelLogs=yes ProtectControlGroups=yes \
        RestrictNamespaces=yes RestrictRealtime=yes; do
        grep -qx -- "$line" "$unit"
        ok $? "unit: $line"
    done
    nofile=$(sed -n 's/^LimitNOFILE=//p' "$unit")
    [ "${nofile:-0}" -ge 20000 ]
    ok $? "unit: LimitNOFILE=$nofile (at least 20000)"
    # A copy that runs the installed binary on the installed config.
    sed -e "s|^ExecStart=$bindir_rel/|ExecStart=$dest$bindir_rel/|" \
        -e "s| --config $conf_rel| --config $dest$conf_rel|" "$unit" >"$tmp/ssebroker.service"
    mandir=$(dirname "$(dirname "$man1")")
    out=$(MANPATH="$mandir" systemd-analyze verify "$tmp/ssebroker.service" 2>&1)
    [ $? -eq 0 ] && [ -z "$out" ]
    ok $? "systemd-analyze verify ssebroker.service: no error, no warning" "$out"
fi

# An edited config survives a new install and an uninstall; nothing else does.
if [ -n "$conf" ]; then
    echo '{"log_level": "warn"}' >"$conf"
    out=$(mk install DESTDIR="$dest" 2>&1)
    [ $? -eq 0 ] && grep -q warn "$conf"
    ok $? "make install again keeps the edited config" "$out"
    out=$(mk uninstall DESTDIR="$dest" 2>&1)
    left=$(cd "$dest" && find . -type f)
    [ "$left" = ".${conf#"$dest"}" ]
    ok $? "make uninstall removes every file but the edited config" "$out
left: $left"
fi

echo "1..$n"
exit $fail
