// Every ```ts block in README.md and docs/*.md must typecheck against the built package, imported by
// its npm name, as a user would write it. A block that is only a fragment says so: ```ts fragment.
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import ts from 'typescript';
import { strictProgram } from '../helpers/type-check.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
// Inside the package, so that `gatehouse-plugins` resolves to dist/ through the package's own exports.
const blockDir = join(repo, 'dist', 'doc-blocks');

interface Block {
  file: string;
  line: number;
  code: string;
}

/** The ```ts blocks of a markdown file, with the line of their opening fence. */
export function tsBlocks(file: string, markdown: string): { blocks: Block[]; fragments: number } {
  const blocks: Block[] = [];
  let fragments = 0;
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(ts|typescript)(\s+fragment)?\s*$/.exec(lines[i] as string);
    if (!fence) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] as string); i++) body.push(lines[i] as string);
    if (fence[2]) fragments++;
    else blocks.push({ file, line: start + 1, code: body.join('\n') });
  }
  return { blocks, fragments };
}

test('every ts code block in README.md and docs/ typechecks against the built package', async (t) => {
  // A whole typecheck, generated code included: slow on a loaded machine, and that is not a failure.
  t.timeout(300_000);
  const files = ['README.md', ...(await readdir(join(repo, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const blocks: Block[] = [];
  let fragments = 0;
  for (const file of files) {
    const found = tsBlocks(file, await readFile(join(repo, file), 'utf8'));
    blocks.push(...found.blocks);
    fragments += found.fragments;
  }
  t.log(`${blocks.length} blocks checked, ${fragments} marked as fragments`);
  t.true(blocks.length >= 2, 'the README blocks were found');

  await rm(blockDir, { recursive: true, force: true });
  await mkdir(blockDir, { recursive: true });
  // Blocks may import the committed generated code of the examples as `./generated/...`.
  await symlink(join(repo, 'examples', 'generated'), join(blockDir, 'generated'));
  const byPath = new Map<string, Block>();
  for (const [index, block] of blocks.entries()) {
    const path = join(blockDir, `block-${index}.ts`);
    // `export {}` keeps each block a module of its own, as a user's file would be.
    await writeFile(path, `${block.code}\nexport {};\n`);
    byPath.set(path, block);
  }
  const program = strictProgram([...byPath.keys()], { esModuleInterop: true });
  const failures = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    const block = diagnostic.file ? byPath.get(diagnostic.file.fileName) : undefined;
    if (!diagnostic.file || !block) return `${diagnostic.file?.fileName ?? '(global)'}: ${text}`;
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
    // The opening fence is block.line; the block's first line is the next one.
    return `${block.file}:${block.line + 1 + line} (the ts block opened at line ${block.line}): ${text}`;
  });
  t.deepEqual(failures, [], `code blocks that do not typecheck (mark a deliberate fragment with \`\`\`ts fragment):\n${failures.join('\n')}`);
});

test('blocks are found with their line, and fragments are skipped', (t) => {
  const found = tsBlocks('x.md', 'text\n```ts\nconst a = 1;\n```\n```ts fragment\nb;\n```\n```sh\nls\n```\n');
  t.deepEqual(found.blocks, [{ file: 'x.md', line: 2, code: 'const a = 1;' }]);
  t.is(found.fragments, 1);
});
