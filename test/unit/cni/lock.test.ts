import { describe, expect, it } from 'vitest';
import { KeyedLocks, RwLock } from '../../../src/cni/lock.js';

describe('locks', () => {
  it('RwLock: shared together, exclusive alone, FIFO', async () => {
    const lock = new RwLock();
    const order: string[] = [];
    const r1 = await lock.acquire(false);
    const r2 = await lock.acquire(false);
    const w = lock.acquire(true).then((rel) => {
      order.push('w');
      return rel;
    });
    const r3 = lock.acquire(false).then((rel) => {
      order.push('r3');
      return rel;
    });
    await new Promise((r) => setTimeout(r, 1));
    expect(order).toEqual([]);
    r1();
    r2();
    (await w)();
    (await r3)();
    expect(order).toEqual(['w', 'r3']);
    expect(lock.idle).toBe(true);
  });

  it('KeyedLocks drops idle keys', async () => {
    const locks = new KeyedLocks();
    const a = await locks.acquire('a', true);
    const b = locks.acquire('a', true);
    expect(locks.size).toBe(1);
    a();
    a();
    (await b)();
    expect(locks.size).toBe(0);
  });
});
