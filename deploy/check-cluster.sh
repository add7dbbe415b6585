#!/usr/bin/env bash
# Checks deploy/kubernetes against a real API server (Kubernetes 1.26 or later): what npm test
# cannot, since it has no cluster. Run it by hand on a scratch cluster, with kubectl pointing at it:
#   BERTH_IMAGE=registry.example.com/berth/berth:0.1.0 API_SERVER_CIDR=10.0.0.10/32 deploy/check-cluster.sh
# BERTH_IMAGE: berth's image, pullable by the nodes. API_SERVER_CIDR: where the API server's
# connections to the webhook come from (deploy/README.md, "Who may call the webhook").
# It installs berth (namespace berth) and uses a namespace berth-check, which it deletes at the end.
# It checks: every manifest passes server-side validation (cert-manager's only where cert-manager
# is installed, webhook-certificate.sh otherwise); the DaemonSet's pods are admitted under the
# namespace's Pod Security labels and would not be under baseline; the webhook rewrites and pins a
# pod; no Deployment owns more ReplicaSets than its rollouts explain (a skipped Deployment, one
# admitted unpinned then scaled and relabelled, one whose image is changed once); berth's port is
# not reachable over the pod network, nor the webhook from a pod.
set -uo pipefail
: "${BERTH_IMAGE:?set BERTH_IMAGE to berth's image}" "${API_SERVER_CIDR:?set API_SERVER_CIDR to the API server's source addresses}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
cleanup() { kubectl delete namespace berth-check --ignore-not-found --wait=false >/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The manifests as kustomize builds them, with this cluster's image and API server addresses.
kubectl kustomize "$here/kubernetes" \
  | sed -e "s#image: registry.example.com/berth/berth:0.1.0#image: $BERTH_IMAGE#" \
        -e "/name: berth-webhook$/,/^---/s#cidr: 192.0.2.0/24#cidr: $API_SERVER_CIDR#" > "$work/berth.yaml"

echo "== server-side validation"
kubectl apply -f "$here/kubernetes/namespace.yaml" >/dev/null && ok "namespace.yaml applies"
if kubectl apply --dry-run=server -f "$work/berth.yaml" > "$work/dry-run.txt" 2>&1; then ok "every manifest of deploy/kubernetes passes server-side dry run"; else fail "dry run: $(cat "$work/dry-run.txt")"; fi
if kubectl get crd certificates.cert-manager.io >/dev/null 2>&1; then
  if kubectl apply --dry-run=server -f "$here/kubernetes/cert-manager/certificate.yaml" >/dev/null; then ok "cert-manager/ applies (cert-manager installed)"; else fail "cert-manager/ does not apply"; fi
  kubectl apply -f "$here/kubernetes/cert-manager/certificate.yaml" >/dev/null
else
  ok "cert-manager not installed: cert-manager/ skipped, webhook-certificate.sh used"
fi
kubectl apply -f "$work/berth.yaml" >/dev/null || fail "apply"
kubectl get crd certificates.cert-manager.io >/dev/null 2>&1 || "$here/kubernetes/webhook-certificate.sh" --apply "$work/certificate" >/dev/null || fail "webhook-certificate.sh --apply"

echo "== Pod Security"
kubectl -n berth rollout status ds/berth --timeout=300s >/dev/null && ok "the DaemonSet's pods run under the namespace's labels" || fail "DaemonSet not rolled out"
kubectl -n berth rollout status deploy/berth-webhook --timeout=300s >/dev/null && ok "the webhook runs" || fail "webhook Deployment not rolled out"
if kubectl get events -n berth --field-selector reason=FailedCreate -o jsonpath='{.items[*].message}' | grep -q PodSecurity; then fail "Pod Security refused a pod in berth"; else ok "no pod refused by Pod Security"; fi
baseline="$(kubectl label --dry-run=server --overwrite namespace berth pod-security.kubernetes.io/enforce=baseline 2>&1)"
if echo "$baseline" | grep -q "berth-"; then ok "under baseline the DaemonSet's pods would be refused, as namespace.yaml says: $(echo "$baseline" | grep -o 'host[A-Za-z]*' | sort -u | tr '\n' ' ')"; else fail "expected baseline to refuse the DaemonSet: $baseline"; fi

echo "== the webhook"
kubectl create namespace berth-check >/dev/null
image="$(kubectl -n berth-check run probe --image=busybox:1.36 --restart=Never --dry-run=server -o jsonpath='{.spec.containers[0].image}')"
if [[ "$image" == localhost:5000/docker.io/library/busybox:1.36@sha256:* ]]; then ok "a pod is rewritten and pinned: $image"; else fail "pod image is $image: is the webhook reachable from the API server (API_SERVER_CIDR)?"; fi

echo "== ReplicaSets: no Deployment owns more than its rollouts explain"
replicasets() { kubectl -n berth-check get rs -l "app=$1" -o name | wc -l; }
collisions() { kubectl -n berth-check get deploy "$1" -o jsonpath='{.status.collisionCount}'; }
kubectl -n berth-check apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: skipped, labels: {berth.dev/admission: skip}}
spec:
  selector: {matchLabels: {app: skipped}}
  template:
    metadata: {labels: {app: skipped}}
    spec: {containers: [{name: c, image: "busybox:1.36", command: [sleep, "3600"]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: unpinned}
spec:
  selector: {matchLabels: {app: unpinned}}
  template:
    metadata: {labels: {app: unpinned}}
    spec: {containers: [{name: c, image: "busybox:berth-check-no-such-tag", command: [sleep, "3600"]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: rolled}
spec:
  selector: {matchLabels: {app: rolled}}
  template:
    metadata: {labels: {app: rolled}}
    spec: {containers: [{name: c, image: "busybox:1.36", command: [sleep, "3600"]}]}
YAML
sleep 15
kubectl -n berth-check scale deploy/unpinned --replicas=2 >/dev/null
kubectl -n berth-check annotate deploy/unpinned team.example/owner=check >/dev/null
kubectl -n berth-check label deploy/unpinned team.example/tier=check >/dev/null
kubectl -n berth-check set image deploy/rolled c=busybox:1.35 >/dev/null
sleep 30
for name in skipped unpinned; do
  if [ "$(replicasets "$name")" -eq 1 ] && [ -z "$(collisions "$name")" ]; then ok "$name: 1 ReplicaSet after 45 s"; else fail "$name: $(replicasets "$name") ReplicaSets, collisionCount $(collisions "$name")"; fi
done
if [ "$(replicasets rolled)" -eq 2 ] && [ -z "$(collisions rolled)" ]; then ok "rolled: 2 ReplicaSets for one image change"; else fail "rolled: $(replicasets rolled) ReplicaSets, collisionCount $(collisions rolled)"; fi
template="$(kubectl -n berth-check get deploy unpinned -o jsonpath='{.spec.template.spec.containers[0].image}')"
[[ "$template" != *@sha256:* ]] && ok "unpinned: a scale and metadata changes pinned nothing ($template)" || fail "unpinned was re-pinned: $template"
skip_label="$(kubectl -n berth-check get deploy skipped -o jsonpath='{.spec.template.metadata.labels.berth\.dev/admission}')"
[ "$skip_label" = skip ] && ok "skipped: its template carries the skip label" || fail "skipped: template label is '$skip_label'"

echo "== who can reach berth"
node_ip="$(kubectl get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')"
if kubectl -n berth-check run reach --image=busybox:1.36 --restart=Never --rm -i --quiet --labels=berth.dev/admission=skip -- wget -q -T 5 -O- "http://$node_ip:5000/v2/" >/dev/null 2>&1; then fail "berth's registry answers a pod at $node_ip:5000"; else ok "berth's registry does not answer a pod at $node_ip:5000"; fi
# A GET of /admission is answered 405 by berth: any HTTP answer means the pod reached it.
answer="$(kubectl -n berth-check run reach-webhook --image=busybox:1.36 --restart=Never --rm -i --quiet --labels=berth.dev/admission=skip -- wget -T 5 --no-check-certificate -O- https://berth-webhook.berth.svc/admission 2>&1)"
if echo "$answer" | grep -q "HTTP/"; then
  echo "WARN the webhook answers a pod: this cluster's CNI does not enforce NetworkPolicy (use admission.clientCAFile)"
else ok "the webhook does not answer a pod"; fi

echo "== $failures failed"
[ "$failures" -eq 0 ]
