// serve() must say at start what grpc-js says only as UNIMPLEMENTED at call time (or never, for a
// handler under a misspelt name).
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { launch } from '../../src/index.js';
import { NOTES_COOKIE } from '../../examples/typed/notes-store.js';
import { NotesService } from '../../examples/generated/ts-proto/notes.js';
import { implementationProblems } from '../../src/plugin/implementation-check.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const misspelt = fileURLToPath(new URL('../fixtures/misspelt-plugin.js', import.meta.url));

test('implementationProblems names missing and undeclared handlers; proto-loader originalNames count as declared', (t) => {
  const problems = implementationProblems({
    definition: NotesService,
    implementation: { add: () => {}, list: () => {}, Upload: () => {}, lisst: () => {} },
  });
  t.deepEqual(problems, [
    'notes.Notes: the implementation lacks upload; calls to it will answer UNIMPLEMENTED',
    'notes.Notes: the implementation lacks chat; calls to it will answer UNIMPLEMENTED',
    'notes.Notes: the implementation has Upload, which the service does not declare (it has add, list, upload, chat); misspelt?',
    'notes.Notes: the implementation has lisst, which the service does not declare (it has add, list, upload, chat); misspelt?',
  ]);
  const withOriginalName = { Get: { ...NotesService.add, originalName: 'get' } };
  t.deepEqual(implementationProblems({ definition: withOriginalName, implementation: { get: () => {} } }), []);
});

test('serve() warns at start, and the host sees the warnings at warn level', async (t) => {
  const logger = recordingLogger();
  await using plugin = await launch({ command: process.execPath, args: [misspelt], cookie: NOTES_COOKIE, logger });
  t.is(await plugin.client(NotesService).add({ id: '', text: 'x', stars: 0 }).then((r) => r.id), 'n1');
  const warnings = (): string[] => logger.records.filter((r) => r.level === 'warn').map((r) => r.message);
  // stderr is read apart from the call: wait for the lines rather than assume they came first.
  for (let i = 0; i < 500 && warnings().length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  t.true(warnings().some((m) => m.includes('lacks list')), warnings().join('\n'));
  t.true(warnings().some((m) => m.includes('has lisst, which the service does not declare')), warnings().join('\n'));
});
