// Network namespaces for tests: unique names per run, removed on destroy and at exit.
// Nothing here touches the host's root namespace except creating/deleting namespaces.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const live = new Set<string>();
process.on('exit', () => {
  for (const ns of live) spawnSync('ip', ['netns', 'del', ns]);
});

export function uniqueName(prefix: string): string {
  // Kernel interface names are ≤15 chars; namespace names have no such limit but stay short.
  return `${prefix}${randomBytes(3).toString('hex')}`;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export class Netns {
  private constructor(readonly name: string) {}

  static create(prefix = 'gt'): Netns {
    const name = uniqueName(prefix);
    execFileSync('ip', ['netns', 'add', name]);
    live.add(name);
    const ns = new Netns(name);
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** Runs `ip -n NS ...` and returns stdout. Throws with stderr on failure. */
  ip(...args: string[]): string {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** Runs a command inside the namespace. */
  exec(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** argv prefix to spawn a long-running process inside the namespace. */
  wrap(cmd: string, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.name, cmd, ...args]];
  }

  destroy(): void {
    if (!live.has(this.name)) return;
    spawnSync('ip', ['netns', 'del', this.name]);
    live.delete(this.name);
  }
}

export function run(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { input: opts.input, encoding: 'utf8' });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

/** Connects two namespaces with a veth pair; returns the interface names used. */
export function vethBetween(a: Netns, aIf: string, b: Netns, bIf: string): void {
  const tmpA = uniqueName('va');
  const tmpB = uniqueName('vb');
  a.ip('link', 'add', tmpA, 'type', 'veth', 'peer', 'name', tmpB, 'netns', b.name);
  a.ip('link', 'set', tmpA, 'name', aIf);
  b.ip('link', 'set', tmpB, 'name', bIf);
  a.ip('link', 'set', aIf, 'up');
  b.ip('link', 'set', bIf, 'up');
}
