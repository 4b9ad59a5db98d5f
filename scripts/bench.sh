#!/usr/bin/env bash
# Benchmark: `image-update run --dry-run` over a generated tree of manifests
# with markers, answered from a registry snapshot, timed beside
# `grep -rc '"$imagepolicy"'` over the same tree. Ratios, not absolute times,
# are what to compare on a small, noisy machine.
#
#   scripts/bench.sh [MANIFESTS] [POLICIES] [TAGS_PER_REPOSITORY] [RUNS]
#
# With COMMIT=1 it times `run --commit` instead, against a plain `run` of the
# same tree, in a fresh git repository where every manifest changes (the
# hardening issue's 5,000-file case: `COMMIT=1 scripts/bench.sh 5000`).
set -euo pipefail

manifests=${1:-1000}
policies=${2:-100}
tags=${3:-300}
runs=${4:-7}

cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/image-update

work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
python3 - "$work" "$manifests" "$policies" "$tags" <<'PY'
import json, os, sys
work, manifests, policies, tags = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tree = os.path.join(work, "tree")
os.makedirs(os.path.join(tree, "flux-system"))
docs, repos = [], {}
for p in range(policies):
    image = f"registry.example.com/team{p % 10}/service-{p}"
    docs.append(f"""apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: svc-{p}
  namespace: flux-system
spec:
  image: {image}
  interval: 5m
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: svc-{p}
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: svc-{p}
  policy:
    semver:
      range: ">=1.0.0 <{2 + p % 3}.0.0"
""")
    repos[image] = {"tags": [f"{1 + t // 100}.{(t // 10) % 10}.{t % 10}" for t in range(tags)] + ["latest", "main"]}
with open(os.path.join(tree, "flux-system", "policies.yaml"), "w") as f:
    f.write("---\n".join(docs))
for m in range(manifests):
    d = os.path.join(tree, "apps", f"team-{m % 20}", f"app-{m}")
    os.makedirs(d, exist_ok=True)
    p, q = m % policies, (m * 7 + 3) % policies
    with open(os.path.join(d, "deployment.yaml"), "w") as f:
        f.write(f"""# generated manifest {m}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{m}
  namespace: team-{m % 20}
  labels:
    app.kubernetes.io/name: app-{m}
    app.kubernetes.io/part-of: bench
spec:
  replicas: {1 + m % 3}
  selector:
    matchLabels:
      app.kubernetes.io/name: app-{m}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-{m}
    spec:
      containers:
        - name: main
          image: registry.example.com/team{p % 10}/service-{p}:1.0.0 # {{"$imagepolicy": "flux-system:svc-{p}"}}
          ports:
            - containerPort: 8080
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
        - name: sidecar
          # {{"$imagepolicy": "flux-system:svc-{q}:name"}}
          image: registry.example.com/team{q % 10}/service-{q}
          env:
            - name: SIDECAR_TAG
              value: "1.0.0" # {{"$imagepolicy": "flux-system:svc-{q}:tag"}}
""")
    with open(os.path.join(d, "service.yaml"), "w") as f:
        f.write(f"apiVersion: v1\nkind: Service\nmetadata:\n  name: app-{m}\nspec:\n  ports:\n    - port: 80\n      targetPort: 8080\n")
with open(os.path.join(work, "snapshot.json"), "w") as f:
    json.dump({"version": 1, "repositories": repos}, f)
PY

tree=$work/tree
snapshot=$work/snapshot.json

if [ -n "${COMMIT:-}" ]; then
  export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
  git -C "$tree" init -q -b main
  git -C "$tree" config gc.auto 0
  git -C "$tree" add -A
  git -C "$tree" -c user.name=bench -c user.email=bench@example.invalid commit -q -m initial
  cp -a "$tree" "$work/plain"
  ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
  plain_ms=$(ms "$bin" run "$work/plain" --registry-snapshot "$snapshot")
  commit_ms=$(ms "$bin" run "$tree" --registry-snapshot "$snapshot" --commit --author "Bench <bench@example.invalid>")
  changed=$(git -C "$tree" diff-tree --no-commit-id --name-only -r HEAD | wc -l)
  echo "image-update run:          ${plain_ms} ms"
  echo "image-update run --commit: ${commit_ms} ms ($changed files in the commit)"
  exit 0
fi
markers=$(grep -rc '"$imagepolicy"' "$tree" | awk -F: '{s += $NF} END {print s}')
files=$(find "$tree" -type f | wc -l)
echo "tree: $manifests marked manifests, $files files, $markers markers; $policies policies x $tags tags"

# Median wall time in milliseconds of a command over $runs runs (after one warm-up).
median_ms() {
  "$@" >/dev/null 2>&1 || true
  local times=()
  for _ in $(seq "$runs"); do
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

run_ms=$(median_ms "$bin" run "$tree" --dry-run --registry-snapshot "$snapshot" --output json)
grep_ms=$(median_ms grep -rc '"$imagepolicy"' "$tree")
changes=$("$bin" run "$tree" --dry-run --registry-snapshot "$snapshot" --output json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["changes"]))')

echo "image-update run --dry-run: ${run_ms} ms (median of $runs; $changes changes planned)"
echo "grep -rc '\"\$imagepolicy\"':  ${grep_ms} ms (median of $runs)"
awk -v a="$run_ms" -v b="$grep_ms" 'BEGIN {
  if (b < 1) b = 1
  r = a / b
  printf "ratio: %.2fx grep (target: within 3x)\n", r
}'
