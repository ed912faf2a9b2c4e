// Renders figures as a plain-text table (the bench's output) or a Markdown one (docs/benchmarks.md).
import type { Figure, Target } from './figures.js';

export function formatNumber(value: number | null): string {
  if (value === null) return '—';
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function withUnit(value: number | null, unit: string): string {
  if (value === null) return '—';
  return unit === 'x' ? `${formatNumber(value)}x` : `${formatNumber(value)} ${unit}`;
}

export function formatTarget(target: Target | null, unit: string): string {
  if (target === null) return '';
  const sign = target.kind.endsWith('at-most') ? '≤' : '≥';
  return target.kind.startsWith('ratio') ? `${sign} ${target.value}x` : `${sign} ${withUnit(target.value, unit)}`;
}

function verdict(figure: Figure): string {
  if (figure.met === null) return figure.target === null ? '' : 'n/a';
  return figure.met ? 'met' : 'MISSED';
}

interface Row {
  label: string;
  gatehouse: string;
  counterpart: string;
  against: string;
  ratio: string;
  target: string;
  verdict: string;
}

function rows(figures: readonly Figure[]): Row[] {
  return figures.map((figure) => ({
    label: figure.label,
    gatehouse: withUnit(figure.gatehouse, figure.unit),
    counterpart: figure.counterpart ? withUnit(figure.counterpart.value, figure.unit) : '',
    against: figure.counterpart?.name ?? '',
    ratio: figure.ratio === null ? '' : `${figure.ratio.toFixed(2)}x`,
    target: formatTarget(figure.target, figure.unit),
    verdict: verdict(figure),
  }));
}

const HEADER: Row = {
  label: 'Figure',
  gatehouse: 'gatehouse',
  counterpart: 'counterpart',
  against: '(measured with)',
  ratio: 'ratio',
  target: 'target',
  verdict: '',
};

export function textTable(figures: readonly Figure[]): string {
  const all = [HEADER, ...rows(figures)];
  const keys = Object.keys(HEADER) as Array<keyof Row>;
  const width = Object.fromEntries(keys.map((key) => [key, Math.max(...all.map((row) => row[key].length))])) as Record<
    keyof Row,
    number
  >;
  const numeric = new Set<keyof Row>(['gatehouse', 'counterpart', 'ratio']);
  return all
    .map((row) =>
      keys
        .map((key) => (numeric.has(key) ? row[key].padStart(width[key]) : row[key].padEnd(width[key])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function markdownTable(figures: readonly Figure[]): string {
  const escape = (text: string): string => text.replaceAll('|', '\\|').trim();
  // The text table indents a detail row under its figure; Markdown cells drop leading spaces.
  const label = (text: string): string => (text.startsWith('  ') ? `↳ ${escape(text)}` : escape(text));
  const lines = [
    '| Figure | gatehouse | counterpart | measured with | ratio | target | |',
    '|---|--:|--:|---|--:|---|---|',
    ...rows(figures).map(
      (row) =>
        `| ${label(row.label)} | ${row.gatehouse} | ${row.counterpart} | ${escape(row.against)} | ${row.ratio} | ${row.target} | ${row.verdict === 'MISSED' ? '**missed**' : row.verdict} |`,
    ),
  ];
  return lines.join('\n');
}
