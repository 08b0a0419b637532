#!/usr/bin/env bash
# Coverage-guided fuzzing of every target in fuzz/ (issue #7) with AFL++ through
# `cargo afl` on stable Rust, each for SECONDS (default 20). Fails on any crash or hang.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Seed corpora are generated at run time from ../shared (CRS v4 rule files and regression
# payloads, ModSecurity's transformation/operator vectors) into fuzz/target/seeds/; nothing
# from ../shared is copied into the repository. Findings stay in fuzz/target/afl/<target>/
# (crashes/, hangs/, fuzzer_stats). A summary line per target: executions, crashes, hangs.
# Without cargo-afl (`cargo install --locked cargo-afl`) it falls back to the proptest
# properties with PROPTEST_CASES=20000 and says so.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-20}"
shift || true
all_targets=(seclang body_urlencoded body_multipart body_json body_xml transformations operators request auth)
targets=("${@:-${all_targets[@]}}")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
shared="$root/../shared"
fuzz="$root/fuzz"
work="$fuzz/target"

if ! cargo afl --version >/dev/null 2>&1; then
  echo "fuzz: cargo-afl not installed; running the property tests with PROPTEST_CASES=20000 instead" >&2
  cd "$root"
  PROPTEST_CASES=20000 cargo test --release -p ward-engine -p ward-auth --test properties
  exit $?
fi

echo "fuzz: building the targets (cargo afl build --release)"
(cd "$fuzz" && cargo afl build --release --quiet)

echo "fuzz: generating seed corpora from $shared"
rm -rf "$work/seeds"
python3 - "$shared" "$work/seeds" "${all_targets[@]}" <<'PY'
import glob, json, os, re, sys
shared, out, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
seeds = {t: [] for t in targets}
def add(t, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if data and len(data) <= 4096 and len(seeds[t]) < 400:
        seeds[t].append(data)

# SecLang: single directives and small windows of the CRS v4 rule files.
for f in sorted(glob.glob(os.path.join(shared, "crs/v4/rules/*.conf")))[::2]:
    text = open(f, encoding="utf-8", errors="replace").read()
    rules = [r for r in re.split(r"\n\s*\n", text) if "Sec" in r]
    for r in rules[:12]:
        add("seclang", r)
add("seclang", 'SecRule ARGS "@rx a" "id:1,phase:2,deny,chain"\n  SecRule MATCHED_VAR "@pm x" "t:none"\nSecMarker END\n')

# Requests and bodies from the CRS v4 regression tests.
try:
    import yaml
except ImportError:
    yaml = None
files = sorted(glob.glob(os.path.join(shared, "crs/v4/tests/**/*.yaml"), recursive=True))
for f in files[::3] if yaml else []:
    try:
        doc = yaml.safe_load(open(f, encoding="utf-8", errors="replace")) or {}
    except Exception:
        continue
    for t in doc.get("tests") or []:
        for st in t.get("stages") or []:
            i = (st.get("input") or {})
            data = i.get("data") or ""
            if isinstance(data, list):
                data = "\r\n".join(map(str, data))
            data = str(data)
            hdrs = i.get("headers") or {}
            ct = str(next((v for k, v in hdrs.items() if str(k).lower() == "content-type"), ""))
            req = "%s %s HTTP/1.1\n" % (i.get("method", "GET"), i.get("uri", "/"))
            req += "".join("%s: %s\n" % (k, v) for k, v in hdrs.items()) + "\n" + data
            add("request", req)
            uri = str(i.get("uri", ""))
            if "?" in uri:
                add("body_urlencoded", uri.split("?", 1)[1])
            if not data:
                continue
            if "multipart" in ct:
                add("body_multipart", ct + "\n" + data)
            elif "json" in ct or data.lstrip().startswith(("{", "[")):
                add("body_json", data)
            elif "xml" in ct or data.lstrip().startswith("<"):
                add("body_xml", data)
            else:
                add("body_urlencoded", data)
            add("auth", data[:200])
            add("operators", "1-255\n" + data)

# ModSecurity's transformation and operator vectors.
for f in sorted(glob.glob(os.path.join(shared, "modsec-tests/secrules-language-tests/transformations/*.json"))):
    try:
        for c in json.load(open(f, encoding="utf-8", errors="surrogateescape")):
            add("transformations", str(c.get("input", "")))
    except Exception:
        pass
for f in sorted(glob.glob(os.path.join(shared, "modsec-tests/secrules-language-tests/operators/*.json"))):
    try:
        for c in json.load(open(f, encoding="utf-8", errors="surrogateescape")):
            add("operators", "%s\n%s" % (c.get("param", ""), c.get("input", "")))
    except Exception:
        pass

# Hand seeds where ../shared has nothing.
add("body_json", '{"a":[1,{"b":"c\\u00e9"}],"d":null,"e":true}')
add("body_xml", '<?xml version="1.0"?><a xmlns:ns="urn:x"><b x="1">t&amp;</b><ns:x/><![CDATA[c]]></a>')
add("body_multipart", 'multipart/form-data; boundary=B\n--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--B\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\nContent-Type: text/plain\r\n\r\nfile\r\n--B--\r\n')
add("body_urlencoded", "a=1&b=%41%zz&c[]=x&=&&d")
add("operators", "10.0.0.0/8,::1/128\n10.1.2.3")
add("auth", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OSwicm9sZSI6ImFkbWluIn0.c2ln")
add("auth", "username=alice&password=secret&csrf_token=abc&next=%2Fapp\nabc")
add("auth", '{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"1"}]}')
add("request", "POST /x?a=1 HTTP/1.1\nHost: h\nContent-Type: application/x-www-form-urlencoded\nCookie: a=b; c=d\n\nq=1%27+union+select")
add("transformations", "%3Cscript%3E &#x41; \\x41 /*c*/ a%u0041 ../..//x")
add("seclang", "SecRuleEngine On\nSecAction \"id:1,phase:1,pass,setvar:tx.a=1\"\n")
for t in targets:
    d = os.path.join(out, t)
    os.makedirs(d, exist_ok=True)
    for n, s in enumerate(seeds[t] or [b"x"]):
        open(os.path.join(d, "%04d" % n), "wb").write(s)
    print("  %-16s %d seeds" % (t, len(seeds[t])))
PY

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export AFL_SKIP_CRASHES=1 AFL_AUTORESUME=0 AFL_QUIET=1
status=0
printf '%-16s %12s %10s %8s %6s %8s\n' target executions execs/s crashes hangs corpus
for t in "${targets[@]}"; do
  out="$work/afl/$t"
  rm -rf "$out"
  mkdir -p "$out"
  # -t: a hang is an input taking over 1 s; -m: 4 GB of address space (out-of-memory aborts = crash).
  cargo afl fuzz -i "$work/seeds/$t" -o "$out" -V "$secs" -t 1000 -m 4096 "$fuzz/target/release/$t" \
    >"$out/afl.log" 2>&1 || { echo "fuzz: afl-fuzz failed for $t (see $out/afl.log)"; tail -5 "$out/afl.log"; status=1; continue; }
  stats="$out/default/fuzzer_stats"
  get() { awk -F' *: *' -v k="$1" '$1==k {print $2}' "$stats"; }
  crashes=$(get saved_crashes); hangs=$(get saved_hangs)
  printf '%-16s %12s %10s %8s %6s %8s\n' "$t" "$(get execs_done)" "$(get execs_per_sec)" "$crashes" "$hangs" "$(get corpus_count)"
  if [ "${crashes:-0}" != 0 ] || [ "${hangs:-0}" != 0 ]; then
    echo "fuzz: $t: findings in $out/default/crashes and $out/default/hangs"
    status=1
  fi
done
exit $status
