// The delay line's classifier, instruction by instruction: the program the
// kernel's verifier accepts (test/integration/testing/impair.test.ts loads
// it and runs traffic through it).
import { describe, expect, it } from 'vitest';
import { DELAY_LINE_MARK, redirectProgram } from '../../../src/testing/delay-line.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('redirectProgram', () => {
  it('passes marked frames and redirects the rest to the tap', () => {
    expect(redirectProgram(3, DELAY_LINE_MARK)).toEqual(
      hex(`
        61 12 0800 00000000
        15 02 0400 6c646e70
        b7 01 0000 03000000
        b7 02 0000 00000000
        85 00 0000 17000000
        95 00 0000 00000000
        b7 00 0000 00000000
        95 00 0000 00000000`),
    );
  });

  it('uses a mark that a sign-extended 32-bit immediate compares equal to', () => {
    expect(DELAY_LINE_MARK).toBeLessThan(2 ** 31);
    expect(redirectProgram(0x12345, DELAY_LINE_MARK).readInt32LE(2 * 8 + 4)).toBe(0x12345);
  });
});
