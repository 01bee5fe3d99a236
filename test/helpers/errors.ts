// Checks on the errors podnet throws, for unit and integration tests alike.
import { expect } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';

/** Expects `fn()` to throw an InvalidArgumentError whose message contains `naming`. */
export function throwsInvalidArgument(fn: () => unknown, naming: string): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(InvalidArgumentError);
  expect((error as Error).message).toContain(naming);
}
