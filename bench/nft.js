// Benchmark of the native driver's nftables table (issue 11): podnet's
// netlink batches against nft(8) applying the same objects from a script,
// in the same run. Rows: making the table (structure only), and one
// container's published port added and removed (the setup and teardown
// batches). Runs itself in a network namespace of its own (unshare -n), so
// the machine's ruleset is never touched. Run as root after `npm run build`.
//
// Environment: BENCH_ROUNDS (default 3) interleaved rounds; each figure is
// the median over rounds of each round's median.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fmtUs, median, printTable, usSince } from './lib/util.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CREATES = 10; // table creations per approach per round
const PORTS = 300; // add + remove cycles of podnet per round
const NFT_PORTS = 20; // the same through nft per round
const INNER = 'PODNET_BENCH_NFT_INNER';

if (process.getuid?.() !== 0) {
  console.error('bench/nft.js: needs root (nf_tables); skipped');
  process.exit(0);
}
if (!process.env[INNER]) {
  const r = spawnSync('unshare', ['-n', process.execPath, fileURLToPath(import.meta.url)], {
    stdio: 'inherit',
    env: { ...process.env, [INNER]: '1' },
  });
  process.exit(r.status ?? 1);
}

const { PodnetTable } = await import('../dist/bridge/nft/index.js');
const structure = fileURLToPath(new URL('../test/fixtures/nft/structure.nft', import.meta.url));

function nft(args, input) {
  const r = spawnSync('nft', args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr}`);
}

const net = { name: 'bench', bridge: 'pbench0', subnets: ['10.88.0.0/16'], masquerade: true };
const port = (i) => ({
  protocol: 'tcp',
  hostPort: 20000 + i,
  containerIP: '10.88.0.2',
  containerPort: 80,
});
const nftElement = (i) => `inet podnet dnat4any { tcp . ${20000 + i} : 10.88.0.2 . 80 }`;

const rows = { create: [], createNft: [], add: [], remove: [], addNft: [], removeNft: [] };
for (let round = 0; round < ROUNDS; round++) {
  const create = [];
  const createNft = [];
  for (let i = 0; i < CREATES; i++) {
    let t = process.hrtime.bigint();
    (await PodnetTable.open()).close();
    create.push(usSince(t));
    nft(['delete', 'table', 'inet', 'podnet']);
    t = process.hrtime.bigint();
    nft(['-f', structure]);
    createNft.push(usSince(t));
    nft(['delete', 'table', 'inet', 'podnet']);
  }
  const table = await PodnetTable.open();
  table.ensureNetwork(net);
  const add = [];
  const remove = [];
  for (let i = 0; i < PORTS; i++) {
    const c = { ports: [port(i)] };
    let t = process.hrtime.bigint();
    table.addContainer(net, c);
    add.push(usSince(t));
    t = process.hrtime.bigint();
    table.removeContainer(net, c);
    remove.push(usSince(t));
  }
  const addNft = [];
  const removeNft = [];
  for (let i = 0; i < NFT_PORTS; i++) {
    let t = process.hrtime.bigint();
    nft(['-f', '-'], `add element ${nftElement(i)}\n`);
    addNft.push(usSince(t));
    t = process.hrtime.bigint();
    nft(['-f', '-'], `delete element ${nftElement(i).replace(/ : .*/, ' }')}\n`);
    removeNft.push(usSince(t));
  }
  table.close();
  nft(['delete', 'table', 'inet', 'podnet']);
  for (const [k, v] of Object.entries({ create, createNft, add, remove, addNft, removeNft }))
    rows[k].push(median(v));
}

const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)]));
printTable(
  `podnet's nftables table, median of ${ROUNDS} rounds (each a median), in a fresh namespace`,
  ['operation', 'podnet (netlink)', 'nft -f (exec)', 'nft / podnet'],
  [
    [
      'make the table (structure)',
      fmtUs(m.create),
      fmtUs(m.createNft),
      (m.createNft / m.create).toFixed(1),
    ],
    ['setup batch, 1 port', fmtUs(m.add), fmtUs(m.addNft), (m.addNft / m.add).toFixed(1)],
    [
      'teardown batch, 1 port',
      fmtUs(m.remove),
      fmtUs(m.removeNft),
      (m.removeNft / m.remove).toFixed(1),
    ],
  ],
);
