// Manifests: a file (or stdin, "-") of YAML documents or JSON, each a resource or a List of them.
// Every document is validated before the caller writes anything; all problems are reported at
// once, each naming the file, the document (1-based in messages) and the field.
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import type { Resource } from './api.js';
import { type DocumentRef, StoreError, ValidationError } from './errors.js';
import { type ValidateOptions, validateResource } from './validate.js';

export interface ManifestEntry {
  resource: Resource;
  source: DocumentRef;
}

/** One or more documents of a manifest are invalid; nothing should be written. */
export class ManifestError extends StoreError {
  readonly code = 'InvalidManifest';
  constructor(
    readonly file: string,
    readonly errors: ValidationError[],
  ) {
    super(
      `${errors.length} invalid document${errors.length === 1 ? '' : 's'} in ${file === '-' ? 'stdin' : file}, nothing written:\n` +
        errors.map((e) => `  ${e.message}`).join('\n'),
    );
  }
}

function isListDoc(d: unknown): d is { kind: string; items: unknown } {
  if (typeof d !== 'object' || d === null) return false;
  const k = (d as { kind?: unknown }).kind;
  return typeof k === 'string' && (k === 'List' || k.endsWith('List')) && 'items' in d;
}

/** Parses manifest text into validated resources, or throws ManifestError listing every bad document. */
export function parseManifest(text: string, file = '-', opts: ValidateOptions = {}): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  const errors: ValidationError[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [];
  list.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      errors.push(
        new ValidationError(
          { file, index },
          doc.errors.map((e) => ({ path: '', message: `YAML/JSON syntax: ${e.message}` })),
        ),
      );
      return;
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return; // an empty document ("---" at the end)
    const one = (v: unknown, ref: DocumentRef) => {
      try {
        const resource = validateResource(v, ref, opts);
        const { name, namespace } = resource.metadata;
        out.push({ resource, source: { ...ref, kind: resource.kind, name, namespace } });
      } catch (e) {
        if (e instanceof ValidationError) errors.push(e);
        else throw e;
      }
    };
    if (isListDoc(value)) {
      if (!Array.isArray(value.items)) {
        errors.push(
          new ValidationError({ file, index, kind: value.kind }, [
            { path: 'items', message: 'expected a list of resources' },
          ]),
        );
        return;
      }
      value.items.forEach((item, i) => {
        one(item, { file, index, item: i });
      });
    } else {
      one(value, { file, index });
    }
  });
  if (errors.length > 0) throw new ManifestError(file, errors);
  if (out.length === 0)
    throw new ManifestError(file, [
      new ValidationError({ file }, [{ path: '', message: 'expected at least one resource, found none' }]),
    ]);
  return out;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads and validates a manifest file ("-" = stdin). */
export async function loadManifest(file: string, opts: ValidateOptions = {}): Promise<ManifestEntry[]> {
  const text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  return parseManifest(text, file, opts);
}
