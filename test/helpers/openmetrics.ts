// A strict OpenMetrics 1.0 text parser for tests: the spec's ABNF and the
// MUSTs a reader can check (EOF last, no CR, metadata once per family and
// before its samples, families and metrics not interleaved, sample names
// by type, label escapes and unique names, unique label sets, histogram
// buckets sorted, cumulative, ending in +Inf and matching _count). Any
// violation throws, naming the line: an exposition that parses here is one
// a strict ingestor accepts.

/** One sample line. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One metric family with its metadata and samples, in exposition order. */
export interface Family {
  name: string;
  type: string;
  unit?: string;
  help?: string;
  samples: Sample[];
}

const TYPES = new Set([
  'counter',
  'gauge',
  'histogram',
  'gaugehistogram',
  'stateset',
  'info',
  'summary',
  'unknown',
]);
const SUFFIXES: Record<string, string[]> = {
  counter: ['_total', '_created'],
  histogram: ['_bucket', '_count', '_sum', '_created'],
  gaugehistogram: ['_bucket', '_gcount', '_gsum'],
  summary: ['', '_count', '_sum', '_created'],
  info: ['_info'],
  gauge: [''],
  stateset: [''],
  unknown: [''],
};
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const REAL = /^[+-]?(?:\d+(?:\.\d*)?(?:e[+-]?\d+)?|\d*\.\d+(?:e[+-]?\d+)?)$/;

function parseNumber(text: string, where: string): number {
  if (REAL.test(text)) return Number(text);
  const lower = text.toLowerCase();
  if (/^[+-]?(inf|infinity)$/.test(lower))
    return lower.startsWith('-') ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  if (lower === 'nan') return Number.NaN;
  throw new Error(`${where}: '${text}' is not a number`);
}

/** Parses `{a="x",b="y"}` starting at `line[at]`; returns the labels and the index after `}`. */
function parseLabels(line: string, at: number, where: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  let i = at + 1;
  if (line[i] === '}') return [labels, i + 1];
  for (;;) {
    const eq = line.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = line.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`${where}: bad label name '${name}'`);
    if (name.startsWith('__')) throw new Error(`${where}: reserved label name '${name}'`);
    if (Object.hasOwn(labels, name)) throw new Error(`${where}: label '${name}' twice`);
    if (line[eq + 1] !== '"') throw new Error(`${where}: label '${name}' value not quoted`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      const c = line[j];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const e = line[j + 1];
        if (e === 'n') value += '\n';
        else if (e === '"') value += '"';
        else if (e === '\\') value += '\\';
        else throw new Error(`${where}: undefined escape '\\${e ?? ''}'`);
        j += 2;
        continue;
      }
      value += c;
      j++;
    }
    labels[name] = value;
    i = j + 1;
    if (line[i] === '}') return [labels, i + 1];
    if (line[i] !== ',') throw new Error(`${where}: expected ',' or '}' after a label`);
    i++;
  }
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_, e: string) => {
    if (e === 'n') return '\n';
    if (e === '"' || e === '\\') return e;
    throw new Error(`${where}: undefined escape in HELP`);
  });
}

function key(labels: Record<string, string>, without?: string): string {
  return JSON.stringify(
    Object.entries(labels)
      .filter(([k]) => k !== without)
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );
}

function checkHistogram(f: Family): void {
  const series = new Map<string, Sample[]>();
  for (const s of f.samples) {
    const k = key(s.labels, 'le');
    series.set(k, [...(series.get(k) ?? []), s]);
  }
  for (const [k, samples] of series) {
    const buckets = samples.filter((s) => s.name === `${f.name}_bucket`);
    const les = buckets.map((b) => {
      const le = b.labels['le'];
      if (le === undefined) throw new Error(`${f.name}${k}: a bucket without le`);
      return parseNumber(le, `${f.name}${k}`);
    });
    if (les.at(-1) !== Number.POSITIVE_INFINITY) throw new Error(`${f.name}${k}: no +Inf bucket`);
    for (let i = 1; i < les.length; i++) {
      if (!(les[i]! > les[i - 1]!)) throw new Error(`${f.name}${k}: buckets not sorted by le`);
      if (buckets[i]!.value < buckets[i - 1]!.value)
        throw new Error(`${f.name}${k}: buckets not cumulative`);
    }
    if (buckets.some((b) => !(b.value >= 0))) throw new Error(`${f.name}${k}: negative bucket`);
    const count = samples.find((s) => s.name === `${f.name}_count`);
    const sum = samples.find((s) => s.name === `${f.name}_sum`);
    if ((count === undefined) !== (sum === undefined))
      throw new Error(`${f.name}${k}: _count and _sum go together`);
    if (count !== undefined && count.value !== buckets.at(-1)!.value)
      throw new Error(`${f.name}${k}: _count is not the +Inf bucket`);
  }
}

/** Parses an exposition, or throws naming the first rule it breaks. */
export function parseOpenMetrics(text: string): Family[] {
  if (text.includes('\r')) throw new Error('carriage return in exposition');
  if (text.startsWith('\uFEFF')) throw new Error('byte order mark');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.at(-1) !== '# EOF') throw new Error('exposition does not end with # EOF');
  lines.pop();
  const families: Family[] = [];
  const done = new Set<string>();
  let current: (Family & { seen: Set<string>; samplesStarted: boolean }) | undefined;
  let metricKey: string | undefined;
  const metricsDone = new Set<string>();
  const labelSets = new Set<string>();
  const open = (name: string, where: string) => {
    if (current?.name === name) return current;
    if (done.has(name)) throw new Error(`${where}: family '${name}' interleaved or repeated`);
    if (current) done.add(current.name);
    current = { name, type: 'unknown', samples: [], seen: new Set(), samplesStarted: false };
    families.push(current);
    metricKey = undefined;
    metricsDone.clear();
    labelSets.clear();
    return current;
  };
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line.startsWith('#')) {
      const m = /^# (TYPE|HELP|UNIT) ([^ ]+) ?(.*)$/.exec(line);
      if (!m) throw new Error(`${where}: a # line that is not TYPE, HELP or UNIT`);
      const [, kind, name = '', rest = ''] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad family name '${name}'`);
      const f = open(name, where);
      if (f.samplesStarted) throw new Error(`${where}: metadata after samples of '${name}'`);
      if (f.seen.has(kind!)) throw new Error(`${where}: second ${kind} for '${name}'`);
      f.seen.add(kind!);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type '${rest}'`);
        f.type = rest;
      } else if (kind === 'UNIT') {
        if (rest !== '' && !name.endsWith(`_${rest}`))
          throw new Error(`${where}: unit '${rest}' is not a suffix of '${name}'`);
        if (rest !== '') f.unit = rest;
      } else if (rest !== '') f.help = unescapeHelp(rest, where);
      return;
    }
    const nameEnd = line.search(/[{ ]/);
    if (nameEnd <= 0) throw new Error(`${where}: not a sample`);
    const name = line.slice(0, nameEnd);
    if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name '${name}'`);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (line[i] === '{') [labels, i] = parseLabels(line, i, where);
    if (line[i] !== ' ') throw new Error(`${where}: no space before the value`);
    const tokens = line.slice(i + 1).split(' ');
    if (tokens.length > 2 || tokens.some((t) => t === ''))
      throw new Error(`${where}: trailing text after value (exemplars are not expected)`);
    const value = parseNumber(tokens[0]!, where);
    if (tokens[1] !== undefined) parseNumber(tokens[1], where);
    const f = current;
    const suffix = f && (SUFFIXES[f.type] ?? ['']).find((s) => name === f.name + s);
    if (!f || suffix === undefined)
      throw new Error(`${where}: sample '${name}' outside its family`);
    f.samplesStarted = true;
    if (f.type === 'counter' && suffix === '_total' && !(value >= 0))
      throw new Error(`${where}: counter total ${value} is negative or NaN`);
    const set = `${name}${key(labels)}`;
    if (labelSets.has(set)) throw new Error(`${where}: label set repeated`);
    labelSets.add(set);
    const metric = key(labels, f.type.includes('histogram') ? 'le' : undefined);
    if (metric !== metricKey) {
      if (metricsDone.has(metric)) throw new Error(`${where}: metrics interleaved`);
      if (metricKey !== undefined) metricsDone.add(metricKey);
      metricKey = metric;
    }
    f.samples.push({ name, labels, value });
  });
  for (const f of families) if (f.type === 'histogram') checkHistogram(f);
  return families.map(({ name, type, unit, help, samples }) => ({
    name,
    type,
    samples,
    ...(unit === undefined ? {} : { unit }),
    ...(help === undefined ? {} : { help }),
  }));
}

/** The value of sample NAME with exactly LABELS in FAMILIES, or undefined. */
export function sampleValue(
  families: readonly Family[],
  name: string,
  labels: Record<string, string>,
): number | undefined {
  for (const f of families) {
    for (const s of f.samples) if (s.name === name && key(s.labels) === key(labels)) return s.value;
  }
  return undefined;
}
