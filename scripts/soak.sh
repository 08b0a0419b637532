#!/usr/bin/env bash
# Reload and soak check (issue #7), bounded: nginx with Ward and the CRS v4 (../shared,
# paranoia level 2) under wrk load on loopback while it is reloaded RELOADS times, one of
# those reloads with a broken rule file swapped in. Prints the figures and fails on a
# failed request, a worker killed by a signal, an alert (or worse) in the error log, a
# broken reload that is not refused with file and line, or worker RSS growing more than
# 10% from after the first reload to after the last.
#
#   scripts/soak.sh [RELOADS=20] [INTERVAL_SECONDS=1]
#
# Needs: a release build (target/release/libngx_http_ward_module.so), /usr/sbin/nginx, wrk.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
reloads="${1:-20}"
interval="${2:-1}"
so="$root/target/release/libngx_http_ward_module.so"
crs="$(cd "$root/../shared/crs/v4" 2>/dev/null && pwd || true)"
[ -f "$so" ] || { echo "soak: build first: cargo build --release" >&2; exit 2; }
command -v wrk >/dev/null || { echo "soak: wrk not installed" >&2; exit 2; }
[ -n "$crs" ] || { echo "soak: SKIPPED: ../shared/crs/v4 not found" >&2; exit 0; }

dir="$(mktemp -d /tmp/ward-soak.XXXXXX)"
cleanup() { [ -f "$dir/logs/nginx.pid" ] && kill "$(cat "$dir/logs/nginx.pid")" 2>/dev/null; sleep 0.5; rm -rf "$dir"; }
[ -n "${SOAK_KEEP:-}" ] || trap cleanup EXIT
mkdir -p "$dir/logs" "$dir/html" "$dir/rules"
chmod -R a+rX "$dir"
echo ok >"$dir/html/index.html"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/rules/crs.conf" <<CONF
SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "@rx (?i)^application/json" "id:200001,phase:1,t:none,pass,nolog,ctl:requestBodyProcessor=JSON"
Include $crs/crs-setup.conf.example
SecAction "id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=2"
Include $crs/rules/*.conf
CONF
cp "$dir/rules/crs.conf" "$dir/rules/crs.good"
user=""; [ "$(id -u)" -eq 0 ] && user="user root;"
cat >"$dir/nginx.conf" <<CONF
load_module $so;
$user
worker_processes 1;
error_log $dir/logs/error.log warn;
pid $dir/logs/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/tmp;
  ward on;
  ward_rules_file $dir/rules/crs.conf;
  server {
    listen 127.0.0.1:$port;
    root $dir/html;
    location / { try_files \$uri /index.html; }
  }
}
CONF
nginx() { /usr/sbin/nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log" "$@"; }
nginx
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
master=$(cat "$dir/logs/nginx.pid")
workers() { pgrep -P "$master" | sort -n; }
# RSS of the newest worker (old ones may still be finishing their connections).
rss_kb() { local p; p=$(workers | tail -1); awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0; }
hup() { kill -HUP "$master"; sleep "$interval"; }

# Mixed benign, attack and malformed traffic, round-robin per request.
cat >"$dir/mix.lua" <<'LUA'
-- Browser-like headers, so the benign request passes CRS at PL2.
wrk.headers["User-Agent"] = "Mozilla/5.0 (ward soak)"
wrk.headers["Accept"] = "text/html,*/*"
-- A new connection per request: an idle keep-alive connection closed by a worker that
-- exits gracefully after a reload is a client-side race of HTTP, not a failed request.
wrk.headers["Connection"] = "close"
-- Built in init(): wrk sets the Host header only after the script is loaded.
local reqs
function init(args) reqs = {
  wrk.format("GET", "/index.html?page=2&sort=name"),
  wrk.format("GET", "/?id=1%27%20UNION%20SELECT%20password%20FROM%20users--"),
  wrk.format("POST", "/login", {["Content-Type"]="application/x-www-form-urlencoded"}, "user=bob&pass=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
  wrk.format("POST", "/api", {["Content-Type"]="application/json"}, '{"q":{"bool":{"must":[{"match":{"a":"b"}}]}}}'),
  wrk.format("POST", "/api", {["Content-Type"]="application/json"}, '{"broken":'),
  wrk.format("GET", "/?a=%zz&b=%c0%af"),
} end
local threads = {}
function setup(thread) table.insert(threads, thread) end
n_req, n_err, n_pass, n_block = 0, 0, 0, 0
request = function() n_req = n_req + 1; return reqs[(n_req % #reqs) + 1] end
response = function(status)
  if status >= 500 then n_err = n_err + 1 elseif status >= 400 then n_block = n_block + 1 else n_pass = n_pass + 1 end
end
done = function()
  local b, o, k = 0, 0, 0
  for _, t in ipairs(threads) do b = b + t:get("n_err"); o = o + t:get("n_pass"); k = k + t:get("n_block") end
  io.write(string.format("answers: %d passed, %d blocked (4xx), server errors (5xx): %d\n", o, k, b))
end
LUA

rss_start=$(rss_kb)
duration=$((reloads * interval + 5))
wrk -t1 -c8 -d"${duration}s" -s "$dir/mix.lua" "http://127.0.0.1:$port/" >"$dir/wrk.txt" 2>&1 &
wrk_pid=$!
sleep 1
hup
rss_first=$(rss_kb)
master_rss_first=$(awk '/^VmRSS/ {print $2}' "/proc/$master/status")
broken_at=$((reloads / 2))
for i in $(seq 2 "$reloads"); do
  if [ "$i" -eq "$broken_at" ]; then
    printf 'SecRuleEngine On\nSecRule ARGS "@rx (" "id:1,phase:2,deny"\n' >"$dir/rules/crs.conf"
    hup
    cp "$dir/rules/crs.good" "$dir/rules/crs.conf"
  else
    hup
  fi
done
sleep 2
rss_last=$(rss_kb)
master_rss_last=$(awk '/^VmRSS/ {print $2}' "/proc/$master/status")
wait "$wrk_pid" || true
status=0
echo "soak: $reloads reloads (one with a broken rule file) under wrk, CRS v4 PL2"
sed -n '/requests in/p;/Socket errors/p;/Requests\/sec/p;/answers:/p' "$dir/wrk.txt"
echo "worker RSS: start ${rss_start} kB, after first reload ${rss_first} kB, after last ${rss_last} kB"
echo "master RSS: after first reload ${master_rss_first} kB, after last ${master_rss_last} kB"
if grep -q "Socket errors" "$dir/wrk.txt"; then echo "soak: FAIL: socket errors under reload"; status=1; fi
if ! grep -q "server errors (5xx): 0$" "$dir/wrk.txt"; then echo "soak: FAIL: 5xx answers"; status=1; fi
if grep -q "exited on signal" "$dir/logs/error.log"; then echo "soak: FAIL: a worker died on a signal"; status=1; fi
if grep -E "\[(alert|crit|emerg)\]" "$dir/logs/error.log" | grep -v "crs.conf:2" | grep -q .; then
  echo "soak: FAIL: alert or worse in the error log:"; grep -E "\[(alert|crit|emerg)\]" "$dir/logs/error.log" | grep -v "crs.conf:2" | head -5; status=1
fi
if grep -q "crs.conf:2" "$dir/logs/error.log"; then
  echo "broken reload refused: $(grep -m1 'crs.conf:2' "$dir/logs/error.log" | cut -c1-200)"
else
  echo "soak: FAIL: the broken reload was not reported with file and line"; status=1
fi
if [ "$rss_last" -gt $((rss_first * 110 / 100)) ]; then echo "soak: FAIL: RSS grew more than 10%"; status=1; fi
exit $status
