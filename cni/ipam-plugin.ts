#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// gingham-ipam executable (see cni/plugin.ts for the shebang).
import { load } from './entry.js';

await load(import.meta.url, './gingham-ipam.bundle.cjs', './ipam-plugin-main.js');
