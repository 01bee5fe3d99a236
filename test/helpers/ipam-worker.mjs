// One process of the IPAM concurrency test: loads the built IPAM
// (dist/bridge/ipam.js), waits until START_AT (ms since the epoch) so that
// every worker races from one instant, then reserves COUNT addresses at
// once for containers PREFIX-0..COUNT-1 and prints them as a JSON array.
// Arguments: DATA_DIR NETWORK RANGES_JSON PREFIX COUNT START_AT.
import { reserveAddresses } from '../../dist/bridge/ipam.js';

const [dataDir, network, ranges, prefix, count, startAt] = process.argv.slice(2);
const wait = Number(startAt) - Date.now();
if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait);
const leases = await Promise.all(
  Array.from({ length: Number(count) }, (_, i) =>
    reserveAddresses({
      dataDir,
      network,
      ranges: JSON.parse(ranges),
      containerId: `${prefix}-${i}`,
      ifName: 'eth0',
    }),
  ),
);
process.stdout.write(`${JSON.stringify(leases.flat().map((l) => l.address))}\n`);
