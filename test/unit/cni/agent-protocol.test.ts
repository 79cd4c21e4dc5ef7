// Agent mode without an agent: the protocol's parsing, the launcher's choice of mode, and the
// thin client's answer when there is nobody at the socket (a real connect to a missing path).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  formatPlainResponse,
  ProtocolError,
  parseRequest,
  parseResponse,
  wantsPlainReply,
} from '../../../cni/agent-protocol.js';
import { parseNetConf } from '../../../cni/config.js';
import { wantsAgent } from '../../../cni/launch.cjs';
import { forward } from '../../../cni/thin.js';

describe('cni agent protocol', () => {
  it('parses requests and refuses malformed ones', () => {
    const r = parseRequest('{"v":1,"env":{"CNI_COMMAND":"ADD"},"stdin":"{}","trace":true}');
    assert.deepEqual(r, { v: 1, env: { CNI_COMMAND: 'ADD' }, stdin: '{}', trace: true });
    assert.deepEqual(parseRequest('{"v":1,"env":{},"stdin":""}'), { v: 1, env: {}, stdin: '' });
    assert.throws(() => parseRequest('{"v":1,"env":{},"stdin"'), ProtocolError);
    assert.throws(() => parseRequest('[]'), /not a JSON object/);
    assert.throws(() => parseRequest('{"v":2,"env":{},"stdin":""}'), /protocol version 2, expected 1/);
    assert.throws(
      () => parseRequest('{"v":1,"env":{"A":1},"stdin":""}'),
      /"env" must be an object of strings/,
    );
    assert.throws(() => parseRequest('{"v":1,"env":{}}'), /"stdin" must be a string/);
  });

  it('parses answers', () => {
    assert.deepEqual(parseResponse('{"v":1,"exitCode":0}'), { v: 1, exitCode: 0 });
    const err = { cniVersion: '1.0.0', code: 7, msg: 'bad' };
    assert.deepEqual(parseResponse(JSON.stringify({ v: 1, exitCode: 1, output: err, trace: ['a'] })), {
      v: 1,
      exitCode: 1,
      output: err,
      trace: ['a'],
    });
    assert.throws(() => parseResponse('{"v":1,"exitCode":2}'), /"exitCode" must be 0 or 1/);
  });

  it('plain answers: the exit code line, "#" trace lines, then what the plugin prints', () => {
    assert.deepEqual(parseRequest('{"v":1,"reply":"plain","env":{},"stdin":""}').reply, 'plain');
    assert.throws(() => parseRequest('{"v":1,"reply":"xml","env":{},"stdin":""}'), /"reply" must be "plain"/);
    assert.equal(wantsPlainReply('{"v":1,"reply" : "plain","env":'), true, 'even when it does not parse');
    assert.equal(wantsPlainReply('{"v":1,"env":{},"stdin":"{\\"reply\\":1}"}'), false);
    assert.equal(formatPlainResponse({ v: 1, exitCode: 0 }), '0\n');
    assert.equal(
      formatPlainResponse({
        v: 1,
        exitCode: 1,
        output: { code: 7, msg: 'a\nb' },
        trace: ['x: +1 ms', 'two\nlines'],
      }),
      '1\n#x: +1 ms\n#two lines\n{"code":7,"msg":"a\\nb"}\n',
    );
  });

  it('the launcher chooses agent mode only for an absolute agent_socket string', () => {
    assert.equal(wantsAgent('{"cniVersion":"1.0.0","agent_socket":"/run/g.sock"}'), true);
    assert.equal(wantsAgent('{"cniVersion":"1.0.0"}'), false);
    assert.equal(wantsAgent(''), false);
    // Left to the direct plugin, whose parser reports what is wrong.
    assert.equal(wantsAgent('{"agent_socket":"relative.sock"}'), false);
    assert.equal(wantsAgent('{"agent_socket":3}'), false);
    assert.equal(wantsAgent('{"agent_socket":"/x.sock"'), false);
  });

  it('the configuration key agent_socket must be an absolute path', () => {
    const base = { cniVersion: '1.0.0', name: 'n', type: 'gingham-cni' };
    assert.equal(
      parseNetConf(JSON.stringify({ ...base, agent_socket: '/run/g.sock' })).agent_socket,
      '/run/g.sock',
    );
    assert.throws(
      () => parseNetConf(JSON.stringify({ ...base, agent_socket: 'g.sock' })),
      /"agent_socket" must be an absolute path of a unix socket/,
    );
  });

  it('nobody at the socket: error 11 naming the socket and why; STATUS says 50', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gingham-thin-'));
    try {
      const missing = join(dir, 'absent.sock');
      const conf = JSON.stringify({ cniVersion: '1.0.0', agent_socket: missing });
      const add = await forward(missing, conf, { CNI_COMMAND: 'ADD' });
      assert.equal(add.exitCode, 1);
      const out = add.output as { cniVersion: string; code: number; msg: string; details: string };
      assert.equal(out.code, 11);
      assert.equal(out.cniVersion, '1.0.0', 'in the configuration’s version');
      assert.ok(out.msg.includes(missing), out.msg);
      assert.match(out.msg, /ENOENT/);
      assert.match(out.details, /--cni-socket/);
      const st = await forward(missing, conf, { CNI_COMMAND: 'STATUS' });
      assert.equal((st.output as { code: number }).code, 50);
      // A plain file where the socket should be: still a clear "not reachable".
      const file = join(dir, 'file.sock');
      writeFileSync(file, '');
      const r = await forward(file, conf, { CNI_COMMAND: 'DEL' });
      assert.equal((r.output as { code: number; msg: string }).code, 11);
      assert.ok((r.output as { msg: string }).msg.includes(file));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
