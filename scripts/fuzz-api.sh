#!/usr/bin/env bash
# Schema-driven fuzzing of `image-update serve` with schemathesis: every
# operation in /openapi.json is called with generated valid and invalid
# requests, and the answers are checked against the description (status
# codes, content types, response schemas, no 5xx). Installs schemathesis
# from PyPI (in a virtual environment under target/) when it is missing.
#
#   scripts/fuzz-api.sh [MAX_EXAMPLES=50] [extra schemathesis run arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-50}"
shift || true

if command -v schemathesis >/dev/null; then
  st=schemathesis
else
  venv=target/fuzz-venv
  if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q schemathesis
  fi
  st="$PWD/$venv/bin/schemathesis"
fi

cargo build -q
work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/tree"
git -C "$work/tree" init -q -b main
git -C "$work/tree" -c user.name=fuzz -c user.email=fuzz@example.invalid commit -q --allow-empty -m init
token="fuzz-$RANDOM$RANDOM"
printf '%s\n' "$token" >"$work/token"
target/debug/image-update serve "$work/tree" --listen 127.0.0.1:0 --token-file "$work/token" \
  --commit --author "fuzz <fuzz@example.invalid>" 2>"$work/serve.log" &
server=$!
for _ in $(seq 50); do
  grep -q 'listening on' "$work/serve.log" && break
  sleep 0.1
done
base="$(sed -n 's/.*listening on //p' "$work/serve.log" | head -1)"
[ -n "$base" ] || { cat "$work/serve.log"; exit 1; }
echo "fuzzing $base"

# positive_data_acceptance is left out: the schema cannot say everything the
# validation knows (an image reference must parse, an alias must name an
# image), so some schema-valid bodies are rightly refused with 422.
# Run from the temporary directory, where schemathesis keeps its cache.
(cd "$work" && "$st" run "$base/openapi.json" --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "$examples" "$@")
echo "the tree after fuzzing: $(git -C "$work/tree" rev-list --count HEAD) commits, status:"
git -C "$work/tree" status --porcelain
