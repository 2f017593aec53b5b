#!/usr/bin/env bash
# Installs code-server 4.100.3 (VS Code 1.100.3 for the browser) from the npm registry into its own
# folder, .cache/e2e/code-server, for the end-to-end test. It is not a dependency of the extension
# (about 300 MB). Works offline except for the npm registry:
#   - @vscode/ripgrep's postinstall downloads from GitHub: we hand it Debian's rg as its cached archive;
#   - node-pty's postinstall runs `npx node-gyp`: npm_config_yes=true;
#   - as root, code-server's postinstall needs --unsafe-perm;
#   - argon2 and kerberos fail their binary download and build from source (needs libkrb5-dev).
# Needs Debian's chromium, ripgrep and libkrb5-dev (apt-get install chromium ripgrep libkrb5-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=4.100.3
PREFIX="${CODE_SERVER_PREFIX:-$PWD/.cache/e2e/code-server}"
BIN="$PREFIX/node_modules/.bin/code-server"

if [ -x "$BIN" ] && [ "$(node -p "require('$PREFIX/node_modules/code-server/package.json').version" 2>/dev/null)" = "$VERSION" ]; then
  echo "code-server $VERSION already installed in $PREFIX"
  exit 0
fi

for tool in rg chromium; do
  command -v "$tool" >/dev/null || { echo "install-code-server: '$tool' is missing (apt-get install ripgrep chromium libkrb5-dev)" >&2; exit 1; }
done

mkdir -p "$PREFIX"
WORK_TMP="$(mktemp -d)"
trap 'rm -rf "$WORK_TMP"' EXIT
# @vscode/ripgrep looks for this archive in $TMPDIR before downloading.
mkdir -p "$WORK_TMP/vscode-ripgrep-cache-1.15.11"
tar czf "$WORK_TMP/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$(dirname "$(command -v rg)")" rg

# Native modules build from source; use the installed Node headers when there are any (no download).
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi

[ -f "$PREFIX/package.json" ] || echo '{ "name": "backdoor-lens-e2e-code-server", "private": true }' > "$PREFIX/package.json"
echo "installing code-server $VERSION into $PREFIX (about a minute)"
(
  cd "$PREFIX"
  TMPDIR="$WORK_TMP" npm_config_yes=true npm install --no-audit --no-fund --unsafe-perm \
    --no-package-lock --foreground-scripts=false "code-server@$VERSION" >"$WORK_TMP/npm.log" 2>&1
) || { tail -40 "$WORK_TMP/npm.log" >&2; echo "install-code-server: npm install failed (log above)" >&2; exit 1; }
[ -x "$BIN" ] || { tail -40 "$WORK_TMP/npm.log" >&2; echo "install-code-server: $BIN missing after install" >&2; exit 1; }
echo "code-server $(node -p "require('$PREFIX/node_modules/code-server/package.json').version") installed in $PREFIX"
