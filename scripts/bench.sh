#!/usr/bin/env bash
# Throughput benchmark (issue #5): bare nginx vs Ward + CRS vs ModSecurity v3 + CRS,
# all in one run on the same /usr/sbin/nginx binary.
#
#   scripts/bench.sh [--quick] [--seconds N] [--rounds N] [--configs a,b,...] [--keep]
#
#   --quick       2 s per scenario, one round, config load timed once (smoke check)
#   --seconds N   seconds per scenario and round (default: WARD_BENCH_SECONDS or 5)
#   --rounds N    times each scenario runs over the configurations in turn; the table
#                 gives medians (default: WARD_BENCH_ROUNDS or 3)
#   --configs     subset of: bare,ward-v4-pl1,ward-v4-pl4,ward-v33-pl1,modsec-v33-pl1
#   --keep        keep the run directory (configs, logs) under /tmp
#
# Each configuration gets a private nginx prefix and port with ONE worker pinned to
# core 0 (WARD_BENCH_NGINX_CPU) that proxies to a loopback upstream nginx (`return 200`,
# pinned with wrk to core 1, WARD_BENCH_WRK_CPU); wrk runs 1 thread, 16 connections.
# All configurations are up at once (the idle ones wait in epoll) and each scenario
# runs round after round over them in turn, so that a ratio to bare compares runs
# seconds apart on this noisy machine, not minutes apart.
# Before any load, every scenario is sent once with curl (benign ones must get 200)
# and the SQLi GET must get 403 from every WAF configuration. Prints one table
# (req/s, ratio to bare in the same run, worker CPU per request, p50/p99, worker RSS,
# config load time) and saves it to target/bench/results-<date>.md. Loopback only;
# everything started here is stopped on exit. WARD_PREBUILT=1 skips `cargo build --release --workspace`;
# WARD_BENCH_MODULE=path.so benchmarks another build of the module (implies it).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${WARD_SHARED:-$REPO/../shared}
NGINX=${WARD_BENCH_NGINX:-/usr/sbin/nginx}
DURATION=${WARD_BENCH_SECONDS:-5}
ROUNDS=${WARD_BENCH_ROUNDS:-3}
CONNS=16
PORT=${WARD_BENCH_PORT:-18600}
UP_PORT=$((PORT + 1))
NGINX_CPU=${WARD_BENCH_NGINX_CPU:-0}
WRK_CPU=${WARD_BENCH_WRK_CPU:-1}
LOAD_REPEAT=3
QUICK=0
KEEP=0
ALL_CONFIGS="bare,ward-v4-pl1,ward-v4-pl4,ward-v33-pl1,modsec-v33-pl1"
CONFIGS=$ALL_CONFIGS

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; DURATION=2; ROUNDS=1; LOAD_REPEAT=1; shift ;;
    --seconds) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --configs) CONFIGS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 1 ] && [ "$DURATION" -le 600 ] \
  || { echo "seconds per scenario must be 1..600" >&2; exit 2; }
[[ "$ROUNDS" =~ ^[0-9]+$ ]] && [ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] \
  || { echo "rounds must be 1..20" >&2; exit 2; }
IFS=, read -r -a CFG_LIST <<<"$CONFIGS"
for c in "${CFG_LIST[@]}"; do
  [[ ",$ALL_CONFIGS," == *",$c,"* ]] || { echo "unknown configuration: $c" >&2; usage; }
done

log() { echo "bench: $*" >&2; }

# --- prerequisites -----------------------------------------------------------------
V4=$SHARED/crs/v4
V33_SETUP=/etc/modsecurity/crs/crs-setup.conf
[ -f "$V33_SETUP" ] || V33_SETUP=/usr/share/modsecurity-crs/crs-setup.conf
V33_RULES=/usr/share/modsecurity-crs/rules
MODSEC_SO=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
need_pkgs=()
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v curl >/dev/null || need_pkgs+=(curl)
[[ ",$CONFIGS," != *",modsec-"* ]] || [ -f "$MODSEC_SO" ] || need_pkgs+=(libnginx-mod-http-modsecurity)
# Every WAF configuration, Ward's too, starts from the package's modsecurity.conf.
[[ ",$CONFIGS," != *",ward-"* ]] || [ -f /etc/nginx/modsecurity.conf ] || need_pkgs+=(libnginx-mod-http-modsecurity)
[[ ",$CONFIGS," != *"-v33-"* ]] || [ -d "$V33_RULES" ] || need_pkgs+=(modsecurity-crs)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing ${need_pkgs[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
[[ ",$CONFIGS," != *"-v4-"* ]] || [ -d "$V4/rules" ] || { echo "SKIPPED: $V4 not found (set WARD_SHARED)" >&2; exit 2; }
for f in "$NGINX" /etc/nginx/modsecurity.conf; do
  [ -e "$f" ] || { echo "missing: $f" >&2; exit 2; }
done
ncpu=$(nproc)
if [ "$ncpu" -lt 2 ]; then
  log "WARNING: one CPU only; nginx and wrk share it"
  NGINX_CPU=0; WRK_CPU=0
fi

if [ "${WARD_PREBUILT:-0}" != 1 ] && [ -z "${WARD_BENCH_MODULE:-}" ] && [[ ",$CONFIGS," == *",ward-"* ]]; then
  log "building ward (release)"
  (cd "$REPO" && scripts/setup.sh >&2 && cargo build --release -q --workspace)
fi
MODULE=${WARD_BENCH_MODULE:-$REPO/target/release/libngx_http_ward_module.so}
[[ ",$CONFIGS," != *",ward-"* ]] || [ -f "$MODULE" ] || { echo "module not built: $MODULE" >&2; exit 2; }

# --- run directory, cleanup ----------------------------------------------------------
RUN=$(mktemp -d /tmp/ward-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then log "kept $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
cpu_mask() { local m=1 i; for ((i = 0; i < $1; i++)); do m+=0; done; echo "$m"; }

# --- request bodies --------------------------------------------------------------------
BENCH=$REPO/bench
cp "$BENCH/form-2k.txt" "$BENCH/kibana-search-16k.json" "$RUN/"
# 1 MB benign urlencoded form: 400 fields of ~2.6 KB (below SecArgumentsLimit 1000),
# characters CRS accepts even at PL4 (letters, digits, underscore). Deterministic.
awk 'BEGIN {
  w = "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar papa";
  n = split(w, words, " "); out = "";
  for (f = 1; f <= 400; f++) {
    v = "";
    for (i = 0; length(v) < 2600; i++) v = v words[(f * 7 + i) % n + 1] (i % 10) "_";
    out = out (f > 1 ? "&" : "") sprintf("field%03d=", f) v;
  }
  while (length(out) < 1048576) out = out "x";
  printf "%s", substr(out, 1, 1048576);
}' >"$RUN/body-1m.txt"

# Every request carries a browser-like Host, User-Agent and Accept: without them the
# CRS adds anomaly points to every request (numeric Host 920350, missing UA 920320).
HDRS=(-H 'Host: shop.example.com' -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
      -H 'Accept: */*')

# Scenarios: key|label|method|path|body file|content type
SQLI_PATH='/?user=admin%27%20UNION%20SELECT%201%2C%20sqlite_version%28%29%2C%201%20--'
ARGS_PATH='/shop/search?q=wireless_noise_cancelling_headphones&category=audio_electronics&brand=acme_sound&price_min=49&price_max=299&sort=price_ascending_then_rating_descending_with_reviews_only&lang=en'
SCENARIOS=(
  "get-root|GET /|GET|/||"
  "get-args|GET, 6 query args (~200 B)|GET|$ARGS_PATH||"
  "form-2k|POST form, 2 KB|POST|/account/checkout|$RUN/form-2k.txt|application/x-www-form-urlencoded"
  "json-16k|POST JSON, 16 KB (Kibana search)|POST|/internal/search/es|$RUN/kibana-search-16k.json|application/json"
  "form-1m|POST form, 1 MB|POST|/upload/form|$RUN/body-1m.txt|application/x-www-form-urlencoded"
)

# --- WAF rule sets ---------------------------------------------------------------------
# Base: Debian's ModSecurity recommended configuration, blocking, request bodies on;
# file paths moved into the run directory, no status engine (no network), and room
# for the 1 MB form (SecRequestBodyNoFilesLimit is 128 KB there: both engines would
# answer 400 "Request body excluding files is bigger than the maximum expected").
mkdir -p "$RUN/tmp"
sed -e 's/^SecRuleEngine .*/SecRuleEngine On/' \
    -e 's/^SecRequestBodyAccess .*/SecRequestBodyAccess On/' \
    -e "s#^SecAuditLog .*#SecAuditLog $RUN/tmp/modsec_audit.log#" \
    -e "s#^SecTmpDir .*#SecTmpDir $RUN/tmp/#" \
    -e "s#^SecDataDir .*#SecDataDir $RUN/tmp/#" \
    -e 's#^SecUnicodeMapFile unicode.mapping#SecUnicodeMapFile /etc/nginx/unicode.mapping#' \
    -e 's/^SecStatusEngine .*/SecStatusEngine Off/' \
    -e 's/^SecRequestBodyNoFilesLimit .*/SecRequestBodyNoFilesLimit 2097152/' \
    /etc/nginx/modsecurity.conf >"$RUN/base.conf"

crs_version() {  # 4280 -> 4.28.0, 334 -> 3.3.4
  local v
  v=$(grep -o 'tx.crs_setup_version=[0-9]*' "$1" | head -1 | cut -d= -f2)
  if [ "${#v}" -eq 3 ]; then echo "${v:0:1}.${v:1:1}.${v:2:1}"; else echo "${v:0:1}.${v:1:2}.${v:3:1}"; fi
}
V4_VER=""; V33_VER=""
[ ! -f "$V4/crs-setup.conf.example" ] || V4_VER=$(crs_version "$V4/crs-setup.conf.example")
[ ! -f "$V33_SETUP" ] || V33_VER=$(crs_version "$V33_SETUP")

rules_file() {  # name setup rules_dir paranoia_setvar
  local f=$RUN/$1.rules.conf
  {
    echo "Include $RUN/base.conf"
    echo "Include $2"
    echo "SecAction \"id:900000,phase:1,pass,nolog,t:none,$4\""
    echo "Include $3/*.conf"
  } >"$f"
  echo "$f"
}

cfg_label() {
  case "$1" in
    bare) echo "bare nginx" ;;
    ward-v4-pl1) echo "Ward + CRS $V4_VER PL1" ;;
    ward-v4-pl4) echo "Ward + CRS $V4_VER PL4" ;;
    ward-v33-pl1) echo "Ward + CRS $V33_VER PL1" ;;
    modsec-v33-pl1) echo "ModSecurity v3 + CRS $V33_VER PL1" ;;
  esac
}

cfg_directives() {  # prints "LOAD<TAB>WAF" for a configuration
  local rf
  case "$1" in
    bare) printf '\t\n' ;;
    ward-v4-pl1) rf=$(rules_file "$1" "$V4/crs-setup.conf.example" "$V4/rules" "setvar:tx.blocking_paranoia_level=1")
                 printf 'load_module %s;\tward on; ward_rules_file %s;\n' "$MODULE" "$rf" ;;
    ward-v4-pl4) rf=$(rules_file "$1" "$V4/crs-setup.conf.example" "$V4/rules" "setvar:tx.blocking_paranoia_level=4")
                 printf 'load_module %s;\tward on; ward_rules_file %s;\n' "$MODULE" "$rf" ;;
    ward-v33-pl1) rf=$(rules_file "$1" "$V33_SETUP" "$V33_RULES" "setvar:tx.paranoia_level=1")
                  printf 'load_module %s;\tward on; ward_rules_file %s;\n' "$MODULE" "$rf" ;;
    modsec-v33-pl1) rf=$(rules_file "$1" "$V33_SETUP" "$V33_RULES" "setvar:tx.paranoia_level=1")
                    printf 'load_module %s;\tmodsecurity on; modsecurity_rules_file %s;\n' "$MODSEC_SO" "$rf" ;;
  esac
}

# --- nginx instances -------------------------------------------------------------------
write_conf() {  # template prefix port affinity load waf
  mkdir -p "$2/logs"
  sed -e "s|@USER@|$USER_LINE|" -e "s|@PREFIX@|$2|g" -e "s|@PORT@|$3|g" \
      -e "s|@UPSTREAM_PORT@|$UP_PORT|g" -e "s|@AFFINITY@|$4|g" \
      -e "s|@LOAD@|$5|" -e "s|@WAF@|$6|" "$1" >"$2/nginx.conf"
}

NGX_PID=""
start_nginx() {  # prefix port -> sets NGX_PID (master) and WORKER
  local prefix=$1 port=$2 i
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
    echo "port $port is already in use (set WARD_BENCH_PORT)" >&2; exit 1
  fi
  "$NGINX" -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" -g 'daemon off;' \
    2>>"$prefix/logs/stderr.log" &
  NGX_PID=$!
  PIDS+=("$NGX_PID")
  WORKER=""
  for ((i = 0; i < 1200; i++)); do   # up to 120 s: rule sets load before the listen socket opens
    kill -0 "$NGX_PID" 2>/dev/null || { echo "nginx failed to start:" >&2; cat "$prefix/logs/stderr.log" "$prefix/logs/error.log" >&2; exit 1; }
    WORKER=$(pgrep -P "$NGX_PID" | head -1 || true)
    if [ -n "$WORKER" ] && curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/__bench_ready"; then
      return 0
    fi
    sleep 0.1
  done
  echo "nginx did not come up on port $port" >&2; exit 1
}

stop_nginx() {  # master pid
  local pid=$1 keep=() p
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# CPU time (user + system, in clock ticks) the process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
TICK=$(getconf CLK_TCK)

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
# Waits (at most 3 s) until the worker used no CPU for 0.2 s: when wrk exits, the requests
# it had in flight (16 x 1 MB forms) are still being processed and hold their memory.
wait_idle() {
  local a b i
  a=$(cpu_ticks "$1")
  for ((i = 0; i < 15; i++)); do
    sleep 0.2; b=$(cpu_ticks "$1")
    [ "$a" != "$b" ] || return 0
    a=$b
  done
  return 1
}
now_ns() { date +%s%N; }

load_time_ms() {  # prefix: best of LOAD_REPEAT `nginx -t` runs (parse + compile the rules)
  local best="" t0 t1 ms i
  for ((i = 0; i < LOAD_REPEAT; i++)); do
    t0=$(now_ns)
    "$NGINX" -t -q -p "$1/" -c "$1/nginx.conf" -e "$1/logs/error.log" >/dev/null 2>&1 \
      || { echo "nginx -t failed for $1:" >&2; "$NGINX" -t -p "$1/" -c "$1/nginx.conf" -e "$1/logs/error.log" >&2 || true; exit 1; }
    t1=$(now_ns)
    ms=$(( (t1 - t0) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  echo "$best"
}

curl_status() {  # port method path body ctype
  local args=(-s -o /dev/null -w '%{http_code}' --max-time 60 "${HDRS[@]}" -H 'Expect:' -X "$2")
  [ -z "$4" ] || args+=(--data-binary "@$4" -H "Content-Type: $5")
  curl "${args[@]}" "http://127.0.0.1:$1$3" || echo "000"
}

# wrk output -> "rps p50_ms p99_ms requests non2xx errors"
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
      if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v + 0 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    / requests in / { req = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
    END { printf "%s %.2f %.2f %s %d %d\n", (rps == "" ? 0 : rps), p50, p99, (req == "" ? 0 : req), non2xx, err }'
}

fmt_rps() {  # 40332.7 -> 40,333; below 100 one decimal
  awk -v r="$1" 'BEGIN {
    if (r < 100) { printf "%.1f\n", r; exit }
    s = sprintf("%.0f", r); out = "";
    while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
    print s out }'
}

run_wrk() {  # port method path body ctype -> raw wrk output
  local cmd=(taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 30s --latency "${HDRS[@]}")
  if [ -n "$4" ]; then
    cmd+=(-s "$BENCH/body.lua" "http://127.0.0.1:$1$3" -- "$2" "$4" "$5")
  else
    cmd+=("http://127.0.0.1:$1$3")
  fi
  "${cmd[@]}"
}

# --- run -------------------------------------------------------------------------------
DATE=$(date '+%Y-%m-%d %H:%M:%S %Z')
STAMP=$(date '+%Y-%m-%d-%H%M%S')
MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$REPO" diff --quiet HEAD 2>/dev/null || REV+="+dirty"
NGINX_VER=$("$NGINX" -v 2>&1 | sed 's#.*nginx/##')
MODSEC_VER=$(dpkg-query -W -f='${Version}' libmodsecurity3 2>/dev/null || echo "?")

up_prefix=$RUN/upstream
write_conf "$BENCH/upstream.conf.in" "$up_prefix" "$UP_PORT" "$(cpu_mask "$WRK_CPU")" "" ""
start_nginx "$up_prefix" "$UP_PORT"
UP_PID=$NGX_PID
log "upstream on 127.0.0.1:$UP_PORT (pid $UP_PID)"

median() {  # values... -> their median ("-" when none is a number)
  printf '%s\n' "$@" | awk '$1 ~ /^[0-9.]+$/' | sort -g \
    | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
            else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Every configuration up at once, each on its own port (the upstream has PORT + 1).
declare -A CFG_PORT=() CFG_MASTER=() CFG_WORKER=() CFG_LOAD=()
SQLI=()       # SQLi verdict lines
FAIL=0
n=0
for cfg in "${CFG_LIST[@]}"; do
  label=$(cfg_label "$cfg")
  IFS=$'\t' read -r load waf < <(cfg_directives "$cfg")
  prefix=$RUN/$cfg
  port=$((PORT + 2 + n)); n=$((n + 1))
  write_conf "$BENCH/nginx.conf.in" "$prefix" "$port" "$(cpu_mask "$NGINX_CPU")" "$load" "$waf"
  log "$label: nginx -t"
  CFG_LOAD[$cfg]=$(load_time_ms "$prefix")
  start_nginx "$prefix" "$port"
  CFG_PORT[$cfg]=$port; CFG_MASTER[$cfg]=$NGX_PID; CFG_WORKER[$cfg]=$WORKER
  log "$label: port $port, worker $WORKER, config load ${CFG_LOAD[$cfg]} ms"

  # Verdicts before any load: the SQLi must be blocked, benign requests must pass.
  code=$(curl_status "$port" GET "$SQLI_PATH" "" "")
  if [ "$cfg" = bare ]; then
    SQLI+=("| $label | $code | (no WAF) |")
  elif [ "$code" = 403 ]; then
    SQLI+=("| $label | $code | blocked |")
  else
    SQLI+=("| $label | $code | **NOT BLOCKED** |"); FAIL=1
  fi
done

declare -A RPS=() P50=() P99=() REQS=() NON2XX=() ERRS=() CPU_US=() STATUS=() RSS0=() RSS1=() RESTARTED=()
for sc in "${SCENARIOS[@]}"; do
  IFS='|' read -r key slabel method path body ctype <<<"$sc"
  for cfg in "${CFG_LIST[@]}"; do
    STATUS[$cfg,$key]=$(curl_status "${CFG_PORT[$cfg]}" "$method" "$path" "$body" "$ctype")
    RSS0[$cfg,$key]=$(rss_mb "${CFG_WORKER[$cfg]}")
  done
  for ((r = 0; r < ROUNDS; r++)); do
    # Each round starts one configuration later: none is always first after a pause.
    for ((c = 0; c < ${#CFG_LIST[@]}; c++)); do
      cfg=${CFG_LIST[$(( (c + r) % ${#CFG_LIST[@]} ))]}
      worker=${CFG_WORKER[$cfg]}
      log "$(cfg_label "$cfg"): $slabel, round $((r + 1))/$ROUNDS (${DURATION}s, check ${STATUS[$cfg,$key]})"
      cpu0=$(cpu_ticks "$worker")
      read -r rps p50 p99 reqs non2xx errs < <(run_wrk "${CFG_PORT[$cfg]}" "$method" "$path" "$body" "$ctype" | parse_wrk)
      cpu1=$(cpu_ticks "$worker")
      if ! wait_idle "$worker"; then
        # Still working through the requests wrk left in flight (ModSecurity's 1 MB
        # forms, minutes of CPU): it would take the core from the next runs. Restarted,
        # its memory read first.
        log "$(cfg_label "$cfg"): still busy 3 s after wrk; restarting it"
        RSS1[$cfg,$key]=$(rss_mb "$worker"); RESTARTED[$cfg,$key]=1
        stop_nginx "${CFG_MASTER[$cfg]}"
        start_nginx "$RUN/$cfg" "${CFG_PORT[$cfg]}"
        CFG_MASTER[$cfg]=$NGX_PID; CFG_WORKER[$cfg]=$WORKER
      fi
      # The worker's own CPU per request: unlike req/s, not lowered by other processes
      # taking the worker's core, nor raised by an idle wrk/upstream core.
      CPU_US[$cfg,$key,$r]=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$TICK" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.0f", (b - a) / t * 1e6 / n; else print "-" }')
      RPS[$cfg,$key,$r]=$rps; REQS[$cfg,$key,$r]=$reqs
      P50[$cfg,$key,$r]=$p50; P99[$cfg,$key,$r]=$p99
      NON2XX[$cfg,$key,$r]=$non2xx; ERRS[$cfg,$key,$r]=$errs
    done
  done
  for cfg in "${CFG_LIST[@]}"; do
    [ -n "${RSS1[$cfg,$key]:-}" ] || RSS1[$cfg,$key]=$(rss_mb "${CFG_WORKER[$cfg]}")
  done
done
for cfg in "${CFG_LIST[@]}"; do stop_nginx "${CFG_MASTER[$cfg]}"; done
stop_nginx "$UP_PID"

# --- table: medians over the rounds ------------------------------------------------------
ROWS=()
for cfg in "${CFG_LIST[@]}"; do
  label=$(cfg_label "$cfg")
  first=1
  for sc in "${SCENARIOS[@]}"; do
    IFS='|' read -r key slabel method path body ctype <<<"$sc"
    rs=() ratios=() cpus=() p50s=() p99s=(); total=0; non2xx=0; errs=0
    for ((r = 0; r < ROUNDS; r++)); do
      rs+=("${RPS[$cfg,$key,$r]}"); cpus+=("${CPU_US[$cfg,$key,$r]}")
      total=$((total + REQS[$cfg,$key,$r])); non2xx=$((non2xx + NON2XX[$cfg,$key,$r])); errs=$((errs + ERRS[$cfg,$key,$r]))
      [ "${REQS[$cfg,$key,$r]}" -eq 0 ] || { p50s+=("${P50[$cfg,$key,$r]}"); p99s+=("${P99[$cfg,$key,$r]}"); }
      # Each round's ratio to bare in the same round.
      if [ -n "${RPS[bare,$key,$r]:-}" ]; then
        ratios+=("$(awk -v a="${RPS[$cfg,$key,$r]}" -v b="${RPS[bare,$key,$r]}" 'BEGIN { if (b > 0) printf "%.4f", 100 * a / b }')")
      fi
    done
    ratio=$(median "${ratios[@]+"${ratios[@]}"}")
    [ "$ratio" = "-" ] || ratio=$(awk -v x="$ratio" 'BEGIN { printf (x < 1 ? "%.2f%%" : "%.1f%%"), x }')
    rps=$(median "${rs[@]}"); cpu_us=$(median "${cpus[@]}")
    [ "$cpu_us" = "-" ] || cpu_us=$(printf '%.0f' "$cpu_us")
    p50=$(median "${p50s[@]+"${p50s[@]}"}"); p99=$(median "${p99s[@]+"${p99s[@]}"}")
    status=${STATUS[$cfg,$key]}
    note="$status"
    [ "$status" = 200 ] || note="**$status**"
    [ "$non2xx" -eq 0 ] || note+=", $non2xx non-2xx"
    [ "$errs" -eq 0 ] || note+=", $errs socket errors"
    [ "$total" -gt 0 ] || note+=", none completed in $((DURATION * ROUNDS)) s"
    [ -z "${RESTARTED[$cfg,$key]:-}" ] || note+=", restarted: busy 3 s after a run (RSS then)"
    lt=""; [ "$first" = 0 ] || lt="${CFG_LOAD[$cfg]}"
    cl=""; [ "$first" = 0 ] || cl="$label"
    ROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s → %s | %s |' \
      "$cl" "$slabel" "$(fmt_rps "$rps")" "$ratio" "$cpu_us" "$p50" "$p99" "$note" "${RSS0[$cfg,$key]}" "${RSS1[$cfg,$key]}" "$lt")")
    first=0
  done
done

# --- report ----------------------------------------------------------------------------
mkdir -p "$REPO/target/bench"
OUT=$REPO/target/bench/results-$STAMP.md
{
  echo "# Ward benchmark, $DATE"
  echo
  echo "- machine: $ncpu CPUs, $MODEL; load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
  echo "- nginx $NGINX_VER ($NGINX), one worker on CPU $NGINX_CPU; wrk 1 thread, $CONNS connections, ${DURATION} s per scenario and round, on CPU $WRK_CPU with the upstream"
  echo "- $ROUNDS round(s): each scenario ran $ROUNDS time(s) over the configurations in turn (each round starting one configuration later); req/s, worker CPU, p50 and p99 are medians over the rounds, \"vs bare\" the median of each round's ratio to bare nginx in that round"
  echo "- ward $REV${WARD_BENCH_MODULE:+ (module $MODULE)}; ModSecurity $MODSEC_VER (libnginx-mod-http-modsecurity); CRS v4 from $V4, CRS 3.3 from $V33_RULES"
  echo
  echo "| configuration | scenario | req/s | vs bare | worker CPU µs/req | p50 ms | p99 ms | HTTP | worker RSS MB | load ms |"
  echo "|---|---|---:|---:|---:|---:|---:|---|---|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "SQLi GET \`$SQLI_PATH\` (checked with curl before the load):"
  echo
  echo "| configuration | HTTP | verdict |"
  echo "|---|---|---|"
  printf '%s\n' "${SQLI[@]}"
  echo
  echo "worker CPU µs/req: the nginx worker's user + system CPU time during a run divided by wrk's"
  echo "request count (clock-tick resolution). HTTP: status of one curl request before the load (benign requests should get 200), plus wrk's non-2xx"
  echo "and socket-error counts over the rounds. Worker RSS: VmRSS before the scenario's first round → after its last (once the worker is idle). load: best of $LOAD_REPEAT \`nginx -t\`"
  echo "(parses and compiles the rules). Ratios compare runs on the same machine in the same run."
} | tee "$OUT"
log "saved $OUT"
if [ "$FAIL" = 1 ]; then
  log "FAIL: a WAF configuration did not block the SQLi request"
  exit 1
fi
