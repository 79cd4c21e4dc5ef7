// Typed store errors. Each carries the context a caller (or a human reading the CLI output) needs:
// which object, which endpoint, which document and field.
import type { Kind } from './api.js';

export abstract class StoreError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

function describe(kind: string, name: string, namespace?: string): string {
  return namespace ? `${kind} ${namespace}/${name}` : `${kind} ${name}`;
}

export class NotFoundError extends StoreError {
  readonly code = 'NotFound';
  constructor(
    readonly kind: string,
    readonly resourceName: string,
    readonly namespace?: string,
    readonly key?: string,
  ) {
    super(`${describe(kind, resourceName, namespace)} not found`);
  }
}

export class AlreadyExistsError extends StoreError {
  readonly code = 'AlreadyExists';
  constructor(
    readonly kind: string,
    readonly resourceName: string,
    readonly namespace?: string,
    readonly key?: string,
  ) {
    super(`${describe(kind, resourceName, namespace)} already exists`);
  }
}

/** A compare-and-swap failed: the object (or raw key) changed since it was read. */
export class ConflictError extends StoreError {
  readonly code = 'Conflict';
  constructor(
    readonly key: string,
    readonly expected: string,
    readonly actual: string | null,
    readonly what = key,
  ) {
    super(
      `conflict on ${what}: expected revision ${expected}, ` +
        (actual === null ? 'but it does not exist' : `but it is at revision ${actual}`) +
        ' (re-read and retry)',
    );
  }
}

export class EtcdUnavailableError extends StoreError {
  readonly code = 'EtcdUnavailable';
  constructor(
    readonly endpoints: string[],
    readonly elapsedMs: number,
    readonly operation: string,
    cause?: unknown,
  ) {
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    super(
      `etcd unreachable at ${endpoints.join(', ')} (${operation}, gave up after ${(elapsedMs / 1000).toFixed(1)} s)${why}`,
      {
        cause,
      },
    );
  }
}

export class UnknownKindError extends StoreError {
  readonly code = 'UnknownKind';
  constructor(
    readonly input: string,
    readonly apiVersion?: string,
  ) {
    super(
      apiVersion
        ? `unknown kind "${input}" in apiVersion "${apiVersion}"`
        : `unknown kind "${input}" (try: gingham get --help for the list of kinds)`,
    );
  }
}

export interface ValidationIssue {
  /** Dotted field path inside the document, e.g. "spec.ingress[0].action". */
  path: string;
  /** What was expected. */
  message: string;
}

export interface DocumentRef {
  /** Source file ("-" for stdin), when the object came from a manifest. */
  file?: string;
  /** 0-based index of the document in a multi-document file. */
  index?: number;
  /** 0-based index inside a List document's items. */
  item?: number;
  kind?: string;
  name?: string;
  namespace?: string;
}

export class ValidationError extends StoreError {
  readonly code = 'Invalid';
  constructor(
    readonly doc: DocumentRef,
    readonly issues: ValidationIssue[],
  ) {
    super(
      `${describeDoc(doc)}: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`,
    );
  }
}

export function describeDoc(doc: DocumentRef): string {
  const parts: string[] = [];
  if (doc.file !== undefined) parts.push(doc.file === '-' ? 'stdin' : doc.file);
  if (doc.index !== undefined) parts.push(`document ${doc.index + 1}`);
  if (doc.item !== undefined) parts.push(`item ${doc.item + 1}`);
  const obj = doc.kind
    ? `${doc.kind}${doc.name ? ` ${doc.namespace ? `${doc.namespace}/` : ''}${doc.name}` : ''}`
    : '';
  const where = parts.join(' ');
  if (where && obj) return `${where} (${obj})`;
  return where || obj || 'resource';
}

export function isStoreError(e: unknown): e is StoreError {
  return e instanceof StoreError;
}

export type { Kind };
