#!/bin/sh
# packaging/build-deb.sh: build the Debian package of recrypt with CPack's
# DEB generator, check it with lintian, then (as root) install it, run the
# installed binaries (and the Postfix end-to-end test,
# tests/integration/test_postfix.sh, against them), remove and purge it,
# and check what is left.
#
#   packaging/build-deb.sh              build, lintian, install/remove/purge check
#   packaging/build-deb.sh --no-install build and lintian only (no root needed
#                                       when lintian is installed)
#   --install-tools                     (either mode) apt-get install lintian
#                                       when it is missing, instead of failing
#
# Each step prints a line with the time since the start when it begins, and
# the long ones (the build, the Postfix test) print their progress.
#
# Exit status: 0 all good; 1 a step or a check failed (lintian errors too).
# Lintian warnings are printed and do not fail; packaging/README.md
# ("The Debian package") explains the ones expected.
# The install check refuses to run when the package, the user recrypt or
# /var/lib/recrypt already exist (it would purge a real store), and it never
# leaves the package installed.
set -eu
START=$(date +%s)

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=build-deb
INSTALL_CHECK=yes
INSTALL_TOOLS=no
for a in "$@"; do
    case "$a" in
    --no-install) INSTALL_CHECK=no ;;
    --install-tools) INSTALL_TOOLS=yes ;;
    *) echo "usage: $0 [--no-install] [--install-tools]" >&2; exit 64 ;;
    esac
done

say() { printf '%s\n' "$*"; }
# step TEXT: a progress line, "# [m:ss] TEXT".
step() { t=$(($(date +%s) - START)); printf '# [%d:%02d] %s\n' $((t / 60)) $((t % 60)) "$*"; }
FAILS=0
ok()   { say "ok - $*"; }
bad()  { say "not ok - $*"; FAILS=$((FAILS + 1)); }
check() { # check DESCRIPTION COMMAND...
    d=$1; shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}

# ---- build ---------------------------------------------------------------
step "configure ($BUILD, Release, prefix /usr)"
# Debian's hardening and optimisation flags (-fstack-protector-strong,
# -Wl,-z,relro, ...): CMake reads CFLAGS and LDFLAGS from the environment.
# -z now too (bindnow), as debhelper's hardening=+all would.
CFLAGS=$(dpkg-buildflags --get CFLAGS)
LDFLAGS="$(dpkg-buildflags --get LDFLAGS) -Wl,-z,now"
export CFLAGS LDFLAGS
# Until the top-level CMakeLists.txt has `include(packaging/deb/cpack.cmake)`,
# pull it in with CMAKE_PROJECT_INCLUDE.
EXTRA=
if ! grep -q 'packaging/deb/cpack.cmake' CMakeLists.txt; then
    EXTRA="-DCMAKE_PROJECT_INCLUDE=$ROOT/packaging/deb/cpack.cmake"
    say "# CMakeLists.txt does not include packaging/deb/cpack.cmake: using CMAKE_PROJECT_INCLUDE"
fi
rm -f "$BUILD"/recrypt_*.deb
# shellcheck disable=SC2086
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
      -DRECRYPT_DEB=ON -DBUILD_TESTING=OFF $EXTRA >"$BUILD.configure.log" 2>&1 \
    || { cat "$BUILD.configure.log"; exit 1; }
mv "$BUILD.configure.log" "$BUILD/configure.log"
step "build ($(nproc) jobs; every 25% of the targets is shown)"
# Make prints "[ NN%]" per target: show 25, 50, 75 and 100; the second,
# quiet run (nothing left to do) gives the build's exit status.
cmake --build "$BUILD" -j "$(nproc)" 2>&1 | tee "$BUILD/build.log" |
    awk 'match($0, /\[ *[0-9]+%\]/) { p = substr($0, RSTART + 1, RLENGTH - 3) + 0
           if (p >= next_p) { printf "#   %d%%\n", p; fflush(); while (next_p <= p) next_p += 25 } }' next_p=25 \
    || true
if ! cmake --build "$BUILD" >>"$BUILD/build.log" 2>&1; then
    tail -50 "$BUILD/build.log"; exit 1
fi
step "cpack -G DEB"
(cd "$BUILD" && cpack -G DEB) >"$BUILD/cpack.log" 2>&1 \
    || { cat "$BUILD/cpack.log"; exit 1; }
DEB=$(ls "$BUILD"/recrypt_*.deb)
say "# package: $DEB"
dpkg-deb --field "$DEB" | sed 's/^/#   /'
say "# contents:"
dpkg-deb --contents "$DEB" | awk '{print "#   " $1, $2, $6}'

# ---- lintian -------------------------------------------------------------
if ! command -v lintian >/dev/null 2>&1; then
    if [ "$INSTALL_TOOLS" = yes ] && [ "$(id -u)" = 0 ]; then
        step "installing lintian (--install-tools)"
        apt-get install -y lintian >/dev/null
    else
        say "lintian is missing: apt-get install lintian (as root), or run with --install-tools"; exit 1
    fi
fi
step "lintian $(lintian --version | awk '{print $2}')"
LINTIAN_RC=0
lintian --display-info --fail-on error "$DEB" >"$BUILD/lintian.log" 2>&1 || LINTIAN_RC=$?
cat "$BUILD/lintian.log"
if [ "$LINTIAN_RC" -ne 0 ] || grep -q '^E: ' "$BUILD/lintian.log"; then
    bad "lintian: errors (status $LINTIAN_RC)"
else
    ok "lintian: no error ($(grep -c '^W: ' "$BUILD/lintian.log" || true) warnings, $(grep -c '^I: ' "$BUILD/lintian.log" || true) info)"
fi

if [ "$INSTALL_CHECK" = no ]; then
    say "# --no-install: install check skipped"
    [ "$FAILS" -eq 0 ] || exit 1
    exit 0
fi

# ---- install, run, remove, purge ---------------------------------------------
if [ "$(id -u)" != 0 ]; then
    say "the install check needs root (or use --no-install)"; exit 1
fi
if dpkg-query -W -f='${db:Status-Status}' recrypt 2>/dev/null | grep -qv not-installed \
   || getent passwd recrypt >/dev/null || getent group recrypt >/dev/null \
   || [ -e /var/lib/recrypt ] || [ -e /etc/recrypt ]; then
    say "refusing the install check: package recrypt, user/group recrypt, /var/lib/recrypt or /etc/recrypt already exist"
    exit 1
fi

INSTALLED=no
cleanup() {
    if [ "$INSTALLED" = yes ]; then
        say "# cleanup: purging the package"
        RECRYPT_PURGE_STORE=yes dpkg -P recrypt >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

STAMP=$(mktemp)
sleep 1
status() { dpkg-query -W -f='${db:Status-Abbrev}' recrypt 2>/dev/null | tr -d ' ' || true; }
mode_owner() { stat -c '%a %U:%G' "$1"; }
user_is_system() { uid=$(getent passwd recrypt | cut -d: -f3); [ -n "$uid" ] && [ "$uid" -lt 1000 ]; }
all_gone() {
    rc=0
    for p in /usr/bin/recrypt /usr/bin/recryptctl /usr/sbin/recrypt-milter /usr/sbin/recrypt-fanout \
             /usr/share/man/man1/recrypt.1.gz /usr/share/man/man1/recryptctl.1.gz \
             /usr/share/man/man8/recrypt-milter.8.gz /usr/share/man/man8/recrypt-fanout.8.gz \
             /usr/share/doc/recrypt /usr/share/recrypt \
             /usr/lib/recrypt /usr/lib/mozilla/native-messaging-hosts/recrypt.json \
             /lib/systemd/system/recrypt-milter.service \
             /etc/recrypt /etc/init.d/recrypt-milter /var/spool/postfix/recrypt \
             /etc/apparmor.d/usr.sbin.recrypt-milter \
             /etc/apparmor.d/local/usr.sbin.recrypt-milter \
             /etc/systemd/system/recrypt-milter.service /var/lib/recrypt; do
        if [ -e "$p" ] || [ -L "$p" ]; then say "#   left: $p"; rc=1; fi
    done
    for f in /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked; do
        if [ -d "$f" ] && find "$f" -name '*recrypt*' | grep -q .; then
            say "#   left: systemd state under $f"; rc=1
        fi
    done
    if ls /etc/rc?.d/*recrypt* >/dev/null 2>&1; then say "#   left: /etc/rc?.d links"; rc=1; fi
    if getent passwd recrypt >/dev/null; then say "#   left: user recrypt"; rc=1; fi
    if getent group recrypt >/dev/null; then say "#   left: group recrypt"; rc=1; fi
    return $rc
}

step "1. dpkg -i"
T0=$(date +%s)
dpkg -i "$DEB" >"$BUILD/dpkg-i.log" 2>&1 || { cat "$BUILD/dpkg-i.log"; bad "dpkg -i"; exit 1; }
INSTALLED=yes
ok "dpkg -i $(basename "$DEB") (status $(status))"
check "user recrypt is a system user ($(getent passwd recrypt))" user_is_system
check "group recrypt exists" sh -c "getent group recrypt >/dev/null"
check "/var/lib/recrypt is 750 recrypt:recrypt ($(mode_owner /var/lib/recrypt))" \
      test "$(mode_owner /var/lib/recrypt)" = "750 recrypt:recrypt"
check "conffiles: $(dpkg-query -W -f='${Conffiles}' recrypt | awk 'NF{printf "%s ", $1}')" \
      sh -c "dpkg-query -W -f='\${Conffiles}' recrypt | grep -q ' /etc/recrypt/recrypt-milter.conf '"
check "AppArmor local include created" test -f /etc/apparmor.d/local/usr.sbin.recrypt-milter
check "init script /etc/init.d/recrypt-milter installed, a conffile" \
    sh -c "test -x /etc/init.d/recrypt-milter && dpkg-query -W -f='\${Conffiles}' recrypt | grep -q ' /etc/init.d/recrypt-milter '"
check "the guides in /usr/share/doc/recrypt (admin, owner, subscriber, FORMAT)" \
    sh -c 'for f in admin-guide owner-guide subscriber-guide FORMAT; do test -s /usr/share/doc/recrypt/$f.md || exit 1; done'
if [ -d /var/spool/postfix ] && getent group postfix >/dev/null; then
    check "socket directory /var/spool/postfix/recrypt is 2750 recrypt:postfix ($(mode_owner /var/spool/postfix/recrypt 2>&1))" \
        test "$(mode_owner /var/spool/postfix/recrypt 2>&1)" = "2750 recrypt:postfix"
fi
check "mutt and neomutt set-up installed" \
    test -f /usr/share/recrypt/neomutt/recrypt.rc -a -f /usr/share/recrypt/mutt/recrypt.muttrc
check "Thunderbird add-on installed (/usr/share/recrypt/thunderbird/recrypt-thunderbird.xpi)" \
    test -s /usr/share/recrypt/thunderbird/recrypt-thunderbird.xpi
native_host_ok() { # the manifest's path is the link, and the link runs recrypt
    p=$(sed -n 's/.*"path": *"\([^"]*\)".*/\1/p' /usr/lib/mozilla/native-messaging-hosts/recrypt.json) &&
        [ "$p" = /usr/lib/recrypt/recrypt-native-host ] && [ "$(readlink -f "$p")" = /usr/bin/recrypt ]
}
check "native host registered for Thunderbird, its path runs recrypt" native_host_ok
for c in "recrypt --version" "recryptctl --version" "recrypt-milter -V" "recrypt-fanout -V"; do
    # shellcheck disable=SC2086
    if out=$($c 2>&1); then ok "$c: $out"; else bad "$c: $out"; fi
done
if out=$(recryptctl server init --db /var/lib/recrypt --user recrypt 2>&1); then
    ok "recryptctl server init --db /var/lib/recrypt --user recrypt"
    printf '%s\n' "$out" | sed 's/^/#   /'
else
    bad "recryptctl server init: $out"
fi
if out=$(recrypt-milter -n 2>&1); then ok "recrypt-milter -n (root, /etc/recrypt/recrypt-milter.conf)${out:+: $out}"
else bad "recrypt-milter -n: $out"; fi
if out=$(runuser -u recrypt -- /usr/sbin/recrypt-milter -n 2>&1); then ok "recrypt-milter -n as user recrypt (as the unit runs it)${out:+: $out}"
else bad "recrypt-milter -n as recrypt: $out"; fi

# The Postfix end-to-end test, run against the installed binaries: the
# package's recrypt, recryptctl and recrypt-milter (not the build tree's)
# behind a private Postfix on loopback. Guarded by a file-size limit and a
# timeout so that a runaway cannot fill the disk or hang CI.
if [ "${RECRYPT_DEB_SKIP_POSTFIX:-}" = yes ]; then
    say "# RECRYPT_DEB_SKIP_POSTFIX=yes: Postfix test against the installed binaries skipped"
elif ! command -v postfix >/dev/null 2>&1 && [ ! -x /usr/sbin/postfix ]; then
    bad "postfix is not installed (scripts/install-deps.sh): cannot test the installed binaries"
else
    step "Postfix end-to-end test against the installed binaries (its checks as they pass)"
    T1=$(date +%s)
    PF_RC=0
    ( ulimit -f 262144  # 256 MiB per file
      RECRYPT=/usr/bin/recrypt RECRYPTCTL=/usr/bin/recryptctl \
      RECRYPT_MILTER=/usr/sbin/recrypt-milter \
      exec timeout -k 10 600 bash "$ROOT/tests/integration/test_postfix.sh" ) \
        >"$BUILD/postfix-installed.log" 2>&1 </dev/null &
    PF_PID=$!
    # Progress: one line per 20 checks while it runs.
    seen=0
    while kill -0 "$PF_PID" 2>/dev/null; do
        sleep 5
        n=$(grep -c '^ok - ' "$BUILD/postfix-installed.log" 2>/dev/null || true)
        if [ "${n:-0}" -ge $((seen + 20)) ]; then seen=$n; say "#   $n checks passed"; fi
    done
    wait "$PF_PID" || PF_RC=$?
    sed 's/^/#   /' "$BUILD/postfix-installed.log" | tail -n 5
    summary=$(tail -n 1 "$BUILD/postfix-installed.log")
    if [ "$PF_RC" -eq 0 ] && grep -q '^ok - ' "$BUILD/postfix-installed.log"; then
        ok "Postfix end-to-end test with /usr/bin/recrypt, /usr/bin/recryptctl, /usr/sbin/recrypt-milter: $summary ($(($(date +%s) - T1)) s)"
    else
        grep -E '^(FAIL|not ok|skip)' "$BUILD/postfix-installed.log" | head -n 20 | sed 's/^/#   /'
        bad "Postfix end-to-end test against the installed binaries (exit $PF_RC): $summary"
    fi
fi

step "2. dpkg -r"
dpkg -r recrypt >"$BUILD/dpkg-r.log" 2>&1 || { cat "$BUILD/dpkg-r.log"; bad "dpkg -r"; }
check "status after remove: rc ($(status))" test "$(status)" = rc
check "binaries removed" sh -c '! test -e /usr/bin/recrypt && ! test -e /usr/bin/recryptctl && ! test -e /usr/sbin/recrypt-milter'
check "unit, man pages and doc removed" sh -c '! test -e /lib/systemd/system/recrypt-milter.service && ! test -e /usr/share/man/man8/recrypt-milter.8.gz && ! test -e /usr/share/doc/recrypt'
check "conffiles kept" sh -c 'test -f /etc/recrypt/recrypt-milter.conf && test -f /etc/apparmor.d/usr.sbin.recrypt-milter'
check "store and user kept" sh -c 'test -f /var/lib/recrypt/service.key && getent passwd recrypt >/dev/null'

step "3. dpkg -P (store present)"
dpkg -P recrypt >"$BUILD/dpkg-P.log" 2>&1 || { cat "$BUILD/dpkg-P.log"; bad "dpkg -P"; }
sed 's/^/#   /' "$BUILD/dpkg-P.log"
check "status after purge: not installed ($(status))" sh -c "! dpkg-query -W recrypt >/dev/null 2>&1 || test \"\$(dpkg-query -W -f='\${db:Status-Status}' recrypt)\" = not-installed"
check "conffiles, /etc/recrypt and AppArmor local file removed" sh -c '! test -e /etc/recrypt && ! test -e /etc/apparmor.d/usr.sbin.recrypt-milter && ! test -e /etc/apparmor.d/local/usr.sbin.recrypt-milter'
check "store (/var/lib/recrypt) and user recrypt kept on purge" sh -c 'test -f /var/lib/recrypt/service.key && getent passwd recrypt >/dev/null'
UID1=$(getent passwd recrypt | cut -d: -f3)

step "4. dpkg -i again: the kept user and store are reused"
dpkg -i "$DEB" >"$BUILD/dpkg-i2.log" 2>&1 || { cat "$BUILD/dpkg-i2.log"; bad "dpkg -i (again)"; exit 1; }
check "same uid ($UID1)" test "$(getent passwd recrypt | cut -d: -f3)" = "$UID1"
if out=$(runuser -u recrypt -- /usr/sbin/recrypt-milter -n 2>&1); then ok "recrypt-milter -n with the kept store${out:+: $out}"
else bad "recrypt-milter -n with the kept store: $out"; fi
dpkg -r recrypt >"$BUILD/dpkg-r2.log" 2>&1 || { cat "$BUILD/dpkg-r2.log"; bad "dpkg -r (again)"; }

step "5. RECRYPT_PURGE_STORE=yes dpkg -P"
RECRYPT_PURGE_STORE=yes dpkg -P recrypt >"$BUILD/dpkg-P2.log" 2>&1 || { cat "$BUILD/dpkg-P2.log"; bad "dpkg -P (store)"; }
INSTALLED=no
check "nothing of the package is left (files, systemd state, user, group)" all_gone
LEFT=$(find /etc /lib /usr /var /run /srv /opt -xdev -newer "$STAMP" -name '*recrypt*' \
       -not -path '/var/lib/dpkg/*' -not -path '/var/cache/apt/*' -not -path '/var/log/*' 2>/dev/null || true)
if [ -z "$LEFT" ]; then ok "no new path named *recrypt* under /etc /lib /usr /var /run /srv /opt"
else bad "new paths left:"; say "$LEFT" | sed 's/^/#   /'; fi
rm -f "$STAMP"
say "# install/remove/purge check: $(($(date +%s) - T0)) s"

say "# total: $(($(date +%s) - START)) s"
if [ "$FAILS" -ne 0 ]; then say "$FAILS check(s) failed"; exit 1; fi
say "all checks passed"
