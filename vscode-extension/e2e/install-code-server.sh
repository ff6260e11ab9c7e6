#!/bin/bash
# Installs code-server 4.100.3 (the last release that runs on Node 20) from the npm registry into DEST,
# without reaching GitHub or Microsoft. Idempotent: a finished install (stamp file) returns at once.
# Usage: install-code-server.sh DEST [NPM_CACHE]
# Pitfalls (see docs/vscode.md): never `npm install -g` (npm 11 breaks its nested install); @vscode/ripgrep's
# postinstall downloads rg from GitHub, so its cache is seeded with Debian's rg; node-pty's postinstall runs npx
# (npm_config_yes); native builds use the system node headers (npm_config_nodedir); as root the postinstall needs
# npm_config_unsafe_perm.
set -euo pipefail
VERSION=4.100.3
DEST=${1:?usage: install-code-server.sh DEST [NPM_CACHE]}
CACHE=${2:-$DEST/.npm-cache}
STAMP=$DEST/.installed-$VERSION
if [ -f "$STAMP" ] && [ -x "$DEST/node_modules/.bin/code-server" ]; then exit 0; fi
command -v rg >/dev/null || { echo "install-code-server: ripgrep (rg) is missing: apt-get install ripgrep" >&2; exit 3; }
# Native modules (kerberos, node-pty) compile here: they need the krb5 headers and a C++ toolchain.
if [ ! -f /usr/include/gssapi/gssapi.h ] || ! command -v g++ >/dev/null || ! command -v make >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "install-code-server: installing libkrb5-dev build-essential (apt)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libkrb5-dev build-essential >/dev/null \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
           DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libkrb5-dev build-essential >/dev/null; }
  else
    echo "install-code-server: needs libkrb5-dev and build-essential (apt-get install libkrb5-dev build-essential)" >&2
    exit 3
  fi
fi
mkdir -p "$DEST/.tmp"
export TMPDIR=$DEST/.tmp
RG_CACHE=$TMPDIR/vscode-ripgrep-cache-1.15.11
mkdir -p "$RG_CACHE/rgpkg"
cp "$(command -v rg)" "$RG_CACHE/rgpkg/rg"
tar czf "$RG_CACHE/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$RG_CACHE/rgpkg" rg
cd "$DEST"
[ -f package.json ] || echo '{"name":"inhouse-code-server-host","private":true}' > package.json
NODEDIR=/usr; [ -d /usr/include/node ] || NODEDIR=$(dirname "$(dirname "$(command -v node)")")
# JOBS=max: node-gyp compiles each native module with make -j<cores>
JOBS=max npm_config_nodedir=$NODEDIR npm_config_yes=true npm_config_unsafe_perm=true npm_config_cache="$CACHE" \
  npm install --no-audit --no-fund --no-save "code-server@$VERSION"
# code-server writes into HOME on any call without --config, so isolate HOME/XDG for the version check.
HOME=$DEST/.home XDG_CONFIG_HOME=$DEST/.home/.config XDG_DATA_HOME=$DEST/.home/.local/share \
  "$DEST/node_modules/.bin/code-server" --version
touch "$STAMP"
