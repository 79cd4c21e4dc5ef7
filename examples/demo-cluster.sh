#!/usr/bin/env bash
# `make demo`: a two-node Gingham cluster on this machine, built from network namespaces.
#
#   fabric netns (bridge br0, 10.99.0.1 = the "upstream router")
#     ├── node-1 netns  eth0 10.99.0.11   gingham agent (BGP mesh, routes, nftables)
#     │     └── pod web-1, pod client-1   (created by gingham-cni through the node's agent,
#     │                                    addresses from gingham-ipam)
#     └── node-2 netns  eth0 10.99.0.12   gingham agent
#           └── pod web-2
#
# etcd runs on the host's loopback; agents reach it through a unix-socket forwarder, so nothing
# is configured in the host's own network namespace. gingham-cni runs in agent mode: each node's
# agent serves CNI calls on a socket of its own ($work/cni-NODE.sock; the plugin runs in the
# node's namespace, but files are shared, so each node needs its own path). Everything is
# removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
FAB="ghd${id}-fab"
NODES=(node-1 node-2)
declare -A NS=([node-1]="ghd${id}-n1" [node-2]="ghd${id}-n2")
declare -A NODE_IP=([node-1]=10.99.0.11 [node-2]=10.99.0.12)
PODS=()
PIDS=()
work=$(mktemp -d /tmp/gingham-demo.XXXXXX)
etcd_pid=""

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
gingham() { node "$root/dist/cli/main.js" "$@"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cleanup() {
  set +e
  say "cleaning up"
  for p in "${PODS[@]}"; do
    local node=${p%%/*} pod=${p#*/}
    cni DEL "$node" "$pod" >/dev/null 2>&1
    ip netns del "ghd${id}-${pod}" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  for n in "${NODES[@]}"; do ip netns del "${NS[$n]}" 2>/dev/null; done
  ip netns del "$FAB" 2>/dev/null
  if [ -n "$etcd_pid" ]; then kill "$etcd_pid" 2>/dev/null; wait "$etcd_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timed out after ${secs}s waiting for: $what" >&2
  return 1
}

say "starting etcd on the host's loopback"
port=$(free_port); peer=$(free_port)
export ETCD_ENDPOINTS="http://127.0.0.1:${port}"
etcd --name demo --data-dir "$work/etcd" --listen-client-urls "$ETCD_ENDPOINTS" --advertise-client-urls "$ETCD_ENDPOINTS" \
  --listen-peer-urls "http://127.0.0.1:${peer}" --initial-advertise-peer-urls "http://127.0.0.1:${peer}" \
  --initial-cluster "demo=http://127.0.0.1:${peer}" --log-level error >"$work/etcd.log" 2>&1 &
etcd_pid=$!
wait_for 20 etcd node -e 'fetch(process.argv[1]+"/health").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$ETCD_ENDPOINTS"
node scripts/ns-forward.mjs "unix:$work/etcd.sock" "127.0.0.1:${port}" >"$work/fwd-host.log" 2>&1 &
PIDS+=($!)

say "building the fabric and two nodes (network namespaces)"
ip netns add "$FAB"
ip -n "$FAB" link set lo up
ip -n "$FAB" link add br0 type bridge
ip -n "$FAB" addr add 10.99.0.1/24 dev br0
ip -n "$FAB" link set br0 up
for n in "${NODES[@]}"; do
  ns=${NS[$n]}
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add eth0 type veth peer name "p-$n" netns "$FAB"
  ip -n "$FAB" link set "p-$n" master br0 up
  ip -n "$ns" addr add "${NODE_IP[$n]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via 10.99.0.1
  # Inside the node, etcd is at 127.0.0.1:2379, forwarded over the unix socket.
  # Started with `ip netns exec` directly (not through a shell function) so that $! is the
  # process itself: ip execs node in place, and cleanup kills it by that PID.
  ip netns exec "$ns" node scripts/ns-forward.mjs 127.0.0.1:2379 "unix:$work/etcd.sock" >"$work/fwd-$n.log" 2>&1 &
  PIDS+=($!)
  echo "  $n: ${NODE_IP[$n]} in netns $ns"
done

say "gingham apply -f examples/demo/cluster.yaml  (IP pool, BGP configuration, namespace)"
gingham apply -f examples/demo/cluster.yaml

say "starting one gingham agent per node (BGP full mesh between them; each serves CNI calls on its socket)"
for n in "${NODES[@]}"; do
  ip netns exec "${NS[$n]}" node "$root/dist/cli/main.js" agent --node "$n" --ip "${NODE_IP[$n]}" \
    --etcd-endpoints http://127.0.0.1:2379 --metrics-addr 127.0.0.1:9091 --log-level warn \
    --cni-socket "$work/cni-$n.sock" >"$work/agent-$n.log" 2>&1 &
  PIDS+=($!)
done
for n in "${NODES[@]}"; do
  wait_for 60 "agent on $n ready" in_ns "${NS[$n]}" node -e \
    'fetch("http://127.0.0.1:9091/readyz").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' ||
    { cat "$work/agent-$n.log"; exit 1; }
  wait_for 30 "CNI socket of $n" test -S "$work/cni-$n.sock" || { cat "$work/agent-$n.log"; exit 1; }
  echo "  agent on $n is ready, CNI socket $work/cni-$n.sock"
done

# The CNI plugin as a container runtime calls it: network config on stdin, the rest in env.
# Agent mode: "agent_socket" names the node agent's socket; the plugin (a small static program,
# cni/gingham-cni.c) hands the call to it.
mkdir -p "$work/cni-bin"
ln -s "$root/dist/cni/gingham-cni" "$work/cni-bin/gingham-cni"
ln -s "$root/dist/cni/gingham-ipam.cjs" "$work/cni-bin/gingham-ipam"
cni() { # cni ADD|DEL NODE POD [LABELS]
  local cmd=$1 node=$2 pod=$3 labels=${4:-}
  local conf="{\"cniVersion\":\"1.0.0\",\"name\":\"gingham\",\"type\":\"gingham-cni\",\"agent_socket\":\"$work/cni-$node.sock\",\"nodename\":\"$node\",\"mtu\":1450,\"ipam\":{\"type\":\"gingham-ipam\"}"
  [ -n "$labels" ] && conf+=",\"args\":{\"cni\":{\"labels\":$labels}}"
  conf+="}"
  echo "$conf" | in_ns "${NS[$node]}" env CNI_COMMAND="$cmd" CNI_CONTAINERID="demo-$pod" \
    CNI_NETNS="/var/run/netns/ghd${id}-${pod}" CNI_IFNAME=eth0 CNI_PATH="$work/cni-bin" \
    CNI_ARGS="K8S_POD_NAMESPACE=demo;K8S_POD_NAME=$pod" "$work/cni-bin/gingham-cni"
}
pod_ip() { ip -n "ghd${id}-$1" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1; }

add_pod() { # add_pod NODE POD LABELS
  ip netns add "ghd${id}-$2"
  PODS+=("$1/$2")
  cni ADD "$1" "$2" "$3" >"$work/cni-$2.json"
  echo "  $2 on $1: $(pod_ip "$2")"
}
say "creating pods through gingham-cni in agent mode (gingham-ipam allocates from per-node blocks)"
add_pod node-1 web-1 '[{"key":"app","value":"web"}]'
add_pod node-1 client-1 '[{"key":"app","value":"client"}]'
add_pod node-2 web-2 '[{"key":"app","value":"web"}]'
web1=$(pod_ip web-1); web2=$(pod_ip web-2)

say "inside pod client-1: the 169.254.1.1 gateway trick"
ip -n "ghd${id}-client-1" route

say "BGP: gingham node status (published by the agents to etcd)"
wait_for 60 "BGP session established" bash -c \
  "node '$root/dist/cli/main.js' node status --node node-1 -o json | grep -q Established"
gingham node status --node node-1
gingham node status --node node-2

say "routes on node-1: local pods, its own block blackholed, node-2's block learned by BGP"
wait_for 30 "node-2's block on node-1" bash -c "ip -n ${NS[node-1]} route | grep -q 'via 10.99.0.12'"
ip -n "${NS[node-1]}" route | grep -v '^default' | sed 's/^/  /'

say "gingham ipam show --show-blocks"
gingham ipam show --show-blocks

say "workload endpoints"
gingham get workloadendpoints -n demo -o wide

say "traffic: client-1 (node-1) → web-1 (same node) and → web-2 (across nodes, routed, no overlay)"
ip netns exec "ghd${id}-client-1" ping -c 2 -W 1 "$web1"
ip netns exec "ghd${id}-client-1" ping -c 2 -W 1 "$web2"
ip netns exec "ghd${id}-web-1" ping -c 2 -W 1 "$web2"

say "policy: only pods labelled app=client may reach app=web (gingham apply -f examples/demo/policy-web.yaml)"
gingham apply -f examples/demo/policy-web.yaml
# The agent on node-2 compiles the policy into its nftables table; wait until web-1 is refused.
wait_for 30 "the policy enforced on node-2" bash -c "! ip netns exec ghd${id}-web-1 ping -c 1 -W 1 $web2"
echo "  web-1 → web-2 (denied): no reply, as the policy says"
echo "  client-1 → web-2 (allowed):"
ip netns exec "ghd${id}-client-1" ping -c 2 -W 1 "$web2"

say "gingham policy explain --from demo/web-1 --to demo/web-2 --port 80 --protocol TCP"
gingham policy explain --from demo/web-1 --to demo/web-2 --port 80 --protocol TCP

say "the nftables table the agent on node-2 programmed (first lines)"
# Read it whole first: `| head` would end nft with SIGPIPE, which pipefail turns into a failure.
ruleset=$(ip netns exec "${NS[node-2]}" nft list table inet gingham)
printf '%s\n' "$ruleset" | sed -n '1,40p'
echo "  … ($(printf '%s\n' "$ruleset" | wc -l) lines in all)"

say "demo complete"
