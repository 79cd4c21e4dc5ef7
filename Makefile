# The README's two commands: `make demo` and `make test`, as root on Debian 12.
# Both install what is missing first (apt packages, then npm packages from the lockfile).

SHELL := /bin/bash
APT_PACKAGES := etcd-server etcd-client nftables iproute2 bird2 gobgpd frr iperf3 \
	podman runc containernetworking-plugins busybox-static iputils-ping gcc libc6-dev
# A command (or file) per package proves it is installed without asking dpkg for each one.
# (gcc and libc6-dev build gingham-cni, the CNI plugin's small static C client.)
APT_PROBES := etcd etcdctl nft ip bird gobgpd /usr/lib/frr/bgpd iperf3 podman runc \
	/usr/lib/cni/host-local /bin/busybox ping cc /usr/include/stdio.h

.PHONY: all deps apt npm build check lint typecheck test test-unit test-integration demo demo-resources bench clean

all: build

deps: apt npm

apt:
	@missing=0; for p in $(APT_PROBES); do command -v $$p >/dev/null 2>&1 || [ -e $$p ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
		echo "installing Debian packages: $(APT_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi
	@# Debian starts daemons from some of these packages; ours start their own, inside namespaces.
	@for s in etcd frr bird; do (command -v systemctl >/dev/null && systemctl stop $$s 2>/dev/null) || true; done

npm: node_modules/.package-lock.json

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: npm
	npm run build --silent
	@chmod +x dist/cli/main.js dist/cni/gingham-cni $(wildcard dist/cni/plugin.js dist/cni/ipam-plugin.js dist/cni/*.cjs)

lint: npm
	npx biome check .

typecheck: npm
	npx tsc -p tsconfig.json --noEmit

check: lint typecheck

test: deps build check
	npm test

test-unit: npm
	npm run test:unit

demo: deps build
	bash examples/demo-cluster.sh

# The store and CLI alone: apply examples/*.yaml to a private etcd and read them back.
demo-resources: deps build
	bash examples/demo.sh

bench: deps build
	npm run bench

clean:
	rm -rf dist
