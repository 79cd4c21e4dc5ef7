// Parsing of a CNI invocation: the environment (CNI_COMMAND, CNI_ARGS, …) and the network
// configuration on stdin. Pure: every problem becomes a CniError with the spec's code.
import { CniCode, CniError } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
const COMMANDS: readonly string[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: string;
  hostIP?: string;
  name?: string;
}

export interface IpamSection {
  type: string;
  [k: string]: unknown;
}

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  ipam?: IpamSection;
  mtu?: number;
  nodename?: string;
  etcd_endpoints?: string;
  /** TLS for https etcd endpoints (Calico's keys); default $ETCD_CA_CERT_FILE, $ETCD_CERT_FILE, $ETCD_KEY_FILE. */
  etcd_ca_cert_file?: string;
  etcd_cert_file?: string;
  etcd_key_file?: string;
  /** Unix socket of the node's agent: the plugin hands the call to it (docs/cni.md, "Agent mode"). */
  agent_socket?: string;
  /** Program the host /32 route and proxy-ARP during ADD (default true). */
  program_host_routes?: boolean;
  args?: { cni?: { labels?: { key: string; value: string }[] } };
  runtimeConfig?: { portMappings?: PortMapping[] };
  prevResult?: unknown;
  /** GC: attachments the runtime still uses. */
  'cni.dev/valid-attachments'?: { containerID: string; ifname: string }[];
  [k: string]: unknown;
}

export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  args: Record<string, string>;
  path: string[];
  /** The call's CNI_* variables as given (passed on to delegated plugins). */
  vars: Record<string, string>;
}

/** Calico's TLS file keys, allowed at the top level and in the ipam section. */
const ETCD_TLS_KEYS = ['etcd_ca_cert_file', 'etcd_cert_file', 'etcd_key_file'] as const;

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Parses CNI_ARGS ("K=V;K2=V2"). */
export function parseCniArgs(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const part of text.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) {
      throw new CniError(
        CniCode.InvalidEnvironment,
        `CNI_ARGS: "${part}" is not KEY=VALUE`,
        `CNI_ARGS=${text}`,
      );
    }
    const k = part.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      throw new CniError(CniCode.InvalidEnvironment, `CNI_ARGS: invalid key "${k}"`, `CNI_ARGS=${text}`);
    }
    out[k] = part.slice(eq + 1);
  }
  return out;
}

/** Checks an interface name the way the kernel and the spec want it (≤ 15 bytes, no '/', ':' or space). */
export function checkIfName(name: string): void {
  if (name === '') throw new CniError(CniCode.InvalidEnvironment, 'CNI_IFNAME is empty');
  if (Buffer.byteLength(name) > 15) {
    throw new CniError(CniCode.InvalidEnvironment, `CNI_IFNAME "${name}" is longer than 15 characters`);
  }
  if (name === '.' || name === '..' || /[/:\s%]/.test(name)) {
    throw new CniError(
      CniCode.InvalidEnvironment,
      `CNI_IFNAME "${name}" contains a character not allowed in an interface name`,
    );
  }
}

/** The CNI_* variables of an environment (what a call's behaviour depends on). */
export function cniVars(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('CNI_') && v !== undefined) out[k] = v;
  return out;
}

export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND ?? '';
  if (!COMMANDS.includes(command)) {
    throw new CniError(
      CniCode.InvalidEnvironment,
      command === '' ? 'CNI_COMMAND is not set' : `unknown CNI_COMMAND "${command}"`,
    );
  }
  const cmd = command as CniCommand;
  const containerId = env.CNI_CONTAINERID ?? '';
  const netns = env.CNI_NETNS ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  if (cmd === 'ADD' || cmd === 'DEL' || cmd === 'CHECK') {
    if (containerId === '') throw new CniError(CniCode.InvalidEnvironment, 'CNI_CONTAINERID is not set');
    if (!CONTAINER_ID.test(containerId)) {
      throw new CniError(
        CniCode.InvalidEnvironment,
        `CNI_CONTAINERID "${containerId}" has characters outside [a-zA-Z0-9_.-]`,
      );
    }
    checkIfName(ifname);
    if (cmd !== 'DEL' && netns === '') throw new CniError(CniCode.InvalidEnvironment, 'CNI_NETNS is not set');
  }
  return {
    command: cmd,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env.CNI_ARGS),
    path: (env.CNI_PATH ?? '').split(':').filter(Boolean),
    vars: cniVars(env),
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses and checks the network configuration from stdin. */
export function parseNetConf(stdin: string): NetConf {
  let v: unknown;
  try {
    v = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(
      CniCode.DecodeFailure,
      `network configuration is not valid JSON: ${(e as Error).message}`,
    );
  }
  if (!isObject(v)) throw new CniError(CniCode.DecodeFailure, 'network configuration must be a JSON object');
  const bad = (field: string, want: string) =>
    new CniError(CniCode.InvalidNetworkConfig, `network configuration field "${field}" must be ${want}`);
  if (typeof v.cniVersion !== 'string') throw bad('cniVersion', 'a string');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v.cniVersion)) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `cniVersion ${v.cniVersion} is not supported`,
      `supported: ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  if (typeof v.name !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(v.name)) {
    throw bad('name', 'a network name of [a-zA-Z0-9_.-]');
  }
  if (typeof v.type !== 'string' || v.type === '') throw bad('type', 'a non-empty string');
  if (v.ipam !== undefined) {
    if (!isObject(v.ipam) || typeof v.ipam.type !== 'string' || v.ipam.type === '')
      throw bad('ipam.type', 'a plugin name');
    if (v.ipam.type.includes('/')) throw bad('ipam.type', 'a plugin name without "/"');
    for (const k of ETCD_TLS_KEYS)
      if (v.ipam[k] !== undefined && (typeof v.ipam[k] !== 'string' || !v.ipam[k].startsWith('/')))
        throw bad(`ipam.${k}`, 'an absolute file path');
  }
  if (
    v.mtu !== undefined &&
    (!Number.isInteger(v.mtu) || (v.mtu as number) < 68 || (v.mtu as number) > 65535)
  ) {
    throw bad('mtu', 'an integer in 68..65535');
  }
  if (v.nodename !== undefined && (typeof v.nodename !== 'string' || v.nodename === ''))
    throw bad('nodename', 'a non-empty string');
  if (v.etcd_endpoints !== undefined && typeof v.etcd_endpoints !== 'string')
    throw bad('etcd_endpoints', 'a comma-separated string');
  for (const k of ETCD_TLS_KEYS)
    if (v[k] !== undefined && (typeof v[k] !== 'string' || !v[k].startsWith('/')))
      throw bad(k, 'an absolute file path');
  if (v.agent_socket !== undefined && (typeof v.agent_socket !== 'string' || !v.agent_socket.startsWith('/')))
    throw bad('agent_socket', 'an absolute path of a unix socket');
  const labels = isObject(v.args) && isObject(v.args.cni) ? v.args.cni.labels : undefined;
  if (labels !== undefined) {
    if (
      !Array.isArray(labels) ||
      !labels.every((l) => isObject(l) && typeof l.key === 'string' && typeof l.value === 'string')
    ) {
      throw bad('args.cni.labels', 'a list of {"key", "value"} strings');
    }
  }
  const pm = isObject(v.runtimeConfig) ? v.runtimeConfig.portMappings : undefined;
  if (pm !== undefined) {
    if (
      !Array.isArray(pm) ||
      !pm.every((p) => isObject(p) && Number.isInteger(p.hostPort) && Number.isInteger(p.containerPort))
    ) {
      throw bad('runtimeConfig.portMappings', 'a list of {hostPort, containerPort, protocol}');
    }
  }
  return v as unknown as NetConf;
}

/** Compares two CNI versions ("0.4.0" < "1.0.0"). */
export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}
