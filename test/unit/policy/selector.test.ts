import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  evaluate,
  formatSelector,
  parseSelector,
  Selector,
  SelectorParseError,
} from '../../../policy/selector.js';

const L = { app: 'web', tier: 'front', 'k8s.io/name': 'a-b', empty: '' };
const m = (s: string, labels: Record<string, string> = L, isGlobal = false) =>
  evaluate(parseSelector(s), { labels, isGlobal });

describe('selector: evaluation of every operator', () => {
  const cases: [string, boolean][] = [
    ['all()', true],
    ['', true],
    ['   ', true],
    ['global()', false],
    ['has(app)', true],
    ['has(nope)', false],
    ['!has(nope)', true],
    ['!has(app)', false],
    ['has(empty)', true],
    ['app == "web"', true],
    ["app == 'web'", true],
    ['app == "db"', false],
    ['nope == ""', false],
    ['empty == ""', true],
    ['app != "db"', true],
    ['app != "web"', false],
    ['nope != "x"', true],
    ['app in {"web", "db"}', true],
    ['app in {"db"}', false],
    ['app in {}', false],
    ['nope in {"x"}', false],
    ['app not in {"db"}', true],
    ['app not in {"web"}', false],
    ['nope not in {"x"}', true],
    ['app contains "e"', true],
    ['app contains "x"', false],
    ['nope contains ""', false],
    ['app starts with "we"', true],
    ['app starts with "eb"', false],
    ['app ends with "eb"', true],
    ['app ends with "we"', false],
    ['k8s.io/name == "a-b"', true],
    ['app == "web" && tier == "front"', true],
    ['app == "web" && tier == "back"', false],
    ['app == "db" || tier == "front"', true],
    ['app == "db" || tier == "back"', false],
    ['!(app == "db" || tier == "back")', true],
    ['!!has(app)', true],
    ['app == "db" || app == "web" && tier == "back"', false],
    ['(app == "db" || app == "web") && tier == "front"', true],
    ['app == "x" && tier == "y" || has(app)', true],
    ['has(app)&&has(tier)', true],
    ['((has(app)))', true],
  ];
  for (const [sel, want] of cases) {
    it(`${JSON.stringify(sel)} → ${want}`, () => assert.equal(m(sel), want));
  }

  it('global() matches only cluster-scoped objects', () => {
    assert.equal(m('global()', {}, true), true);
    assert.equal(m('global()', {}, false), false);
    assert.equal(m('!global()', {}, false), true);
  });

  it('labels literally named like keywords still work', () => {
    assert.equal(m('has == "1"', { has: '1' }), true);
    assert.equal(m('in == "1"', { in: '1' }), true);
    assert.equal(m('allx == "1"', { allx: '1' }), true);
  });

  it('does not confuse inherited object properties with labels', () => {
    assert.equal(m('has(constructor)', {}), false);
    assert.equal(m('toString != "x"', {}), true);
  });
});

describe('selector: parse errors carry the position', () => {
  const bad: [string, number, RegExp][] = [
    ['app ==', 6, /quoted string/],
    ['app = "x"', 4, /operator/],
    ['app == "x', 7, /unterminated/],
    ['has(app', 7, /"\)"/],
    ['has()', 4, /label name/],
    ['app == "x" &&', 13, /expression/],
    ['app == "x" app == "y"', 11, /missing && or \|\|/],
    ['app in {"a" "b"}', 12, /"}"/],
    ['app in "a"', 7, /"{"/],
    ['app not "a"', 8, /"in"/],
    ['app starts "a"', 11, /"with"/],
    ['(app == "a"', 11, /"\)"/],
    ['all(', 4, /"\)"/],
    ['&& app == "a"', 0, /label name/],
    ['app == "a" & b == "c"', 11, /unexpected/],
  ];
  for (const [sel, pos, re] of bad) {
    it(`${JSON.stringify(sel)} fails at ${pos}`, () => {
      assert.throws(
        () => parseSelector(sel),
        (e: unknown) => {
          assert.ok(e instanceof SelectorParseError);
          assert.equal(e.position, pos, e.message);
          assert.match(e.message, re);
          assert.match(e.message, /\^/);
          return true;
        },
      );
    });
  }
});

describe('selector: canonical form', () => {
  it('equal selectors print the same', () => {
    const a = new Selector("app in {'b','a'} &&   has(x)");
    const b = new Selector('app in {"a", "b"} && has(x)');
    assert.equal(a.text, b.text);
  });
  it('round-trips through its own printer', () => {
    for (const s of [
      '!(a == "1" || b != "2") && c not in {"x"}',
      'a starts with "q" || (b ends with "r" && !has(c))',
    ]) {
      const once = formatSelector(parseSelector(s));
      assert.equal(formatSelector(parseSelector(once)), once);
      const samples: Record<string, string>[] = [{}, { a: '1' }, { b: '2', c: 'y' }, { a: 'qq', b: 'rr' }];
      for (const labels of samples) {
        assert.equal(m(once, labels), m(s, labels), `${s} vs ${once} on ${JSON.stringify(labels)}`);
      }
    }
  });
  it('Selector.and combines and short-circuits all()', () => {
    const a = new Selector('all()');
    const b = new Selector('x == "1"');
    assert.equal(Selector.and(a, b), b);
    const c = Selector.and(b, new Selector('has(y)'));
    assert.equal(c.matches({ labels: { x: '1', y: '' } }), true);
    assert.equal(c.matches({ labels: { x: '1' } }), false);
  });
});
