#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// gingham-cni executable (CommonJS: see cni/launch.cts). The shebang drops NODE_EXTRA_CA_CERTS:
// the plugin speaks plain HTTP to etcd (or a unix socket to the agent), and loading a CA bundle
// costs ~40 ms per call. With `agent_socket` in the configuration the call goes to the node's
// agent through the thin client (cni/thin.ts); otherwise the plugin does the work itself
// (cni/plugin-main.ts).
import { launchCni } from './launch.cjs';

launchCni(__dirname);
