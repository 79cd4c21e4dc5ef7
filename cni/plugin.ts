#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// gingham-cni as an ES module entry: the same as dist/cni/gingham-cni.cjs (cni/gingham-cni.cts),
// which starts sooner and is what runtimes should exec; kept so that existing installations
// pointing at plugin.js go on working.
import { launchCni } from './launch.cjs';

launchCni(import.meta.dirname);
