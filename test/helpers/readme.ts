// The ```ts blocks of README.md, for the tests that check and run them.
import { readFileSync } from 'node:fs';

/** One ```ts block: the README line its code starts on, and the code. */
export interface ReadmeBlock {
  line: number;
  code: string;
}

/** A block that is deliberately a fragment starts with this line. */
export const FRAGMENT = '// readme: fragment';

/** Every ```ts block of README.md, in order. */
export function readmeBlocks(): ReadmeBlock[] {
  const lines = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').split('\n');
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```ts') continue;
    const start = i + 1;
    while (i + 1 < lines.length && lines[i + 1] !== '```') i++;
    blocks.push({ line: start + 1, code: lines.slice(start, i + 1).join('\n') });
    i++;
  }
  return blocks;
}
