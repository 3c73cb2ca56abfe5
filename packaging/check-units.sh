#!/bin/bash
# check-units.sh: offline checks of recrypt-milter's systemd unit and
# AppArmor profile.
#
#   packaging/recrypt-milter.service        systemd-analyze verify, security
#   policy/apparmor/usr.sbin.recrypt-milter apparmor_parser (compile only)
#
# Runs from any directory. Needs no running systemd and no AppArmor in the
# kernel: nothing is loaded, enabled or started. The only change it may
# make to the system: as root, it installs the Debian packages systemd
# (for systemd-analyze) and apparmor (for apparmor_parser) when their
# commands are missing. (On a kernel with AppArmor enabled, installing the
# apparmor package loads the profiles Debian ships, as any install does;
# there the package is normally installed already.)
#
# Exit 0 when both pass; 1 on any failure or any warning not explained
# below. Environment: RECRYPT_MILTER, the binary to point the unit's copy
# at (default <repo>/build/src/milter/recrypt-milter; a stub when absent).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UNIT=$ROOT/packaging/recrypt-milter.service
PROFILE=$ROOT/policy/apparmor/usr.sbin.recrypt-milter
MANPAGE=$ROOT/docs/man/recrypt-milter.8
# Overall exposure of `systemd-analyze security`, times 10: fail above 2.0.
EXPOSURE_MAX=20
# Capabilities the profile may grant (only used when started as root).
PROFILE_CAPS="dac_read_search setgid setuid"

export PATH=$PATH:/usr/sbin:/sbin
fails=0
passes=0
pass() { passes=$((passes + 1)); echo "ok - $*"; }
failed() { fails=$((fails + 1)); echo "FAIL - $*"; }
indent() { sed 's/^/    | /'; }

T=$(mktemp -d "${TMPDIR:-/tmp}/recrypt-check-units.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

# ---- tools ----------------------------------------------------------------
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v apparmor_parser >/dev/null || need+=(apparmor)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "FAIL - missing packages: ${need[*]} (run as root to install them, or apt-get install them)"
    echo "0 passed, 1 failed"
    exit 1
  fi
  echo "# installing ${need[*]} (no service is started by this script)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$T/apt.log" 2>&1; then
    indent <"$T/apt.log"
    echo "FAIL - apt-get install ${need[*]}"
    echo "0 passed, 1 failed"
    exit 1
  fi
fi
echo "# $(systemd-analyze --version | head -n1)"
echo "# $(apparmor_parser --version | head -n1)"

# ---- systemd unit -----------------------------------------------------------
# verify checks every Exec*= path; /usr/sbin/recrypt-milter does not exist
# before the package is installed, so a copy of the unit points at the
# built binary (the only change: that path).
bin=${RECRYPT_MILTER:-$ROOT/build/src/milter/recrypt-milter}
if [ -x "$bin" ]; then
  bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
  echo "# unit: ExecStart/ExecStartPre pointed at the built binary $bin"
else
  bin=$T/stub/recrypt-milter
  mkdir -p "$T/stub" && printf '#!/bin/sh\nexit 0\n' >"$bin" && chmod 755 "$bin"
  echo "# unit: no built binary (build first for the real one): pointed at a stub"
fi
mkdir -p "$T/unit"
sed "s#/usr/sbin/recrypt-milter#$bin#g" "$UNIT" >"$T/unit/recrypt-milter.service"

# Documentation=man:recrypt-milter(8) is checked with man(1) against the
# page in docs/man (not installed yet); without man(1), not checked.
man_opt=--man=no
if command -v man >/dev/null; then
  mkdir -p "$T/man/man8" && cp "$MANPAGE" "$T/man/man8/"
  man_opt=--man=yes
else
  echo "# man(1) is not installed: Documentation= not checked"
fi
if MANPATH=$T/man systemd-analyze verify "$man_opt" "$T/unit/recrypt-milter.service" \
     >"$T/verify.out" 2>&1 && [ ! -s "$T/verify.out" ]; then
  pass "systemd-analyze verify $man_opt packaging/recrypt-milter.service: no message"
else
  indent <"$T/verify.out"
  failed "systemd-analyze verify packaging/recrypt-milter.service"
fi

if systemd-analyze security --offline=true --threshold=$EXPOSURE_MAX \
     "$T/unit/recrypt-milter.service" >"$T/security.out" 2>&1; then
  pass "systemd-analyze security: $(grep -o 'Overall exposure level.*' "$T/security.out") (limit $((EXPOSURE_MAX / 10)).$((EXPOSURE_MAX % 10)))"
else
  grep -E '✗|Overall' "$T/security.out" | indent
  failed "systemd-analyze security: exposure above $((EXPOSURE_MAX / 10)).$((EXPOSURE_MAX % 10))"
fi

# ---- AppArmor profile -------------------------------------------------------
# -Q: compile, never load; -T -K: no cache. Compiled against Debian's
# policy feature set, so that the result does not depend on this kernel
# (without it, a kernel without AppArmor adds "Cache read/write disabled:
# interface file missing", which is accepted then, and only that).
feat=()
FEATURES=/usr/share/apparmor-features/features
[ -f "$FEATURES" ] && feat=(--kernel-features "$FEATURES")
[ ${#feat[@]} -gt 0 ] && echo "# profile: compiled against ${feat[1]}"
aa() { apparmor_parser -Q -T -K "${feat[@]}" "$@" "$PROFILE"; }

if aa >"$T/aa.out" 2>&1; then
  if grep -v -x 'Cache read/write disabled: interface file missing. (Kernel needs AppArmor 2.4 compatibility patch.)' \
       "$T/aa.out" | grep -q .; then
    indent <"$T/aa.out"
    failed "apparmor_parser -Q: unexpected messages"
  else
    pass "apparmor_parser -Q policy/apparmor/usr.sbin.recrypt-milter: compiles, no warning"
  fi
else
  indent <"$T/aa.out"
  failed "apparmor_parser -Q policy/apparmor/usr.sbin.recrypt-milter"
fi

# Every warning the parser has: only two are expected, both from kernels'
# feature sets, not from mistakes in the profile:
#  * "downgrading extended network unix socket rule to generic network
#    rule": the unix (...) rules need a kernel with fine-grained unix
#    mediation (Ubuntu's); elsewhere the network unix rules apply;
#  * "dbus rules not enforced": abstractions/nameservice carries dbus rules
#    (systemd-resolved), which need a dbus daemon that mediates.
aa --warn=all >"$T/aa-warn.out" 2>&1
grep -v -e '^$' -e 'downgrading extended network unix socket rule to generic network rule' \
     -e 'dbus rules not enforced' \
     -e '^Cache read/write disabled: interface file missing' "$T/aa-warn.out" >"$T/aa-warn.rest"
if [ -s "$T/aa-warn.rest" ]; then
  indent <"$T/aa-warn.rest"
  failed "apparmor_parser --warn=all: unexplained warnings"
else
  pass "apparmor_parser --warn=all: only the expected feature-set warnings ($(grep -c . "$T/aa-warn.out") lines: unix rule downgrade, dbus not enforced)"
fi

# The capabilities the compiled profile grants, abstractions included.
aa -d >"$T/aa-debug.out" 2>&1
caps=$(sed -n 's/^Capabilities:[[:space:]]*//p' "$T/aa-debug.out" | head -n1)
deny=$(sed -n 's/^Deny Caps:[[:space:]]*//p' "$T/aa-debug.out" | head -n1)
granted=$(for c in $caps; do case " $deny " in *" $c "*) ;; *) echo "$c" ;; esac; done | sort | xargs)
if [ "$granted" = "$PROFILE_CAPS" ]; then
  pass "profile capabilities: $granted (denied: ${deny:-none})"
else
  failed "profile capabilities: '$granted', expected '$PROFILE_CAPS'"
fi

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
