#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// gingham-ipam executable (CommonJS: see cni/launch.cts; shebang: see cni/gingham-cni.cts).
import { launchIpam } from './launch.cjs';

launchIpam(__dirname);
