// Calling a client or bidi streaming method on plugin.client() is a type error; what tsc prints for it
// must say what to use instead, not only that the member "has no call signatures".
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import ts from 'typescript';
import { strictProgram } from '../helpers/type-check.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
// Inside the package, so that `gatehouse-plugins` resolves to dist/ through the package's own exports.
const probeDir = join(repo, 'dist', 'type-probe-streaming');

test("tsc's error for a client-streaming call on plugin.client() names plugin.grpcClient()", async (t) => {
  t.timeout(120_000);
  await rm(probeDir, { recursive: true, force: true });
  await mkdir(probeDir, { recursive: true });
  await symlink(join(repo, 'examples', 'generated'), join(probeDir, 'generated'));
  const probe = join(probeDir, 'probe.ts');
  await writeFile(
    probe,
    [
      "import type { Plugin } from 'gatehouse-plugins';",
      "import { NotesService } from './generated/ts-proto/notes.js';",
      'export function upload(plugin: Plugin): void {',
      "  void plugin.client(NotesService).upload({ id: '', text: 'x', stars: 0 });",
      '}',
    ].join('\n'),
  );
  const program = strictProgram([probe]);
  const messages = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  await rm(probeDir, { recursive: true, force: true });
  t.is(messages.length, 1, messages.join('\n'));
  t.regex(messages[0] ?? '', /use plugin\.grpcClient\(\)/);
});
