#!/usr/bin/env bash
# Package test (issue 6), run by scripts/test.sh. Builds the .deb and .rpm with
# scripts/package.sh, checks the .rpm's files and dependencies with rpm -qpl/-qpR,
# then installs the .deb into this machine's Debian nginx with dpkg -i and checks:
# the module is enabled the Debian way; stock nginx with its stock nginx.conf plus
# Ward's example site enabled passes `nginx -t`; that site serves (a private nginx
# on a free loopback port, with the installed modules-enabled/*.conf and the
# enabled site file moved to that port) and blocks the login-form SQL injection
# with 403; `apt-get remove` and `apt-get purge` leave nginx working without the
# module. Everything it adds is removed on exit (the package is purged).
#
# It changes the system, so it runs only as root on a Debian/Ubuntu with nginx,
# and prints SKIPPED otherwise; WARD_PACKAGE_TESTS=0 skips it too. Exit 1 on failure.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
pkg=libnginx-mod-http-ward
site=/etc/nginx/sites-enabled/ward-package-test
enabled=/etc/nginx/modules-enabled/50-mod-http-ward.conf

skip() { echo "SKIPPED: package test: $*"; exit 0; }
[ "${WARD_PACKAGE_TESTS:-1}" != 0 ] || skip "WARD_PACKAGE_TESTS=0"
[ "$(id -u)" -eq 0 ] || skip "needs root (it installs and purges $pkg with dpkg)"
command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || skip "needs dpkg and apt-get (Debian/Ubuntu)"
[ -x /usr/sbin/nginx ] && [ -f /etc/nginx/nginx.conf ] || skip "needs Debian's nginx (run scripts/setup.sh)"
pkg_state() { dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || echo not-installed; }
installed() { [ "$(pkg_state)" != not-installed ]; }
installed && skip "$pkg is already installed on this machine; not replacing it"
[ -e "$site" ] && skip "$site exists; not replacing it"

checks=0
fails=0
ok() { checks=$((checks + 1)); echo "ok - $*"; }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL - $*"; }
check() {
  local what=$1; shift
  if "$@" >"$tmp/check.log" 2>&1; then ok "$what"; else fail "$what"; tail -15 "$tmp/check.log" | sed 's/^/  | /'; fi
}

tmp="$(mktemp -d /tmp/ward-package-test.XXXXXX)"
chmod 755 "$tmp"   # nginx workers (nobody) read below it
cleanup() {
  if [ -f "$tmp/nginx.pid" ]; then
    kill -QUIT "$(cat "$tmp/nginx.pid")" 2>/dev/null
    for _ in $(seq 50); do [ -f "$tmp/nginx.pid" ] || break; sleep 0.1; done
  fi
  rm -f "$site"
  if installed; then dpkg -P "$pkg" >>"$tmp/dpkg.log" 2>&1 || echo "cleanup: dpkg -P $pkg failed" >&2; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
nginx_t() { nginx -t -q; }

# -- build
echo "== building the packages (scripts/package.sh)"
if ! WARD_PKG_OUT="$tmp/out" timeout 3600 "$repo/scripts/package.sh" >"$tmp/package.log" 2>&1; then
  tail -40 "$tmp/package.log"
  echo "FAIL - scripts/package.sh"
  exit 1
fi
deb="$(ls "$tmp"/out/${pkg}_*.deb 2>/dev/null | head -1)"
rpm="$(ls "$tmp"/out/nginx-mod-http-ward-*.rpm 2>/dev/null | head -1)"
check "package.sh built a .deb" test -f "$deb"
check "package.sh built an .rpm" test -f "$rpm"
[ -f "$deb" ] && [ -f "$rpm" ] || exit 1
nginx_version="$(dpkg-query -W -f='${Version}' nginx)"
nginx_version="${nginx_version#*:}"
nginx_version="${nginx_version%%-*}"
nginx_abi="$(dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[^ ,]*')"

# -- .rpm: RHEL layout and the exact nginx it was built against
echo "== .rpm: $(basename "$rpm")"
if ! command -v rpm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends rpm >"$tmp/apt.log" 2>&1 \
    || { apt-get update -qq >>"$tmp/apt.log" 2>&1 && apt-get install -y -qq --no-install-recommends rpm >>"$tmp/apt.log" 2>&1; } \
    || { tail -5 "$tmp/apt.log"; fail "apt-get install rpm"; }
fi
if command -v rpm >/dev/null 2>&1; then
  rpm -qpl "$rpm" >"$tmp/rpm-files" 2>/dev/null
  rpm -qpR "$rpm" >"$tmp/rpm-requires" 2>/dev/null
  for f in /usr/lib64/nginx/modules/ngx_http_ward_module.so /usr/share/nginx/modules/mod-http-ward.conf \
           /usr/bin/ward /usr/share/ward/ward.conf /usr/share/ward/crs.conf /usr/share/ward/sites/example.conf; do
    check "rpm -qpl lists $f" grep -qx "$f" "$tmp/rpm-files"
  done
  check "rpm has no Debian paths (/usr/lib/nginx, /etc/nginx)" bash -c "! grep -Eq '^(/usr/lib/nginx|/etc/nginx|/usr/share/nginx/modules-available)/' '$tmp/rpm-files'"
  check "rpm -qpR: nginx = $nginx_version" grep -qx "nginx = $nginx_version" "$tmp/rpm-requires"
  check "rpm -qpR: the shared libraries (libc.so.6)" grep -q '^libc\.so\.6' "$tmp/rpm-requires"
  check "rpm scriptlets reload nginx" bash -c "rpm -qp --scripts '$rpm' 2>/dev/null | grep -q 'systemctl reload nginx'"
fi

# -- .deb: metadata and file list
echo "== .deb: $(basename "$deb")"
depends="$(dpkg-deb -f "$deb" Depends)"
check "Depends on the ABI of the installed nginx ($nginx_abi)" bash -c "[ -n '$nginx_abi' ] && grep -Eq '(^|, )$nginx_abi(,|\$)' <<<'$depends'"
check "Depends on no unset ABI placeholder" bash -c "! grep -q unset <<<'$depends'"
check "Recommends modsecurity-crs" bash -c "dpkg-deb -f '$deb' Recommends | grep -q modsecurity-crs"
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's#^\./#/#' >"$tmp/deb-files"
for f in /usr/lib/nginx/modules/ngx_http_ward_module.so /usr/share/nginx/modules-available/mod-http-ward.conf \
         /usr/bin/ward /usr/share/ward/ward.conf /usr/share/ward/crs.conf /usr/share/ward/sites/example.conf; do
  check "dpkg-deb -c lists $f" grep -qx "$f" "$tmp/deb-files"
done
# The repository's reference deployment ships as an example only.
for f in "$repo"/nginx-conf/kibana*.conf "$repo"/rules/kibana/plugins/*.conf; do
  [ -f "$f" ] || continue
  rel="${f#"$repo"/}"
  rel="${rel#nginx-conf/}"
  case "$rel" in rules/*) dest=/usr/share/ward/$rel ;; *) dest=/usr/share/ward/examples/$rel ;; esac
  check "dpkg-deb -c lists $dest" grep -qx "$dest" "$tmp/deb-files"
done
check "the .deb installs nothing under /etc/nginx (no site enabled by default)" bash -c "! grep -q '^/etc/nginx' '$tmp/deb-files'"

# -- install
echo "== dpkg -i"
ls /etc/nginx/sites-enabled /etc/nginx/conf.d >"$tmp/sites-before" 2>&1
if ! dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1; then
  tail -20 "$tmp/dpkg.log"
  fail "dpkg -i $(basename "$deb")"
  exit 1
fi
ok "dpkg -i $(basename "$deb")"
check "module in /usr/lib/nginx/modules" test -f /usr/lib/nginx/modules/ngx_http_ward_module.so
check "modules-available/mod-http-ward.conf loads it" \
  grep -qx 'load_module modules/ngx_http_ward_module.so;' /usr/share/nginx/modules-available/mod-http-ward.conf
check "postinst enabled it: $enabled -> modules-available" \
  bash -c "[ \"\$(readlink '$enabled')\" = /usr/share/nginx/modules-available/mod-http-ward.conf ]"
check "/usr/bin/ward runs" /usr/bin/ward --version
ls /etc/nginx/sites-enabled /etc/nginx/conf.d >"$tmp/sites-after" 2>&1
check "no site enabled by the package" cmp -s "$tmp/sites-before" "$tmp/sites-after"
check "stock nginx.conf with the module: nginx -t" nginx_t

# -- one example site enabled in the stock configuration
echo "== example site"
[ -d /usr/share/modsecurity-crs/rules ] || fail "modsecurity-crs is not installed (scripts/setup.sh installs it)"
ln -s /usr/share/ward/sites/example.conf "$site"
check "stock nginx.conf + sites-enabled/ward-package-test (Ward + CRS): nginx -t" nginx_t

# Serve it from a private nginx (Debian's prefix, so modules/ resolves as in the
# stock configuration): the installed modules and the enabled site file,
# on a free loopback port instead of 80.
port=""
for _ in $(seq 50); do
  p=$((20000 + RANDOM % 20000))
  ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { port=$p; break; }
done
[ -n "$port" ] || { fail "no free loopback port"; exit 1; }
sed -e "s/^\(\s*\)listen 80;/\1listen 127.0.0.1:$port;/" -e '/listen \[::\]:80;/d' "$site" >"$tmp/site.conf"
cat >"$tmp/nginx.conf" <<EOF
include /etc/nginx/modules-enabled/*.conf;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log info;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log $tmp/access.log;
    client_body_temp_path $tmp/client_body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    include $tmp/site.conf;
}
EOF
if nginx -p /usr/share/nginx/ -c "$tmp/nginx.conf" >"$tmp/nginx-start.log" 2>&1; then
  code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port$1"; }
  for _ in $(seq 50); do [ "$(code /)" = 000 ] || break; sleep 0.2; done
  check "the site serves: GET / -> 200" test "$(code /)" = 200
  sqli="username=admin%27%20UNION%20SELECT%201%2C%20sqlite_version%28%29%2C%201%20--&password=x"
  check "login-form SQL injection (admin' UNION SELECT 1, sqlite_version(), 1 --) -> 403" test "$(code "/login?$sqli")" = 403
  check "error log: ModSecurity: Access denied with code 403" grep -q 'ModSecurity: Access denied with code 403' "$tmp/error.log"
  kill -QUIT "$(cat "$tmp/nginx.pid")"
  for _ in $(seq 50); do [ -f "$tmp/nginx.pid" ] || break; sleep 0.1; done
else
  sed 's/^/  | /' "$tmp/nginx-start.log"
  fail "private nginx with the installed module and the example site starts"
fi
rm -f "$site"

# -- remove, reinstall, remove, purge
echo "== apt-get remove / purge"
export DEBIAN_FRONTEND=noninteractive
check "apt-get remove $pkg" apt-get remove -y -qq "$pkg"
check "remove: module conf no longer enabled" test ! -e "$enabled"
check "remove: link parked as .removed (as dh_nginx)" test -L "$enabled.removed"
check "remove: module gone" test ! -e /usr/lib/nginx/modules/ngx_http_ward_module.so
check "remove: nginx -t" nginx_t
check "reinstall (dpkg -i) enables the module again" bash -c "dpkg -i '$deb' && [ -L '$enabled' ] && [ ! -e '$enabled.removed' ]"
check "reinstall: nginx -t" nginx_t
check "apt-get remove $pkg (again)" apt-get remove -y -qq "$pkg"
check "apt-get purge $pkg" apt-get purge -y -qq "$pkg"
check "purge: no link and no .removed left" bash -c "[ ! -e '$enabled' ] && [ ! -L '$enabled' ] && [ ! -L '$enabled.removed' ]"
check "purge: package gone" test "$(pkg_state)" = not-installed
check "purge: nginx -t" nginx_t

echo "package test: $((checks - fails))/$checks checks passed"
[ "$fails" -eq 0 ]
