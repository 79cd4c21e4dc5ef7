// The launcher answers VERSION itself (before loading any plugin code); its answer must stay the
// one the plugin's dispatch gives, which is what the direct plugin and the agent answer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cniCommands } from '../../../cni/commands.js';
import { SUPPORTED_VERSIONS } from '../../../cni/config.js';
import { VERSION_ANSWER } from '../../../cni/launch.cjs';
import { invoke } from '../../../cni/skel.js';

describe('cni launcher VERSION', () => {
  it('answers what invoke answers', async () => {
    const handlers = cniCommands({
      node: () => 'n1',
      open: () => {
        throw new Error('VERSION must not open the datastore');
      },
    });
    const o = await invoke(handlers, { CNI_COMMAND: 'VERSION' }, '');
    assert.equal(o.exitCode, 0);
    assert.deepEqual(JSON.parse(JSON.stringify(VERSION_ANSWER)), JSON.parse(JSON.stringify(o.output)));
    assert.deepEqual(VERSION_ANSWER.supportedVersions, [...SUPPORTED_VERSIONS]);
  });
});
