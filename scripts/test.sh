#!/usr/bin/env bash
# The whole test suite, with its own set-up: formatting, lints, the module
# graph (no import cycles, layering kept: scripts/check-imports.py), then every unit,
# conformance, end-to-end and real-registry test. Needs a Rust toolchain;
# installs the registry the tests run (Debian's docker-registry, and
# htpasswd from apache2-utils) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker-registry >/dev/null || ! command -v htpasswd >/dev/null; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq docker-registry apache2-utils >/dev/null
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --check
python3 scripts/check-imports.py
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
