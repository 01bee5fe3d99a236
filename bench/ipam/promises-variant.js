// The same file operations as one reserve + release of src/bridge/ipam.ts
// (readdir and a read per lease, an exclusive create of the lease,
// last_reserved_ip, then readdir, reads and an unlink), through fs.promises:
// the figure that decided that ipam.ts uses sync calls. The flock is the
// same native call, the address arithmetic left out (it favours this
// variant, which still loses).
import { constants } from 'node:fs';
import { open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

const READ = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NONBLOCK;
const REWRITE =
  constants.O_WRONLY |
  constants.O_CREAT |
  constants.O_TRUNC |
  constants.O_NOFOLLOW |
  constants.O_NONBLOCK;

async function leases(dir) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (!e.isFile() || !/^[0-9a-f.:]+$/.test(e.name)) continue;
    const fh = await open(join(dir, e.name), READ);
    try {
      const { bytesRead, buffer } = await fh.read(Buffer.alloc(4097), 0, 4097, 0);
      out.push([e.name, buffer.toString('utf8', 0, bytesRead)]);
    } finally {
      await fh.close();
    }
  }
  return out;
}

/** One reserve + release of `ip` for `owner` in `dir`, holding the lock with `lock`/`unlock`. */
export async function reserveRelease(dir, ip, owner, lock, unlock) {
  let fd = lock();
  try {
    await leases(dir);
    const fh = await open(join(dir, ip), CREATE, 0o644);
    await fh.write(owner);
    await fh.close();
    const last = await open(join(dir, 'last_reserved_ip.0'), REWRITE, 0o644);
    const { bytesWritten } = await last.write(ip, 0);
    await last.truncate(bytesWritten);
    await last.close();
  } finally {
    unlock(fd);
  }
  fd = lock();
  try {
    for (const [name, content] of await leases(dir))
      if (content.trim() === owner) await unlink(join(dir, name));
  } finally {
    unlock(fd);
  }
}
