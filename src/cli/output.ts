import { styleText } from 'node:util';

/** Formats rows as an aligned text table with a header line. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const head = line(header);
  return [process.stdout.isTTY ? styleText('bold', head) : head, ...cells.slice(1).map(line)].join(
    '\n',
  );
}

/** Human-readable byte count (KiB, MiB, ...). */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/**
 * Writes one result to stdout: VALUE as indented JSON with `--json`, else
 * TEXT() (only computed when needed).
 */
export function print(json: boolean, value: unknown, text: () => string): void {
  if (json) printJson(value);
  else process.stdout.write(`${text()}\n`);
}

/** Writes VALUE to stdout as indented JSON. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Length of a container ID in tables, as podman and docker shorten them. */
const SHORT_ID = 12;

/** ID cut to 12 characters for a table column (JSON keeps it whole). */
export function shortId(id: string): string {
  return id.length > SHORT_ID ? id.slice(0, SHORT_ID) : id;
}
