#!/usr/bin/env bash
# The whole test suite, with its own set-up: formatting, lints, then every
# unit, conformance and end-to-end test. Needs only a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
