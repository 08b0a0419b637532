#!/usr/bin/env bash
# The test command: prepares the machine (scripts/setup.sh), builds everything once in
# release mode (the integration tests load target/release/libngx_http_ward_module.so
# into /usr/sbin/nginx), runs every test of the workspace, the package test, checks that
# the fuzz targets compile, then both OWASP CRS regression suites through real nginx
# against the ratchet in tests/crs-ratchet.txt.
# Non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --release --workspace
status=0
# --no-fail-fast: report every failing test binary, still exit non-zero.
cargo test --release --workspace --no-fail-fast "$@" || status=1
[ $# -gt 0 ] || tests/package.sh || status=1   # .deb/.rpm built, installed, removed (root only; WARD_PACKAGE_TESTS=0 skips)
if [ $# -eq 0 ]; then
  # The fuzz targets (their own workspace, run by scripts/fuzz.sh) must keep compiling
  # against the engine's API; checking them needs no AFL++.
  echo "== fuzz targets compile (cargo check, fuzz/)"
  cargo check --manifest-path fuzz/Cargo.toml --bins || status=1
fi
if [ $# -eq 0 ]; then
  if [ -d "$root/../shared/crs" ]; then
    for suite in v4 v3.3; do
      echo "== CRS $suite suite through nginx with Ward (ratchet: tests/crs-ratchet.txt)"
      WARD_PREBUILT=1 scripts/crs-tests.sh --engine ward --suite "$suite" --jobs 4 || status=1
    done
  else
    echo "SKIPPED: CRS suites (../shared/crs not found next to the checkout)" >&2
  fi
fi
exit $status
