#!/usr/bin/env python3
"""The uniform tree of `COMMIT=1 scripts/bench.sh`: MANIFESTS Deployments with
three markers each (every one changes), POLICIES semver policies of TAGS tags.

    scripts/bench-uniform-tree.py OUT MANIFESTS POLICIES TAGS
"""
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
