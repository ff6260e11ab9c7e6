#!/usr/bin/env bash
# Installs the system packages some tests need (Icarus Verilog; Chromium, ripgrep, Kerberos headers and a
# compiler for the VS Code end-to-end test; PostgreSQL for the gateway's storage tests). Never fails the build: tests that need a missing tool skip with the reason.
set -u
need=()
command -v iverilog >/dev/null 2>&1 || need+=(iverilog)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v rg >/dev/null 2>&1 || need+=(ripgrep)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# code-server's native modules (VS Code end-to-end test) compile against these.
[ -e /usr/include/krb5.h ] || need+=(libkrb5-dev)
command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || need+=(build-essential)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "system-deps: not root, cannot install ${need[*]}; the tests that need them will skip" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo -n"
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
( $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" ) >/tmp/inhouse-apt.log 2>&1 \
  || echo "system-deps: apt-get failed (see /tmp/inhouse-apt.log); the tests that need ${need[*]} will skip" >&2
exit 0
