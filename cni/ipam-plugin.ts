#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// gingham-ipam as an ES module entry: the same as dist/cni/gingham-ipam.cjs (cni/gingham-ipam.cts).
import { launchIpam } from './launch.cjs';

launchIpam(import.meta.dirname);
