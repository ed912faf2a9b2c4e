// Compiling probe files as a user's strict TypeScript project would (NodeNext, Node's types), for the
// tests that check what tsc says about the package's types and the docs' code blocks.
import ts from 'typescript';

/** The program of `files` with the options of a strict user project, and `extra` on top. */
export function strictProgram(files: readonly string[], extra: ts.CompilerOptions = {}): ts.Program {
  return ts.createProgram([...files], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'],
    types: ['node'],
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    ...extra,
  });
}
