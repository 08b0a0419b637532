#!/usr/bin/env bash
# Idempotent: installs the Debian packages Ward builds and tests against, and
# configures a copy of Debian's nginx source tree under target/ so that
# `cargo build` produces a module binary-compatible with /usr/sbin/nginx.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

pkgs=(nginx nginx-dev libclang-dev build-essential libssl-dev libpcre2-dev zlib1g-dev pkg-config curl ca-certificates modsecurity-crs python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian starts nginx on port 80 when it is installed; Ward's tests use private prefixes.

tree="${WARD_NGINX_TREE:-$root/target/nginx-src}"
stamp="$tree/objs/.ward-configured"
ver="$(dpkg-query -W -f='${Version}' nginx-dev)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ver" ]; then
  echo "setup: nginx tree ready at $tree (nginx-dev $ver)"
  exit 0
fi
rm -rf "$tree"
mkdir -p "$tree"
cp -a /usr/share/nginx/src/. "$tree/"
cd "$tree"
# shellcheck disable=SC1091
source ./conf_flags
echo "setup: configuring nginx tree with Debian's flags"
./configure "${NGX_CONF_FLAGS[@]}" >"$tree/configure.log" 2>&1 || { tail -30 "$tree/configure.log"; exit 1; }
echo "$ver" >"$stamp"
echo "setup: nginx tree ready at $tree"
