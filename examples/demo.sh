#!/usr/bin/env bash
# `make demo` (for now): start a private etcd, apply every manifest in examples/ with the gingham
# CLI, and print the resources back. The build is done by make before this runs.
set -euo pipefail
cd "$(dirname "$0")/.."

gingham() { node dist/cli/main.js "$@"; }

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

workdir=$(mktemp -d /tmp/gingham-demo.XXXXXX)
etcd_pid=""
cleanup() {
  if [ -n "$etcd_pid" ] && kill -0 "$etcd_pid" 2>/dev/null; then
    kill "$etcd_pid" && wait "$etcd_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

client_port=$(free_port)
peer_port=$(free_port)
export ETCD_ENDPOINTS="http://127.0.0.1:${client_port}"
echo "==> starting etcd on ${ETCD_ENDPOINTS} (data in ${workdir})"
etcd --name demo --data-dir "$workdir/etcd" \
  --listen-client-urls "$ETCD_ENDPOINTS" --advertise-client-urls "$ETCD_ENDPOINTS" \
  --listen-peer-urls "http://127.0.0.1:${peer_port}" --initial-advertise-peer-urls "http://127.0.0.1:${peer_port}" \
  --initial-cluster "demo=http://127.0.0.1:${peer_port}" --log-level error >"$workdir/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 1 100); do
  node -e 'fetch(process.argv[1] + "/health").then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
    "$ETCD_ENDPOINTS" && break
  kill -0 "$etcd_pid" 2>/dev/null || { echo "etcd failed to start:"; cat "$workdir/etcd.log"; exit 1; }
  sleep 0.1
done

gingham version

for f in examples/*.yaml; do
  echo "==> gingham apply -f $f"
  gingham apply -f "$f"
done

echo "==> gingham get ippools -o wide"
gingham get ippools -o wide
echo "==> gingham get nodes -o wide"
gingham get nodes -o wide
echo "==> gingham get globalnetworkpolicies -o wide"
gingham get gnp -o wide
echo "==> gingham get networkpolicies.networking.k8s.io -A"
gingham get networkpolicies.networking.k8s.io -A
echo "==> gingham get bgpconfiguration default -o yaml"
gingham get bgpconfig default -o yaml
echo "==> gingham label node node-a zone=z1"
gingham label node node-a zone=z1
gingham get node node-a -o yaml

echo "==> an invalid manifest is rejected and nothing is written:"
if printf 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: broken}\nspec: {cidr: 10.99.0.0/16, blockSize: 40}\n' | gingham apply -f -; then
  echo "expected the invalid pool to be rejected"; exit 1
fi
echo "==> demo done"
