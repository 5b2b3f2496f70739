#!/usr/bin/env bash
# Checks deploy/ offline, as CI does: the systemd unit (systemd-analyze
# verify), the Kubernetes manifests (kubernetes-validate --strict, and that
# their names and numbers agree with each other and with hookd), and the
# Dockerfile (its build command, run here outside a container).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import kubernetes_validate' 2>/dev/null || python3 -m pip install -q 'kubernetes-validate==1.37.0'

echo "systemd unit" >&2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# verify resolves ExecStart and EnvironmentFile paths: point them at stand-ins.
cp /bin/true "$work/hookd"; touch "$work/credentials.env"
sed -e "s|/usr/local/bin/hookd|$work/hookd|" -e "s|/etc/hookd/credentials.env|$work/credentials.env|" \
  deploy/systemd/hookd.service > "$work/hookd.service"
systemd-analyze verify "$work/hookd.service"

echo "kubernetes manifests" >&2
kubernetes-validate --strict --quiet deploy/kubernetes/{configmap,secret,deployment,pdb,service}.yaml
python3 - <<'PY'
import re, sys, yaml
docs = {}
for name in ["configmap", "secret", "deployment", "pdb", "service", "servicemonitor", "kustomization"]:
    docs[name] = yaml.safe_load(open(f"deploy/kubernetes/{name}.yaml"))
dep, svc, pdb, sm = docs["deployment"], docs["service"], docs["pdb"], docs["servicemonitor"]
labels = dep["spec"]["template"]["metadata"]["labels"]
problems = []
for what, sel in [("service", svc["spec"]["selector"]), ("pdb", pdb["spec"]["selector"]["matchLabels"]),
                  ("deployment", dep["spec"]["selector"]["matchLabels"]),
                  ("servicemonitor", sm["spec"]["selector"]["matchLabels"])]:
    if any(labels.get(k) != v for k, v in sel.items()):
        problems.append(f"{what} selector {sel} does not match the pods' labels {labels}")
c = dep["spec"]["template"]["spec"]["containers"][0]
if c["readinessProbe"]["httpGet"]["path"] != "/readyz" or c["livenessProbe"]["httpGet"]["path"] != "/healthz":
    problems.append("probes must be /readyz (readiness) and /healthz (liveness)")
toml = docs["configmap"]["data"]["hookd.toml"]
grace = int(re.search(r'shutdown_grace = "(\d+)s"', toml).group(1))
if dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] <= grace:
    problems.append("terminationGracePeriodSeconds must be longer than [delivery] shutdown_grace")
ports = {p["name"] for p in svc["spec"]["ports"]}
if sm["kind"] != "ServiceMonitor" or any(e["port"] not in ports for e in sm["spec"]["endpoints"]):
    problems.append("the ServiceMonitor must scrape a port the Service names")
if sm["spec"]["endpoints"][0]["path"] != "/metrics":
    problems.append("the ServiceMonitor must scrape /metrics")
listed = set(docs["kustomization"]["resources"])
if listed != {f"{n}.yaml" for n in docs if n != "kustomization"}:
    problems.append(f"kustomization lists {sorted(listed)}")
for p in problems:
    print("deploy/kubernetes:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

echo "compose files" >&2
python3 - <<'PY'
import re, sys, yaml
problems = []
single = yaml.safe_load(open("deploy/docker/compose.yaml"))
if "redis" not in single["services"] or "hookd" not in single["services"]:
    problems.append("compose.yaml must run redis and hookd")
c = yaml.safe_load(open("deploy/docker/compose.cluster.yaml"))
svc = c["services"]
nodes = {n: s["networks"]["hookd"]["ipv4_address"] for n, s in svc.items() if n.startswith("redis-")}
if len(nodes) != 6:
    problems.append(f"compose.cluster.yaml must run 6 redis nodes, not {len(nodes)}")
created = set(re.findall(r"(\d+\.\d+\.\d+\.\d+):6379", svc["cluster-init"]["command"][-1]))
if created != set(nodes.values()):
    problems.append(f"cluster-init creates {sorted(created)}, the nodes are {sorted(nodes.values())}")
env = svc["hookd"]["environment"]
seeds = set(re.findall(r"redis://(\d+\.\d+\.\d+\.\d+):6379", env["HOOKD__REDIS__URL"]))
if env.get("HOOKD__REDIS__CLUSTER") != "true" or not seeds or not seeds <= set(nodes.values()):
    problems.append("hookd must run in cluster mode with seeds among the nodes")
for p in problems:
    print("deploy/docker:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

echo "Dockerfile" >&2
# Every RUN of the Dockerfile, run here (from the repository root).
grep -E '^RUN ' deploy/docker/Dockerfile | sed 's/^RUN //' | while read -r cmd; do
  echo "  $cmd" >&2
  bash -c "$cmd"
done
./target/release/hookd config --config config/default.toml >/dev/null
echo "deploy/ checks passed" >&2
