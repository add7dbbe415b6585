#!/usr/bin/env bash
# The webhook's serving certificate without cert-manager: a CA of its own (its key is thrown
# away once it has signed) and a certificate for the webhook Service, valid --days (825).
#   ./webhook-certificate.sh [--apply] [--days N] [--namespace berth] [--service berth-webhook] [DIR]
# Writes into DIR (default: a new temporary directory): ca.crt, tls.crt, tls.key, secret.yaml (the
# Secret berth-webhook-tls) and cabundle-patch.json (a JSON patch giving both webhooks of the
# MutatingWebhookConfiguration berth that CA). With --apply it applies both with kubectl (after
# `kubectl apply -k deploy/kubernetes`). Run it again before the certificate expires: berth
# re-reads the Secret within about two minutes, no restart.
set -euo pipefail

apply=false days=825 namespace=berth service=berth-webhook dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --apply) apply=true ;;
    --days) days="$2"; shift ;;
    --namespace) namespace="$2"; shift ;;
    --service) service="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "webhook-certificate.sh: unknown option $1" >&2; exit 2 ;;
    *) dir="$1" ;;
  esac
  shift
done
[ -n "$dir" ] || dir="$(mktemp -d)"
mkdir -p "$dir"
umask 077

host="$service.$namespace.svc"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$days" \
  -subj "/CN=berth webhook CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$host" \
  -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:%s.cluster.local\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n' "$host" "$host" > "$dir/tls.ext"
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -days "$days" -extfile "$dir/tls.ext" -out "$dir/tls.crt" 2>/dev/null
rm -f "$dir/ca.key" "$dir/ca.srl" "$dir/tls.csr" "$dir/tls.ext"

b64() { base64 < "$1" | tr -d '\n'; }
cat > "$dir/secret.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: berth-webhook-tls
  namespace: $namespace
  labels:
    app.kubernetes.io/name: berth
type: kubernetes.io/tls
data:
  ca.crt: $(b64 "$dir/ca.crt")
  tls.crt: $(b64 "$dir/tls.crt")
  tls.key: $(b64 "$dir/tls.key")
YAML
ca="$(b64 "$dir/ca.crt")"
printf '[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"%s"},{"op":"add","path":"/webhooks/1/clientConfig/caBundle","value":"%s"}]\n' "$ca" "$ca" > "$dir/cabundle-patch.json"

if $apply; then
  kubectl apply -f "$dir/secret.yaml"
  kubectl patch mutatingwebhookconfiguration berth --type json --patch-file "$dir/cabundle-patch.json"
else
  echo "wrote $dir/{ca.crt,tls.crt,tls.key,secret.yaml,cabundle-patch.json}; apply them with:" >&2
  echo "  kubectl apply -f $dir/secret.yaml" >&2
  echo "  kubectl patch mutatingwebhookconfiguration berth --type json --patch-file $dir/cabundle-patch.json" >&2
fi
