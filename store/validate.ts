// Turns an untrusted document into a validated Resource: known kind, strict schema, defaults
// applied. Errors name the document, the field path and what was expected.
import { z } from 'zod';
import type { Kind, Resource } from './api.js';
import { type DocumentRef, UnknownKindError, ValidationError, type ValidationIssue } from './errors.js';
import { type KindInfo, kindFromWire } from './kinds.js';
import {
  BGP_CONFIGURATION_DEFAULTS,
  FELIX_CONFIGURATION_DEFAULTS,
  objectMeta,
  specSchemas,
} from './schemas/index.js';
import { ipPoolStatus } from './schemas/ippool.js';
import { namespaceStatus } from './schemas/k8s.js';
import { nodeStatus } from './schemas/node.js';

/** Kinds that carry a status (where Calico / Kubernetes have one). */
const statusSchemas: Partial<Record<Kind, z.ZodType>> = {
  Node: nodeStatus,
  IPPool: ipPoolStatus,
  Namespace: namespaceStatus,
  K8sNetworkPolicy: z.record(z.string(), z.unknown()),
};

/** Kinds that must be a singleton named `default`. */
const SINGLETON_DEFAULT = new Set<Kind>(['IPAMConfiguration']);

function formatPath(path: PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

/** zod's own messages start upper-case ("Invalid input: expected string…"); ours say what is expected. */
function issueMessage(message: string): string {
  return /^[a-z"]/.test(message) ? `expected ${message}` : message;
}

export function zodIssues(err: z.ZodError, prefix: PropertyKey[] = []): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  for (const i of err.issues) {
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) {
        out.push({
          path: formatPath([...prefix, ...i.path, k]),
          message: 'unknown field (not in the schema for this kind)',
        });
      }
    } else if (i.code === 'invalid_union') {
      // Report the first alternative's complaint: clearer than "Invalid input".
      const first = i.errors[0]?.[0];
      out.push({
        path: formatPath([...prefix, ...i.path]),
        message: issueMessage(first?.message ?? i.message),
      });
    } else {
      out.push({ path: formatPath([...prefix, ...i.path]), message: issueMessage(i.message) });
    }
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Fills cluster-wide defaults into the `default` object of kinds with per-node overrides. */
function applyNamedDefaults(
  kind: Kind,
  name: string,
  spec: Record<string, unknown>,
): Record<string, unknown> {
  if (name !== 'default') return spec;
  const defaults: Record<string, unknown> | undefined =
    kind === 'BGPConfiguration'
      ? BGP_CONFIGURATION_DEFAULTS
      : kind === 'FelixConfiguration'
        ? FELIX_CONFIGURATION_DEFAULTS
        : undefined;
  if (!defaults) return spec;
  const out: Record<string, unknown> = structuredClone(defaults);
  for (const [k, v] of Object.entries(spec)) if (v !== undefined) out[k] = v;
  return out;
}

export interface ValidateOptions {
  /** Namespace for namespaced kinds whose metadata has none (calicoctl: "default"). */
  defaultNamespace?: string;
}

/** Validates one document; returns the resource with defaults applied, or throws ValidationError / UnknownKindError. */
export function validateResource(doc: unknown, ref: DocumentRef = {}, opts: ValidateOptions = {}): Resource {
  if (!isPlainObject(doc))
    throw new ValidationError(ref, [{ path: '', message: 'expected an object (a resource document)' }]);
  const { apiVersion, kind } = doc;
  const meta = isPlainObject(doc.metadata) ? doc.metadata : {};
  const here: DocumentRef = {
    ...ref,
    kind: typeof kind === 'string' ? kind : ref.kind,
    name: typeof meta.name === 'string' ? meta.name : ref.name,
    namespace: typeof meta.namespace === 'string' ? meta.namespace : ref.namespace,
  };
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    const issues: ValidationIssue[] = [];
    if (typeof apiVersion !== 'string')
      issues.push({ path: 'apiVersion', message: 'expected a string such as "projectcalico.org/v3"' });
    if (typeof kind !== 'string')
      issues.push({ path: 'kind', message: 'expected a string such as "IPPool"' });
    throw new ValidationError(here, issues);
  }
  let info: KindInfo;
  try {
    info = kindFromWire(apiVersion, kind);
  } catch (e) {
    if (e instanceof UnknownKindError) {
      throw new ValidationError(here, [{ path: 'kind', message: `expected a known kind: ${e.message}` }]);
    }
    throw e;
  }
  const issues: ValidationIssue[] = [];
  for (const k of Object.keys(doc)) {
    if (!['apiVersion', 'kind', 'metadata', 'spec', 'status'].includes(k))
      issues.push({ path: k, message: 'unknown field' });
  }
  const m = objectMeta.safeParse(doc.metadata ?? {});
  if (!m.success) issues.push(...zodIssues(m.error, ['metadata']));
  const spec = specSchemas[info.kind].safeParse(doc.spec ?? {});
  if (!spec.success) issues.push(...zodIssues(spec.error, ['spec']));
  let status: unknown;
  if (doc.status !== undefined) {
    const schema = statusSchemas[info.kind];
    if (!schema) issues.push({ path: 'status', message: `no status field on ${info.wireKind}` });
    else {
      const s = schema.safeParse(doc.status);
      if (s.success) status = s.data;
      else issues.push(...zodIssues(s.error, ['status']));
    }
  }
  if (m.success) {
    const md = m.data;
    if (info.namespaced && md.namespace === undefined) {
      if (opts.defaultNamespace) md.namespace = opts.defaultNamespace;
      else
        issues.push({
          path: 'metadata.namespace',
          message: `expected a namespace: ${info.wireKind} is namespaced`,
        });
    }
    if (!info.namespaced && md.namespace !== undefined) {
      issues.push({
        path: 'metadata.namespace',
        message: `no namespace: ${info.wireKind} is cluster-scoped`,
      });
    }
    if (SINGLETON_DEFAULT.has(info.kind) && md.name !== 'default') {
      issues.push({ path: 'metadata.name', message: `expected "default" (there is one ${info.wireKind})` });
    }
  }
  if (issues.length > 0 || !m.success || !spec.success) throw new ValidationError(here, issues);
  const out: Resource = {
    apiVersion: info.apiVersion,
    kind: info.wireKind,
    metadata: m.data,
    spec: applyNamedDefaults(info.kind, m.data.name, spec.data as Record<string, unknown>),
  };
  if (status !== undefined) out.status = status;
  return out;
}
