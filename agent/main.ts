#!/usr/bin/env node
// Direct entry for the agent (`node --import tsx agent/main.ts --node N ...`), equivalent to
// `gingham agent ...`; tests use it so they do not depend on the CLI dispatcher.
// First: V8 settings for the agent, before the rest of it loads (see the module).
import './v8-flags.js';
import { run } from '../cli/commands/agent.js';

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
