#!/usr/bin/env bash
# Builds Ward's packages from a clean clone, with cargo-deb and cargo-generate-rpm
# (configured in Cargo.toml's [package.metadata.deb] / [package.metadata.generate-rpm]):
#   target/packages/libnginx-mod-http-ward_<version>-1_<arch>.deb   Debian, Ubuntu
#   target/packages/nginx-mod-http-ward-<version>-1.<arch>.rpm      RHEL, CentOS, Fedora
#
#   scripts/package.sh [all|deb|rpm]        (default: all)
#
# A dynamic module only loads into the nginx it was compiled against (same version
# and ./configure flags), so each package depends on exactly that nginx: the .deb on
# its ABI virtual package (nginx-abi-<version>-<n>), the .rpm on nginx = <version>.
# By default that nginx is this machine's Debian nginx: scripts/setup.sh installs
# nginx-dev and configures its sources under target/nginx-src. For another nginx
# (a RHEL one, say), give its source tree:
#   NGINX_SOURCE_DIR=/path/to/nginx-1.x.y   a source tree, configured (objs/) or, with
#   NGINX_CONFIGURE_ARGS="<flags>"          the flags `nginx -V` prints on the target,
#                                           configured here first
#   NGINX_BUILD_DIR=/path/objs              instead: a configured build directory
#   WARD_NGINX_ABI=nginx-abi-…              the .deb's ABI dependency, when the tree
#                                           does not name it (debian/libnginx-mod.abisubstvars)
#   WARD_PKG_OUT=dir                        output directory (default target/packages)
# cargo-deb and cargo-generate-rpm are installed with `cargo install --locked` when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

what="${1:-all}"
case "$what" in all|deb|rpm) ;; *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;; esac
want() { [ "$what" = all ] || [ "$what" = "$1" ]; }
die() { echo "package: $*" >&2; exit 1; }

# -- the nginx tree the module is built against
if [ -n "${NGINX_SOURCE_DIR:-}" ]; then
  src="$(cd "$NGINX_SOURCE_DIR" && pwd)"
  build="${NGINX_BUILD_DIR:-$src/objs}"
  if [ ! -f "$build/ngx_auto_config.h" ]; then
    [ -n "${NGINX_CONFIGURE_ARGS:-}" ] || die "$src is not configured ($build/ngx_auto_config.h missing): run its ./configure with the flags of the target nginx (nginx -V), or pass them in NGINX_CONFIGURE_ARGS"
    echo "package: configuring $src with NGINX_CONFIGURE_ARGS"
    # eval: the flags are quoted as `nginx -V` prints them (--with-cc-opt='-O2 …').
    (cd "$src" && eval "./configure $NGINX_CONFIGURE_ARGS" >"$src/configure.log" 2>&1) \
      || { tail -20 "$src/configure.log"; die "configure failed (log: $src/configure.log)"; }
  fi
  export NGINX_SOURCE_DIR="$src" NGINX_BUILD_DIR="$build"
elif [ -n "${NGINX_BUILD_DIR:-}" ]; then
  build="$(cd "$NGINX_BUILD_DIR" && pwd)"
  src="$(dirname "$build")"
  export NGINX_BUILD_DIR="$build"
else
  scripts/setup.sh
  src="$root/target/nginx-src"   # .cargo/config.toml points the build at its objs/
fi
[ -f "$src/src/core/nginx.h" ] || die "no nginx sources at $src (src/core/nginx.h missing)"
nginx_version="$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$src/src/core/nginx.h")"
[ -n "$nginx_version" ] || die "cannot read NGINX_VERSION from $src/src/core/nginx.h"

# The Debian ABI name: as dh_nginx, from the tree's abisubstvars (Debian's nginx-dev
# ships it); else from the installed nginx when it is the same version.
nginx_abi="${WARD_NGINX_ABI:-}"
if [ -z "$nginx_abi" ] && [ -f "$src/debian/libnginx-mod.abisubstvars" ]; then
  nginx_abi="$(sed -n 's/^nginx:abi=//p' "$src/debian/libnginx-mod.abisubstvars")"
fi
if [ -z "$nginx_abi" ] && command -v dpkg-query >/dev/null 2>&1; then
  installed="$(dpkg-query -W -f='${Version}' nginx 2>/dev/null || true)"
  if [ "${installed%%-*}" = "$nginx_version" ]; then
    nginx_abi="$(dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[^ ,]*' || true)"
  fi
fi
if want deb; then
  [[ "$nginx_abi" =~ ^nginx-abi-[0-9][0-9a-z.+~-]*$ ]] \
    || die "cannot tell the nginx ABI of $src (no debian/libnginx-mod.abisubstvars, no matching installed nginx): set WARD_NGINX_ABI"
fi
echo "package: building against nginx $nginx_version${nginx_abi:+ ($nginx_abi)} from $src"

# -- tools (cargo install keeps its downloads in ~/.cargo, so reruns are quick)
tools=()
want deb && ! cargo deb --version >/dev/null 2>&1 && tools+=(cargo-deb)
want rpm && ! cargo generate-rpm --version >/dev/null 2>&1 && tools+=(cargo-generate-rpm)
if [ ${#tools[@]} -gt 0 ]; then
  echo "package: installing ${tools[*]}"
  cargo install --locked "${tools[@]}"
fi

# -- build (the same command as scripts/test.sh, so a tested build is reused as is)
cargo build --release --workspace
tdir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
rel="$tdir/release"
[ -f "$rel/libngx_http_ward_module.so" ] && [ -f "$rel/ward" ] || die "build products missing in $rel"

# -- stage what Cargo.toml's assets take from target/ward-pkg: /usr/share/ward for
# each layout (repository examples and rules included as they are), and stripped
# binaries for the .rpm (cargo-deb strips its own copies).
stage="$root/target/ward-pkg"
rm -rf "$stage"
for fmt in deb rpm; do
  share="$stage/$fmt/share"
  mkdir -p "$share/sites"
  cp packaging/share/ward.conf "$share/"
  if [ "$fmt" = deb ]; then
    cp packaging/share/crs.conf "$share/"; webroot=/var/www/html
  else
    cp packaging/rpm/crs.conf "$share/"; webroot=/usr/share/nginx/html
  fi
  sed "s#@WEBROOT@#$webroot#g" packaging/share/sites/example.conf >"$share/sites/example.conf"
  # Reference configurations (demo, Kibana site), rule plugins and log shipping:
  # examples only, never enabled. Left out: nginx-conf/mod-http-ward.conf (the
  # package's own load file replaces it) and the rules' test fixtures.
  if [ -d nginx-conf ]; then
    mkdir -p "$share/examples"
    cp -R nginx-conf/. "$share/examples/"
    rm -f "$share/examples/mod-http-ward.conf"
  fi
  if [ -d rules ]; then
    mkdir -p "$share/rules"
    cp -R rules/. "$share/rules/"
    find "$share/rules" -depth -type d -name tests -exec rm -rf {} +
  fi
  [ -d elk ] && cp -R elk "$share/elk"
  mkdir -p "$stage/$fmt/doc"
  cp README.md "$stage/$fmt/doc/"
  [ -d docs ] && cp docs/*.md "$stage/$fmt/doc/"
done
strip --strip-unneeded -o "$stage/rpm/ngx_http_ward_module.so" "$rel/libngx_http_ward_module.so"
strip --strip-unneeded -o "$stage/rpm/ward" "$rel/ward"

out="${WARD_PKG_OUT:-$root/target/packages}"
mkdir -p "$out"

if want deb; then
  deb_out="$(cargo deb --no-build --strip -p ngx_http_ward_module -o "$out")"
  deb="$(printf '%s\n' "$deb_out" | tail -1)"
  [ -f "$deb" ] || die "cargo deb did not report its .deb ($deb_out)"
  # cargo-deb takes Depends from Cargo.toml only: put the computed ABI in place of
  # the placeholder with dpkg-deb, Debian's own tool, rebuilding the same tree.
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  dpkg-deb -R "$deb" "$work/pkg"
  sed -i "/^Depends:/s/nginx-abi-unset/$nginx_abi/" "$work/pkg/DEBIAN/control"
  grep -q "^Depends:.*$nginx_abi" "$work/pkg/DEBIAN/control" || die "no ABI placeholder in the .deb's Depends"
  dpkg-deb --root-owner-group -Zxz -b "$work/pkg" "$deb" >/dev/null
  echo "package: $deb"
  dpkg-deb -f "$deb" Package Version Architecture Depends Recommends | sed 's/^/  /'
fi

if want rpm; then
  rpm_out="$(cargo generate-rpm -p . -o "$out" --target-dir "$tdir" \
    -s "requires = { nginx = \"= $nginx_version\" }")"
  rpm="$(ls -t "$out"/nginx-mod-http-ward-*.rpm | head -1)"
  [ -n "$rpm_out$rpm" ] && [ -f "$rpm" ] || die "cargo generate-rpm did not produce an .rpm"
  echo "package: $rpm (requires nginx = $nginx_version)"
fi
