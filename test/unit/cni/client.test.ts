// The C client (cni/gingham-cni.c), compiled here from source: VERSION, the choice between agent
// and direct mode as the Node launcher makes it, the request it sends (parsed by the agent's own
// parser), and every way an agent can fail it. The agent's side is a unix socket server in this
// test that speaks the protocol, so that a server that hangs, hangs up or answers garbage can be
// shown; the real agent behind it is covered by test/integration/cni/agent-mode.test.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AgentRequest, formatPlainResponse, parseRequest } from '../../../cni/agent-protocol.js';
import { VERSION_ANSWER, wantsAgent } from '../../../cni/launch.cjs';

const ROOT = resolve(import.meta.dirname, '../../..');
const NODE_PLUGIN = join(ROOT, 'dist/cni/gingham-cni.cjs');
const hasCc = (() => {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: test-only view of a JSON answer
  json: any;
}

describe('gingham-cni C client', { skip: !hasCc && 'needs a C compiler (cc)' }, () => {
  let dir: string;
  let bin: string;
  let server: Server | undefined;
  let socket: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gingham-cni-client-'));
    bin = join(dir, 'gingham-cni');
    // -Werror here (not in the build): a warning is a defect we want to see in the tests.
    execFileSync('cc', [
      '-std=gnu11',
      '-O2',
      '-Wall',
      '-Wextra',
      '-Werror',
      '-static',
      '-o',
      bin,
      join(ROOT, 'cni/gingham-cni.c'),
    ]);
    socket = join(dir, 'agent.sock');
  });

  after(async () => {
    await stopServer();
    rmSync(dir, { recursive: true, force: true });
  });

  function run(env: Record<string, string>, stdin: string, exe = bin): Promise<Run> {
    return new Promise((done) => {
      const p = spawn(exe, [], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => {
        stdout += d;
      });
      p.stderr.on('data', (d: Buffer) => {
        stderr += d;
      });
      p.stdin.on('error', () => undefined);
      p.stdin.end(stdin);
      p.on('close', (code) => {
        let json: unknown;
        try {
          json = JSON.parse(stdout);
        } catch {}
        done({ code, stdout, stderr, json });
      });
    });
  }

  /** An agent end that hands each request to `answer`; the connection is the test's to end. */
  async function serve(answer: (req: string, sock: Socket) => void): Promise<void> {
    await stopServer();
    server = createServer((sock) => {
      let text = '';
      sock.on('data', (d: Buffer) => {
        text += d;
        const nl = text.indexOf('\n');
        if (nl >= 0) answer(text.slice(0, nl), sock);
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => server!.listen(socket, r));
  }

  async function stopServer(): Promise<void> {
    const s = server;
    server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    rmSync(socket ?? join(dir, 'none'), { force: true });
  }

  const conf = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'gingham-cni', agent_socket: socket, ...extra });
  const add = {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'c1',
    CNI_NETNS: '/var/run/netns/x',
    CNI_IFNAME: 'eth0',
  };

  it('answers VERSION as the Node launcher does, without reading stdin', async () => {
    const r = await run({ CNI_COMMAND: 'VERSION' }, '');
    assert.equal(r.code, 0);
    assert.deepEqual(r.json, JSON.parse(JSON.stringify(VERSION_ANSWER)));
  });

  it('sends one request line the agent parses: CNI_* variables only, the configuration byte for byte', async () => {
    let got: AgentRequest | undefined;
    await serve((line, sock) => {
      got = parseRequest(line);
      sock.end(formatPlainResponse({ v: 1, exitCode: 0, output: { cniVersion: '1.0.0', ips: [] } }));
    });
    // Quotes, backslashes, control characters, non-ASCII and a surrogate pair survive the trip.
    const text = conf({ note: 'a "q" \\ tab\there\u0001 ünï 😀\nline' });
    const r = await run({ ...add, CNI_ARGS: 'K8S_POD_NAME=p;X=1', OTHER: 'not sent' }, text);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json, { cniVersion: '1.0.0', ips: [] });
    assert.ok(got);
    assert.equal(got.reply, 'plain');
    assert.equal(got.stdin, text);
    assert.deepEqual(got.env, { ...add, CNI_ARGS: 'K8S_POD_NAME=p;X=1' });
    assert.equal(got.trace, undefined);
  });

  it('passes the exit code and error object on; trace lines go to stderr', async () => {
    await serve((line, sock) => {
      const req = parseRequest(line);
      assert.equal(req.trace, true);
      sock.end(
        formatPlainResponse({
          v: 1,
          exitCode: 1,
          output: { cniVersion: '1.0.0', code: 7, msg: 'bad thing' },
          trace: ['add: ipam: +3.1 ms', 'total in agent: 9.0 ms'],
        }),
      );
    });
    const r = await run({ ...add, GINGHAM_CNI_TRACE: '1' }, conf());
    assert.equal(r.code, 1);
    assert.deepEqual(r.json, { cniVersion: '1.0.0', code: 7, msg: 'bad thing' });
    assert.match(r.stderr, /\[gingham-cni agent\] add: ipam: \+3\.1 ms/);
    assert.match(r.stderr, /\[gingham-cni agent\] total in agent: 9\.0 ms/);
    assert.match(r.stderr, /process started at \d+\.\d \(epoch ms\)/);
    assert.match(r.stderr, /answer printed at \d+\.\d \(epoch ms\)/);
  });

  it('an answer with no output (DEL) prints nothing and exits 0', async () => {
    await serve((_line, sock) => sock.end(formatPlainResponse({ v: 1, exitCode: 0 })));
    const r = await run({ ...add, CNI_COMMAND: 'DEL' }, conf());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
  });

  it('no agent at the socket: 11 naming it (cniVersion of the configuration); STATUS 50', async () => {
    await stopServer();
    const r = await run(add, conf());
    assert.equal(r.code, 1);
    assert.equal(r.json.code, 11);
    assert.equal(r.json.cniVersion, '1.0.0');
    assert.equal(r.json.msg, `gingham agent not reachable at ${socket}: ENOENT (No such file or directory)`);
    assert.match(r.json.details, /--cni-socket/);
    const s = await run({ CNI_COMMAND: 'STATUS' }, conf());
    assert.equal(s.json.code, 50);
  });

  it('an agent that hangs up, hangs, or answers garbage: 11 with the reason', async () => {
    await serve((_line, sock) => sock.destroy());
    let r = await run(add, conf());
    assert.equal(r.json.code, 11);
    assert.match(r.json.msg, /closed the connection without answering/);

    await serve(() => undefined);
    r = await run({ ...add, GINGHAM_CNI_AGENT_TIMEOUT_MS: '300' }, conf());
    assert.equal(r.json.code, 11);
    assert.match(r.json.msg, /no answer within 300 ms/);

    await serve((_line, sock) => sock.end('{"v":1,"exitCode":0}\n'));
    r = await run(add, conf());
    assert.equal(r.json.code, 11);
    assert.match(r.json.msg, /does not start with an exit code line/);
  });

  it('reads agent_socket as JSON.parse does: escapes, the last of repeated keys', async () => {
    await serve((_line, sock) => sock.end(formatPlainResponse({ v: 1, exitCode: 0, output: { ok: 1 } })));
    const escaped = `{"cniVersion":"1.0.0","agent_socket":${JSON.stringify(socket).replace(/\//g, '\\/')}}`;
    assert.equal(wantsAgent(escaped), true);
    assert.deepEqual((await run(add, escaped)).json, { ok: 1 });
    const repeated = `{"agent_socket":"/nowhere.sock","cniVersion":"1.0.0","agent_socket":${JSON.stringify(socket)}}`;
    assert.deepEqual((await run(add, repeated)).json, { ok: 1 });
  });

  it('without an agent socket hands the configuration to the Node plugin (direct mode)', {
    skip: !existsSync(NODE_PLUGIN) && 'needs the build (dist/cni/gingham-cni.cjs)',
  }, async () => {
    symlinkSync(NODE_PLUGIN, join(dir, 'gingham-cni.cjs'));
    // Each configuration below is one the launcher too sends to the direct plugin; the plugin's own
    // check of CNI_CONTAINERID answers (code 4), which shows it got the call and its stdin.
    for (const text of [
      '{"cniVersion":"1.0.0","name":"n","type":"gingham-cni"}',
      '{"cniVersion":"1.0.0","agent_socket":"relative.sock"}',
      '{"cniVersion":"1.0.0","agent_socket":42}',
      `{"cniVersion":"1.0.0","agent_socket":${JSON.stringify(socket)},"agent_socket":null}`,
      `{"cniVersion":"1.0.0","agent_socket":${JSON.stringify(socket)},}`,
    ]) {
      assert.equal(wantsAgent(text), false, text);
      const r = await run({ CNI_COMMAND: 'ADD' }, text);
      assert.equal(r.code, 1, text);
      assert.equal(r.json.code, 4, `${text}: ${r.stdout}${r.stderr}`);
      assert.match(r.json.msg, /CNI_CONTAINERID/);
    }
  });

  it('direct mode without the Node plugin next to it: a CNI error naming the missing file', async () => {
    const lone = join(dir, 'lone');
    execFileSync('mkdir', [lone]);
    execFileSync('cp', [bin, join(lone, 'gingham-cni')]);
    const r = await run(add, '{"cniVersion":"1.0.0"}', join(lone, 'gingham-cni'));
    assert.equal(r.code, 1);
    assert.equal(r.json.code, 5);
    assert.match(r.json.msg, /direct mode needs .*lone\/gingham-cni\.cjs/);
  });
});
