#!/usr/bin/env bash
# Ward demo, on 127.0.0.1 only:
#   scripts/demo.sh          build Ward (scripts/setup.sh installs what it needs), start
#                            nginx with Ward + CRS (Debian's modsecurity-crs), a
#                            deliberately vulnerable SQLite login app and a stand-in
#                            Kibana, print what to try; Ctrl-C stops everything.
#   scripts/demo.sh stop     stops a running demo (from another terminal).
# Ports (refused clearly when busy):
#   WARD_DEMO_PORT (8080)  -> SecRuleEngine On; +1 DetectionOnly; +2 the Kibana site
#   WARD_DEMO_APP_PORT (WARD_DEMO_PORT+10) the vulnerable app, WARD_DEMO_KIBANA_PORT (5601)
#   WARD_DEMO_PORT_ON / _DET / _KIBANA_SITE override one port each.
# Files: WARD_DEMO_DIR (target/demo): logs/, run/ (pids). WARD_DEMO_NO_BUILD=1 skips
# setup and build (the module must already be built).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

dir="${WARD_DEMO_DIR:-$root/target/demo}"
run="$dir/run"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "${1:-}" = stop ]; then
  if alive "$run/demo.pid"; then
    pid=$(cat "$run/demo.pid")
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # Whatever is left (e.g. the demo was killed with SIGKILL).
  for f in "$run"/nginx.pid "$run"/vulnapp.pid "$run"/kibana.pid; do
    alive "$f" && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  rm -f "$run"/*.pid
  echo "demo stopped"
  exit 0
fi
[ $# -eq 0 ] || [ "$1" = start ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

if alive "$run/demo.pid"; then
  echo "demo: already running (pid $(cat "$run/demo.pid")); stop it with: scripts/demo.sh stop" >&2
  exit 1
fi

base="${WARD_DEMO_PORT:-8080}"
on="${WARD_DEMO_PORT_ON:-$base}"
det="${WARD_DEMO_PORT_DET:-$((base + 1))}"
kib_site="${WARD_DEMO_PORT_KIBANA_SITE:-$((base + 2))}"
app="${WARD_DEMO_APP_PORT:-$((base + 10))}"
kib="${WARD_DEMO_KIBANA_PORT:-5601}"
busy=()
for p in "$on" "$det" "$kib_site" "$app" "$kib"; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && busy+=("$p")
done
if [ ${#busy[@]} -gt 0 ]; then
  echo "demo: port(s) ${busy[*]} on 127.0.0.1 already in use; pick others, e.g. WARD_DEMO_PORT=9080 WARD_DEMO_KIBANA_PORT=15601 $0" >&2
  exit 1
fi

if [ -z "${WARD_DEMO_NO_BUILD:-}" ]; then
  scripts/setup.sh
  cargo build --release --workspace
fi
command -v python3 >/dev/null || { echo "demo: python3 is needed (apt-get install python3)" >&2; exit 1; }
module="$root/target/release/libngx_http_ward_module.so"
[ -f "$module" ] || { echo "demo: $module not built (run without WARD_DEMO_NO_BUILD)" >&2; exit 1; }
[ -d /usr/share/modsecurity-crs/rules ] || { echo "demo: CRS missing: apt-get install modsecurity-crs (scripts/setup.sh does)" >&2; exit 1; }

mkdir -p "$dir/logs" "$dir/tmp" "$run"
: >"$dir/logs/error.log"
: >"$dir/logs/access.json"
sed -e "s|@MODULE@|$module|g" -e "s|@PREFIX@|$dir|g" -e "s|@RULES@|$root/nginx-conf/demo-rules.conf|g" \
    -e "s|@PORT_ON@|$on|g" -e "s|@PORT_DET@|$det|g" -e "s|@PORT_KIBANA_SITE@|$kib_site|g" \
    -e "s|@PORT_APP@|$app|g" -e "s|@PORT_KIBANA@|$kib|g" \
    nginx-conf/demo.conf >"$dir/nginx.conf"
[ "$(id -u)" -ne 0 ] || sed -i "1i user root;" "$dir/nginx.conf"
chmod -R a+rX "$dir"
# The login gate's secret and users (read by the nginx master; never world-readable).
ward="$root/target/release/ward"
mkdir -p "$dir/auth"
"$ward" keygen --force "$dir/auth/auth.key" >/dev/null
rm -f "$dir/auth/users"
printf '%s\n' "${WARD_DEMO_PASSWORD:-kibana-demo}" | "$ward" passwd "$dir/auth/users" kibana >/dev/null
chmod 600 "$dir/auth/auth.key" "$dir/auth/users"

nginx=(/usr/sbin/nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log")
"${nginx[@]}" -t -q

pids=()
cleanup() {
  trap - EXIT INT TERM
  "${nginx[@]}" -s stop 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "$run"/*.pid
  echo
  echo "demo stopped"
}
trap cleanup EXIT
trap 'exit 0' INT TERM
echo $$ >"$run/demo.pid"

python3 demo/vulnapp.py "$app" 2>>"$dir/logs/vulnapp.log" &
pids+=($!); echo $! >"$run/vulnapp.pid"
python3 demo/kibana_standin.py "$kib" 2>>"$dir/logs/kibana-standin.log" &
pids+=($!); echo $! >"$run/kibana.pid"
"${nginx[@]}" -g 'daemon off; master_process on;' &
pids+=($!)

for p in "$on" "$det" "$kib_site" "$app" "$kib"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "demo: nothing listens on $p; see $dir/logs/" >&2; exit 1; }
done

sqli="user=admin%27%20UNION%20SELECT%201%2C%20sqlite_version%28%29%2C%201%20--"
cat <<TXT

Ward demo running. A login application vulnerable to SQL injection (SQLite) sits
behind nginx + Ward + OWASP CRS twice. Try:

  curl 'http://localhost:$det/login?user=alice&password=wonderland'   # a normal login
  curl 'http://localhost:$det/login?$sqli'
      # DetectionOnly: the injection works and leaks SQLite's version ("Welcome, 3.x.y!");
      # Ward logs what it saw as "ModSecurity: Warning."
  curl -i 'http://localhost:$on/login?$sqli'
      # SecRuleEngine On: 403 Forbidden, logged as "ModSecurity: Access denied"
  curl -i --data "user=<script>alert(1)</script>" http://localhost:$on/login   # XSS: 403

  The user field is  admin' UNION SELECT 1, sqlite_version(), 1 --  URL-encoded.
  Stand-in Kibana behind Ward, the Kibana exclusions plugin and the login gate:
  open http://localhost:$kib_site/ in a browser: it sends you to the login page;
  log in as  kibana / ${WARD_DEMO_PASSWORD:-kibana-demo}
  curl -i http://localhost:$kib_site/api/status      # no token: 401 with WWW-Authenticate: Bearer
  curl -i -H "Authorization: Bearer \$($ward token --key-file $dir/auth/auth.key --sub kibana)" \\
       http://localhost:$kib_site/api/status      # a valid token: 200 from the stand-in Kibana

Where the records are:
  $dir/logs/error.log     Ward's verdicts in ModSecurity's format (CRS rule ids, e.g. [id "942100"])
  $dir/logs/access.json   one JSON line per request: ward_action pass|detect|block, ward_matched_ids
  e.g. grep -o 'ModSecurity: Access denied\\|ModSecurity: Warning\\|\\[id "[0-9]*"\\]' $dir/logs/error.log

Ctrl-C (or scripts/demo.sh stop) stops the demo and everything it started.
TXT
# Returns when any child exits (or on Ctrl-C / stop, through the traps).
wait -n "${pids[@]}" || true
