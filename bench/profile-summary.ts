// Summarises a V8 CPU profile (`node --cpu-prof`, or `npm run bench -- --profile DIR`): self time by
// package (ours, grpc-js, protobufjs, Node.js internals, GC...) and the hottest functions, which is
// the evidence docs/benchmarks.md quotes for each missed target.
//
//   node dist/bench/profile-summary.js FILE.cpuprofile [--top N]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Which part of the stack a function belongs to, from its script URL. */
function category(url: string, functionName: string): string {
  if (url === '') {
    // V8's pseudo-frames keep their own names; anything else without a script is native code.
    return functionName.startsWith('(') ? functionName : '(native)';
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg !== undefined) return pkg;
  if (url.startsWith('node:')) return 'node internals';
  if (/\/dist\/src\//.test(url)) return 'gatehouse src';
  if (/\/dist\/(bench|examples)\//.test(url)) return 'bench and example code';
  return url;
}

interface ProfileSummary {
  totalMs: number;
  byCategory: Array<{ name: string; ms: number; share: number }>;
  byFunction: Array<{ name: string; where: string; ms: number; share: number }>;
}

function summarizeProfile(profile: Profile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + delta);
    totalUs += delta;
  });
  const categories = new Map<string, number>();
  const functions = new Map<string, { name: string; where: string; us: number }>();
  for (const [id, us] of self) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) continue;
    const name = category(frame.url, frame.functionName);
    categories.set(name, (categories.get(name) ?? 0) + us);
    const where = frame.url === '' ? '' : `${frame.url.replace(/^.*\/(node_modules|dist)\//, '')}:${frame.lineNumber + 1}`;
    const key = `${frame.functionName}@${where}`;
    const entry = functions.get(key) ?? { name: frame.functionName || '(anonymous)', where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
  }
  const share = (us: number): number => (totalUs === 0 ? 0 : us / totalUs);
  return {
    totalMs: totalUs / 1000,
    byCategory: [...categories]
      .map(([name, us]) => ({ name, ms: us / 1000, share: share(us) }))
      .sort((a, b) => b.ms - a.ms),
    byFunction: [...functions.values()]
      .map(({ name, where, us }) => ({ name, where, ms: us / 1000, share: share(us) }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top),
  };
}

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' } } });
  for (const file of positionals) {
    const summary = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(values.top ?? 25));
    const pct = (share: number): string => `${(share * 100).toFixed(1).padStart(5)}%`;
    const lines = [`${file}: ${summary.totalMs.toFixed(0)} ms sampled`, '  self time by package:'];
    for (const c of summary.byCategory.slice(0, 12)) lines.push(`    ${pct(c.share)} ${c.ms.toFixed(0).padStart(7)} ms  ${c.name}`);
    lines.push('  hottest functions (self time):');
    for (const f of summary.byFunction) lines.push(`    ${pct(f.share)} ${f.ms.toFixed(1).padStart(8)} ms  ${f.name}  ${f.where}`);
    process.stdout.write(lines.join('\n') + '\n');
  }
}

main();
