/** Releases a held lock. */
export type Release = () => void;

interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

/**
 * A FIFO reader/writer lock: shared holders run together, an exclusive holder
 * runs alone. Waiters are served in arrival order, so a stream of shared
 * requests cannot starve an exclusive one.
 */
export class RwLock {
  #shared = 0;
  #exclusive = false;
  readonly #queue: Waiter[] = [];

  /** True when nobody holds or waits for the lock. */
  get idle(): boolean {
    return this.#shared === 0 && !this.#exclusive && this.#queue.length === 0;
  }

  /** Waits for the lock, shared or exclusive. */
  acquire(exclusive: boolean): Promise<Release> {
    return new Promise((resolve) => {
      this.#queue.push({
        exclusive,
        grant: () => resolve(this.#releaser(exclusive)),
      });
      this.#drain();
    });
  }

  #releaser(exclusive: boolean): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (exclusive) this.#exclusive = false;
      else this.#shared--;
      this.#drain();
    };
  }

  #drain(): void {
    while (this.#queue.length > 0 && !this.#exclusive) {
      const next = this.#queue[0]!;
      if (next.exclusive && this.#shared > 0) return;
      this.#queue.shift();
      if (next.exclusive) this.#exclusive = true;
      else this.#shared++;
      next.grant();
    }
  }
}

/**
 * Locks keyed by string, created on first use and dropped when idle, so a
 * long-lived runtime does not accumulate one per container it ever saw.
 */
export class KeyedLocks {
  readonly #locks = new Map<string, RwLock>();

  /** Waits for the lock on `key`. */
  async acquire(key: string, exclusive: boolean): Promise<Release> {
    let lock = this.#locks.get(key);
    if (lock === undefined) {
      lock = new RwLock();
      this.#locks.set(key, lock);
    }
    const release = await lock.acquire(exclusive);
    const held = lock;
    return () => {
      release();
      if (held.idle && this.#locks.get(key) === held) this.#locks.delete(key);
    };
  }

  /** How many keys currently have a lock (for tests of the cleanup). */
  get size(): number {
    return this.#locks.size;
  }
}
