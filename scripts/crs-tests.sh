#!/usr/bin/env bash
# Runs the OWASP CRS regression tests (go-ftw style) against nginx with either
# Ward or the reference engine (ModSecurity v3, Debian's libnginx-mod-http-modsecurity).
#
#   scripts/crs-tests.sh --engine ward|modsecurity --suite v4|v3.3 [--jobs N]
#                        [--no-overrides] [--results FILE] [--keep] [-- <extra ward crs-test args>]
#
# Builds a private nginx prefix under /tmp with the harness configuration from
# ../shared/crs/README.txt (base config, crs-setup, test settings 900005, marker
# rule 999999, CRS rules), starts the `ward albedo` backend and one nginx server
# per job (each with its own error_log), runs `ward crs-test`, and for the ward
# engine compares the pass count with tests/crs-ratchet.txt. Loopback only;
# everything started here is stopped on exit.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${WARD_SHARED:-$REPO/../shared}
ENGINE=""
SUITE=""
JOBS=2
OVERRIDES=1
RESULTS=""
KEEP=0
EXTRA=()

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) ENGINE=$2; shift 2 ;;
    --suite) SUITE=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --no-overrides) OVERRIDES=0; shift ;;
    --results) RESULTS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
case "$ENGINE" in ward|modsecurity) ;; *) usage ;; esac
case "$SUITE" in v4|v3.3) ;; *) usage ;; esac
[[ "$JOBS" =~ ^[0-9]+$ ]] && [ "$JOBS" -ge 1 ] && [ "$JOBS" -le 16 ] || { echo "--jobs must be 1..16" >&2; exit 2; }
[ -d "$SHARED/crs" ] || { echo "SKIPPED: $SHARED/crs not found" >&2; exit 2; }

# Suite layout and harness settings (README.txt: "Exact test-settings rules").
if [ "$SUITE" = v4 ]; then
  TESTS=$SHARED/crs/v4/tests
  CRS_SETUP=$SHARED/crs/v4/crs-setup.conf.example
  RULES_DIR=$SHARED/crs/v4/rules
  BASE_PORT=${WARD_CRS_PORT:-18180}
  SETTINGS='SecAction "id:900005,phase:1,nolog,pass,ctl:ruleEngine=DetectionOnly,ctl:ruleRemoveById=910000,setvar:tx.blocking_paranoia_level=4,setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_length=400,setvar:tx.total_arg_length=6400,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535"'
  OVERRIDES_FILE=$SHARED/crs/v4/harness/nginx-overrides.yaml
else
  TESTS=$SHARED/crs/v3.3/tests
  CRS_SETUP=/etc/modsecurity/crs/crs-setup.conf
  [ -f "$CRS_SETUP" ] || CRS_SETUP=/usr/share/modsecurity-crs/crs-setup.conf
  RULES_DIR=/usr/share/modsecurity-crs/rules
  BASE_PORT=${WARD_CRS_PORT:-18080}
  SETTINGS='SecAction "id:900005,phase:1,nolog,pass,ctl:ruleEngine=DetectionOnly,ctl:ruleRemoveById=910000,setvar:tx.paranoia_level=4,setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.total_arg_length=64000,setvar:tx.max_num_args=255,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535"'
  OVERRIDES_FILE=""   # the 3.3 suite has no platform overrides
fi
# CRS 3.3's tests were written for Apache, which passes header names such as X_Filename
# and X.Filename (933110); nginx drops them unless told otherwise. The v4 suite keeps
# nginx's defaults, as CRS CI does (its nginx overrides list those tests instead).
SERVER_EXTRA=""
[ "$SUITE" = v3.3 ] && SERVER_EXTRA="ignore_invalid_headers off;"
MARKER='SecRule REQUEST_HEADERS:X-CRS-Test "@rx ^.*$" "id:999999,phase:1,pass,t:none,log,msg:'"'"'%{MATCHED_VAR}'"'"',ctl:ruleRemoveById=1-999999"'
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
range_busy() {  # base -> true when a port of the range (jobs and albedo) is taken
  local p
  for ((p = $1; p < $1 + JOBS; p++)); do port_open "$p" && return 0; done
  port_open $(($1 + 99))
}
# Another suite running (the other one, or a second checkout): without WARD_CRS_PORT the
# range moves up until it is free rather than failing on a taken port.
if [ -z "${WARD_CRS_PORT:-}" ]; then
  for ((try = 0; try < 20; try++)); do
    range_busy "$BASE_PORT" || break
    BASE_PORT=$((BASE_PORT + 200))
  done
fi
ALBEDO_PORT=$((BASE_PORT + 99))
for f in "$CRS_SETUP" "$RULES_DIR" "$TESTS" /etc/nginx/modsecurity.conf; do
  [ -e "$f" ] || { echo "missing: $f" >&2; exit 2; }
done

# scripts/test.sh has built everything already (WARD_PREBUILT=1): one build per run.
if [ "${WARD_PREBUILT:-0}" != 1 ]; then
  echo "== building ward (release)" >&2
  (cd "$REPO" && cargo build --release -q --workspace)
fi
if [ "$ENGINE" = ward ]; then
  MODULE=$REPO/target/release/libngx_http_ward_module.so
  [ -f "$MODULE" ] || { echo "module not built: $MODULE" >&2; exit 2; }
fi
WARD=$REPO/target/release/ward

PREFIX=$(mktemp -d /tmp/ward-crs.XXXXXX)
mkdir -p "$PREFIX/logs" "$PREFIX/tmp" "$PREFIX/conf"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then echo "kept $PREFIX" >&2; else rm -rf "$PREFIX"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Base config: Debian's ModSecurity recommended config, as for the reference run.
sed -e 's/^SecRuleEngine .*/SecRuleEngine DetectionOnly/' \
    -e 's/^SecRequestBodyAccess .*/SecRequestBodyAccess On/' \
    -e 's/^SecResponseBodyAccess .*/SecResponseBodyAccess On/' \
    -e 's#^SecResponseBodyMimeType .*#SecResponseBodyMimeType text/plain text/html text/xml application/json#' \
    -e "s#^SecAuditLog .*#SecAuditLog $PREFIX/logs/modsec_audit.log#" \
    -e "s#^SecTmpDir .*#SecTmpDir $PREFIX/tmp/#" \
    -e "s#^SecDataDir .*#SecDataDir $PREFIX/tmp/#" \
    -e 's#^SecUnicodeMapFile unicode.mapping#SecUnicodeMapFile /etc/nginx/unicode.mapping#' \
    -e 's/^SecStatusEngine .*/SecStatusEngine Off/' \
    /etc/nginx/modsecurity.conf > "$PREFIX/conf/base.conf"
printf '%s\n%s\n' "$SETTINGS" "$MARKER" > "$PREFIX/conf/test-settings.conf"

RULE_FILES=("$PREFIX/conf/base.conf" "$CRS_SETUP" "$PREFIX/conf/test-settings.conf")
if [ "$ENGINE" = ward ] && [ "$SUITE" = v3.3 ]; then
  # CRS 3.3's tests expect ModSecurity v2 on Apache (the 3.3 suite has no nginx
  # overrides): Ward follows v2 where v2 and v3 differ (tests/crs-known-failures.md).
  echo 'WardCompatibility ModSecurity2' > "$PREFIX/conf/ward-compat.conf"
  RULE_FILES=("$PREFIX/conf/ward-compat.conf" "${RULE_FILES[@]}")
fi
for f in "$RULES_DIR"/*.conf; do RULE_FILES+=("$f"); done

if [ "$ENGINE" = modsecurity ]; then
  LOAD="load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;"
  : > "$PREFIX/conf/main.conf"
  for f in "${RULE_FILES[@]}"; do echo "Include $f" >> "$PREFIX/conf/main.conf"; done
  WAF="modsecurity on; modsecurity_rules_file $PREFIX/conf/main.conf;"
else
  LOAD="load_module $MODULE;"
  WAF="ward on;"
  for f in "${RULE_FILES[@]}"; do WAF+=" ward_rules_file $f;"; done
fi
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"

for ((i = 0; i < JOBS; i++)); do
  port=$((BASE_PORT + i))
  cat > "$PREFIX/conf/nginx-$port.conf" <<EOF
$USER_LINE
$LOAD
worker_processes 1;
pid $PREFIX/nginx-$port.pid;
error_log $PREFIX/logs/nginx-$port.log info;
events { worker_connections 256; }
http {
  access_log off;
  client_max_body_size 64m;
  client_body_temp_path $PREFIX/tmp/body-$port;
  proxy_temp_path $PREFIX/tmp/proxy-$port;
  fastcgi_temp_path $PREFIX/tmp/fastcgi-$port;
  uwsgi_temp_path $PREFIX/tmp/uwsgi-$port;
  scgi_temp_path $PREFIX/tmp/scgi-$port;
  $WAF
  server {
    listen 127.0.0.1:$port;
    server_name localhost;
    $SERVER_EXTRA
    error_log $PREFIX/logs/error-$port.log info;
    location / { proxy_pass http://127.0.0.1:$ALBEDO_PORT; }
  }
}
EOF
  : > "$PREFIX/logs/error-$port.log"
done

for ((p = BASE_PORT; p < BASE_PORT + JOBS; p++)); do
  port_open "$p" && { echo "port $p already in use" >&2; exit 2; }
done
port_open "$ALBEDO_PORT" && { echo "port $ALBEDO_PORT already in use" >&2; exit 2; }

"$WARD" albedo --listen "127.0.0.1:$ALBEDO_PORT" 2>"$PREFIX/logs/albedo.log" &
PIDS+=($!)
for ((i = 0; i < JOBS; i++)); do
  port=$((BASE_PORT + i))
  nginx -p "$PREFIX" -c "$PREFIX/conf/nginx-$port.conf" -g 'daemon off;' 2>>"$PREFIX/logs/nginx-$port.stderr" &
  PIDS+=($!)
done
echo "== waiting for $JOBS nginx server(s) ($ENGINE, CRS $SUITE)" >&2
for ((p = BASE_PORT; p < BASE_PORT + JOBS; p++)); do
  for ((t = 0; t < 600; t++)); do port_open "$p" && break; sleep 0.2; done
  port_open "$p" || { echo "nginx on $p did not start:" >&2; cat "$PREFIX"/logs/nginx-"$p".* >&2; exit 1; }
done
port_open "$ALBEDO_PORT" || { echo "albedo did not start" >&2; exit 1; }

ARGS=(crs-test --tests "$TESTS" --port "$BASE_PORT" --jobs "$JOBS" --quiet
      --error-log "$PREFIX/logs/error-{port}.log" --results "${RESULTS:-$PREFIX/results.json}")
[ "$OVERRIDES" = 1 ] && [ -n "$OVERRIDES_FILE" ] && ARGS+=(--overrides "$OVERRIDES_FILE")

RATCHET_FILE=$REPO/tests/crs-ratchet.txt
RATCHET=""
if [ "$ENGINE" = ward ] && [ -f "$RATCHET_FILE" ]; then
  RATCHET=$(awk -v s="$SUITE" '$1 == s { print $2 }' "$RATCHET_FILE")
fi
[ -n "$RATCHET" ] && ARGS+=(--min-pass "$RATCHET")

START=$(date +%s)
set +e
timeout 3600 "$WARD" "${ARGS[@]}" "${EXTRA[@]}" | tee "$PREFIX/summary.txt"
RC=${PIPESTATUS[0]}
set -e
echo "== wall time: $(( $(date +%s) - START ))s" >&2

PASSED=$(sed -n 's/^.*: \([0-9]*\)\/[0-9]* passed.*/\1/p' "$PREFIX/summary.txt" | tail -1)
if [ -n "$RATCHET" ] && [ -n "$PASSED" ]; then
  if [ "$PASSED" -lt "$RATCHET" ]; then
    echo "RATCHET: $SUITE passed $PASSED < $RATCHET (tests/crs-ratchet.txt): regression" >&2
  elif [ "$PASSED" -gt "$RATCHET" ]; then
    echo "RATCHET: $SUITE passed $PASSED > $RATCHET: raise the '$SUITE' line in tests/crs-ratchet.txt" >&2
  fi
fi
exit "$RC"
