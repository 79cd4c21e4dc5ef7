// Calico's label-selector language: parser and evaluator. Pure.
//
// Grammar (libcalico-go/lib/selector), lowest precedence first:
//   expr    := and ( '||' and )*
//   and     := unary ( '&&' unary )*
//   unary   := '!' unary | '(' expr ')' | term
//   term    := 'all()' | 'global()' | 'has(' key ')' | key op
//   op      := '==' str | '!=' str | 'in' set | 'not in' set
//            | 'contains' str | 'starts with' str | 'ends with' str
//   set     := '{' [ str ( ',' str )* ] '}'
//   str     := "..." | '...'
// An empty selector (only whitespace) selects everything, as in Calico.
// `!has(k)` is just `!` applied to `has(k)`.

export type SelectorNode =
  | { op: 'all' }
  | { op: 'global' }
  | { op: 'has'; key: string }
  | { op: '=='; key: string; value: string }
  | { op: '!='; key: string; value: string }
  | { op: 'in'; key: string; values: string[] }
  | { op: 'notin'; key: string; values: string[] }
  | { op: 'contains'; key: string; value: string }
  | { op: 'startswith'; key: string; value: string }
  | { op: 'endswith'; key: string; value: string }
  | { op: 'not'; arg: SelectorNode }
  | { op: 'and'; args: SelectorNode[] }
  | { op: 'or'; args: SelectorNode[] };

export class SelectorParseError extends Error {
  constructor(
    readonly selector: string,
    /** 0-based character offset of the problem. */
    readonly position: number,
    readonly problem: string,
  ) {
    super(`invalid selector at position ${position}: ${problem}\n  ${selector}\n  ${' '.repeat(position)}^`);
    this.name = 'SelectorParseError';
  }
}

/** What a selector is evaluated against: labels, and whether the object is cluster-scoped. */
export interface Labelled {
  labels: Readonly<Record<string, string>>;
  /** True for objects without a namespace (global network sets, host endpoints): `global()` matches them. */
  isGlobal?: boolean;
}

const KEY_RE = /[A-Za-z0-9_./-]/;

class Parser {
  pos = 0;
  constructor(readonly src: string) {}

  fail(problem: string, at = this.pos): never {
    throw new SelectorParseError(this.src, at, problem);
  }

  skipWs(): void {
    while (this.pos < this.src.length && /\s/.test(this.src[this.pos]!)) this.pos++;
  }

  peek(s: string): boolean {
    this.skipWs();
    return this.src.startsWith(s, this.pos);
  }

  /** Consumes a keyword only when it is not the prefix of a longer identifier. */
  peekWord(w: string): boolean {
    this.skipWs();
    if (!this.src.startsWith(w, this.pos)) return false;
    const next = this.src[this.pos + w.length];
    return next === undefined || !KEY_RE.test(next);
  }

  eat(s: string): boolean {
    if (this.peek(s)) {
      this.pos += s.length;
      return true;
    }
    return false;
  }

  expect(s: string): void {
    if (!this.eat(s)) this.fail(`expected "${s}"${this.found()}`);
  }

  found(): string {
    this.skipWs();
    if (this.pos >= this.src.length) return ' but the selector ended';
    return ` but found "${this.src.slice(this.pos, this.pos + 12)}"`;
  }

  parseExpr(): SelectorNode {
    const args = [this.parseAnd()];
    while (this.eat('||')) args.push(this.parseAnd());
    return args.length === 1 ? args[0]! : { op: 'or', args };
  }

  parseAnd(): SelectorNode {
    const args = [this.parseUnary()];
    while (this.eat('&&')) args.push(this.parseUnary());
    return args.length === 1 ? args[0]! : { op: 'and', args };
  }

  parseUnary(): SelectorNode {
    if (this.peek('!') && !this.peek('!=')) {
      this.pos++;
      return { op: 'not', arg: this.parseUnary() };
    }
    if (this.eat('(')) {
      const e = this.parseExpr();
      this.expect(')');
      return e;
    }
    return this.parseTerm();
  }

  parseKey(): string {
    this.skipWs();
    const start = this.pos;
    while (this.pos < this.src.length && KEY_RE.test(this.src[this.pos]!)) this.pos++;
    if (this.pos === start) this.fail(`expected a label name${this.found()}`);
    return this.src.slice(start, this.pos);
  }

  parseString(): string {
    this.skipWs();
    const q = this.src[this.pos];
    if (q !== '"' && q !== "'") this.fail(`expected a quoted string${this.found()}`);
    const start = this.pos;
    const end = this.src.indexOf(q, start + 1);
    if (end < 0) this.fail('unterminated string', start);
    this.pos = end + 1;
    return this.src.slice(start + 1, end);
  }

  parseSet(): string[] {
    this.expect('{');
    const values: string[] = [];
    if (this.eat('}')) return values;
    do values.push(this.parseString());
    while (this.eat(','));
    this.expect('}');
    return values;
  }

  parseTerm(): SelectorNode {
    this.skipWs();
    if (this.pos >= this.src.length) this.fail('expected an expression but the selector ended');
    if (this.peekWord('all')) {
      this.pos += 3;
      this.expect('(');
      this.expect(')');
      return { op: 'all' };
    }
    if (this.peekWord('global')) {
      this.pos += 6;
      this.expect('(');
      this.expect(')');
      return { op: 'global' };
    }
    if (this.peekWord('has')) {
      const save = this.pos;
      this.pos += 3;
      if (this.eat('(')) {
        const key = this.parseKey();
        this.expect(')');
        return { op: 'has', key };
      }
      this.pos = save; // a label literally named "has"
    }
    const key = this.parseKey();
    if (this.eat('==')) return { op: '==', key, value: this.parseString() };
    if (this.eat('!=')) return { op: '!=', key, value: this.parseString() };
    if (this.peekWord('in')) {
      this.pos += 2;
      return { op: 'in', key, values: this.parseSet() };
    }
    if (this.peekWord('not')) {
      this.pos += 3;
      if (!this.peekWord('in')) this.fail(`expected "in" after "not"${this.found()}`);
      this.pos += 2;
      return { op: 'notin', key, values: this.parseSet() };
    }
    if (this.peekWord('contains')) {
      this.pos += 8;
      return { op: 'contains', key, value: this.parseString() };
    }
    if (this.peekWord('starts')) {
      this.pos += 6;
      if (!this.peekWord('with')) this.fail(`expected "with" after "starts"${this.found()}`);
      this.pos += 4;
      return { op: 'startswith', key, value: this.parseString() };
    }
    if (this.peekWord('ends')) {
      this.pos += 4;
      if (!this.peekWord('with')) this.fail(`expected "with" after "ends"${this.found()}`);
      this.pos += 4;
      return { op: 'endswith', key, value: this.parseString() };
    }
    this.fail(
      `expected an operator (==, !=, in, not in, contains, starts with, ends with) after label "${key}"${this.found()}`,
    );
  }
}

/** Parses a selector; throws SelectorParseError with the offending position. */
export function parseSelector(src: string): SelectorNode {
  if (src.trim() === '') return { op: 'all' };
  const p = new Parser(src);
  const node = p.parseExpr();
  p.skipWs();
  if (p.pos < src.length) p.fail(`unexpected "${src.slice(p.pos, p.pos + 12)}" (missing && or ||?)`);
  return node;
}

export function evaluate(node: SelectorNode, obj: Labelled): boolean {
  const l = obj.labels;
  switch (node.op) {
    case 'all':
      return true;
    case 'global':
      return obj.isGlobal === true;
    case 'has':
      return Object.hasOwn(l, node.key);
    case '==':
      return Object.hasOwn(l, node.key) && l[node.key] === node.value;
    case '!=':
      return !Object.hasOwn(l, node.key) || l[node.key] !== node.value;
    case 'in':
      return Object.hasOwn(l, node.key) && node.values.includes(l[node.key]!);
    case 'notin':
      return !Object.hasOwn(l, node.key) || !node.values.includes(l[node.key]!);
    case 'contains':
      return Object.hasOwn(l, node.key) && l[node.key]!.includes(node.value);
    case 'startswith':
      return Object.hasOwn(l, node.key) && l[node.key]!.startsWith(node.value);
    case 'endswith':
      return Object.hasOwn(l, node.key) && l[node.key]!.endsWith(node.value);
    case 'not':
      return !evaluate(node.arg, obj);
    case 'and':
      return node.args.every((a) => evaluate(a, obj));
    case 'or':
      return node.args.some((a) => evaluate(a, obj));
  }
}

function quote(s: string): string {
  return s.includes('"') ? `'${s}'` : `"${s}"`;
}

/** Canonical text: equal selectors (modulo spacing, quoting, set order) print the same. */
export function formatSelector(node: SelectorNode): string {
  switch (node.op) {
    case 'all':
      return 'all()';
    case 'global':
      return 'global()';
    case 'has':
      return `has(${node.key})`;
    case '==':
    case '!=':
      return `${node.key} ${node.op} ${quote(node.value)}`;
    case 'in':
    case 'notin': {
      const vs = [...new Set(node.values)].sort().map(quote).join(', ');
      return `${node.key} ${node.op === 'in' ? 'in' : 'not in'} {${vs}}`;
    }
    case 'contains':
      return `${node.key} contains ${quote(node.value)}`;
    case 'startswith':
      return `${node.key} starts with ${quote(node.value)}`;
    case 'endswith':
      return `${node.key} ends with ${quote(node.value)}`;
    case 'not':
      return `!${wrap(node.arg)}`;
    case 'and':
      return node.args.map(wrap).join(' && ');
    case 'or':
      return node.args.map(wrap).join(' || ');
  }
}

function wrap(n: SelectorNode): string {
  return n.op === 'and' || n.op === 'or' ? `(${formatSelector(n)})` : formatSelector(n);
}

const cache = new Map<string, Selector>();
const CACHE_MAX = 50_000;

/** Parses once, evaluates many times. Immutable, so equal texts share one instance (Selector.of). */
export class Selector {
  readonly node: SelectorNode;
  readonly text: string;
  constructor(src: string) {
    this.node = parseSelector(src);
    this.text = formatSelector(this.node);
  }
  matches(obj: Labelled): boolean {
    return evaluate(this.node, obj);
  }
  /** A cached parse: policies repeat the same few selectors thousands of times. */
  static of(src: string): Selector {
    let s = cache.get(src);
    if (!s) {
      s = new Selector(src);
      if (cache.size >= CACHE_MAX) cache.clear();
      cache.set(src, s);
    }
    return s;
  }
  static and(a: Selector, b: Selector): Selector {
    if (a.node.op === 'all') return b;
    if (b.node.op === 'all') return a;
    return new Selector(`(${a.text}) && (${b.text})`);
  }
}
