#!/usr/bin/env bash
# Local demo: builds Ward, starts Debian's nginx with the module on 127.0.0.1 (one
# blocking and one detection-only server in front of a stand-in application) and
# prints what to try. Ctrl-C stops it. Ports: WARD_DEMO_PORT (default 8080) and the
# next ones; files under target/demo/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

scripts/setup.sh
cargo build --release --workspace

base="${WARD_DEMO_PORT:-8080}"
on=$base det=$((base + 1)) up=$((base + 9))
prefix="$root/target/demo"
module="$root/target/release/libngx_http_ward_module.so"
mkdir -p "$prefix/logs"
sed -e "s|@MODULE@|$module|g" -e "s|@PREFIX@|$prefix|g" -e "s|@RULES@|$root/nginx-conf/demo-rules.conf|g" \
    -e "s|@PORT_ON@|$on|g" -e "s|@PORT_DET@|$det|g" -e "s|@PORT_UP@|$up|g" \
    nginx-conf/demo.conf >"$prefix/nginx.conf"
[ "$(id -u)" -ne 0 ] || sed -i "1i user root;" "$prefix/nginx.conf"
chmod -R a+rX "$prefix"

nginx=(/usr/sbin/nginx -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log")
"${nginx[@]}" -t -q
"${nginx[@]}" -g 'daemon off; master_process on;' &
pid=$!
trap '"${nginx[@]}" -s stop 2>/dev/null || kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; echo; echo "demo stopped"' EXIT
trap 'exit 0' INT TERM

sqli="user=admin%27%20UNION%20SELECT%201%2C%20sqlite_version%28%29%2C%201%20--"
cat <<TXT

Ward demo running (nginx pid $pid). Try:

  curl -i 'http://127.0.0.1:$on/login?user=alice'                # benign: 200 from the application
  curl -i 'http://127.0.0.1:$on/login?$sqli'      # SecRuleEngine On: 403
  curl -i --data '$sqli' http://127.0.0.1:$on/login              # same attack in a POST form: 403
  curl -i 'http://127.0.0.1:$det/login?$sqli'     # DetectionOnly: 200, logged as Warning
  curl -i 'http://127.0.0.1:$on/static/x?$sqli'   # 'ward off' location: 200

Watch the verdicts:
  tail -f $prefix/logs/error.log $prefix/logs/access.log

Ctrl-C stops the demo.
TXT
wait "$pid"
