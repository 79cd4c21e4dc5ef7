#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// gingham-cni executable. The shebang drops NODE_EXTRA_CA_CERTS: the plugin speaks plain HTTP to
// etcd, and loading a CA bundle costs ~40 ms per call.
import { load } from './entry.js';

await load(import.meta.url, './gingham-cni.bundle.cjs', './plugin-main.js');
