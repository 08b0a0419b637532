#!/usr/bin/env bash
# The test command: prepares the machine (scripts/setup.sh), builds everything once in
# release mode (the integration tests load target/release/libngx_http_ward_module.so
# into /usr/sbin/nginx), then runs every test of the workspace. Non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --release --workspace
# --no-fail-fast: report every failing test binary, still exit non-zero.
cargo test --release --workspace --no-fail-fast "$@"
