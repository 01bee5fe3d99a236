// The processes of bench/forward.js, one role each, so that the server, the
// clients and the proxy under test never share a JS thread:
//   node forward-roles.js server PORT             (run inside the container namespace)
//   node forward-roles.js client JSON             (prints one JSON line)
//   node forward-roles.js podnet NSPATH ADDR HOSTPORT:PORT...
//   node forward-roles.js pipe NSPATH ADDR HOSTPORT:PORT...
//   node forward-roles.js nsserver NSPATH PORT   (the server, bound in NSPATH by ns.listen)
//   node forward-roles.js slirp NSPATH WORKDIR HOSTPORT:GUESTPORT...
// A proxy prints "ready" once it listens on 127.0.0.1:HOSTPORT of every
// mapping (one per server: this file's server and iperf3 -s); slirp prints
// "ready PID" (slirp4netns's pid, whose CPU is counted) and, on SIGTERM,
// stops slirp4netns before exiting.
//
// Wire protocol: the client's first byte picks the mode. 'S' (stream, the
// throughput measurement when iperf3 is not installed): the server discards
// everything and, after the client's EOF, answers with the byte count. 'R'
// (request): the server answers 100 bytes at once and closes first, as the
// short-connection anchors do.
import net from 'node:net';

const [role, ...args] = process.argv.slice(2);

/** 'HOSTPORT:PORT' arguments as [{ hostPort, port }]. */
function parseMappings(list) {
  return list.map((m) => {
    const [hostPort, port] = m.split(':').map(Number);
    return { hostPort, port };
  });
}

function createServer() {
  const reply = Buffer.alloc(100, 'r');
  return net.createServer((s) => {
    let bytes = 0;
    let mode;
    s.on('error', () => s.destroy());
    s.on('data', (d) => {
      if (mode === undefined) {
        mode = d[0];
        if (mode === 0x52) return void s.end(reply);
      }
      bytes += d.length;
    });
    s.on('end', () => {
      if (mode !== 0x52) s.end(String(bytes - 1));
    });
  });
}

function server(port) {
  const srv = createServer();
  srv.listen({ port, host: '0.0.0.0', backlog: 4096 }, () => console.log('ready'));
}

// The same server, its socket opened inside NSPATH by podnet (this process
// stays where it was started).
async function nsServer(nsPath, port) {
  const { NetworkNamespace } = await import('../../dist/index.js');
  const ns = await NetworkNamespace.open(nsPath);
  await ns.listen(createServer(), { host: '0.0.0.0', port, backlog: 4096 });
  console.log('ready');
}

// slirp4netns with its own port handler (add_hostfwd): it listens on
// 127.0.0.1:HOSTPORT of each mapping in the namespace this process runs in
// and forwards into NSPATH's tap0 (MTU 65520, podnet's default).
async function slirp(nsPath, workDir, mappings) {
  const { Slirp4netns } = await import('../../dist/index.js');
  const s = await Slirp4netns.start({
    netns: nsPath,
    options: ['port_handler=slirp4netns'],
    apiSocketDir: workDir,
  });
  const stop = () => s.stop().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    for (const { hostPort, port } of mappings) {
      await s.addPortForward({ proto: 'tcp', hostAddr: '127.0.0.1', hostPort, guestPort: port });
    }
  } catch (err) {
    await s.stop();
    throw err;
  }
  const mtu = s.args[s.args.indexOf('--mtu') + 1];
  if (mtu !== '65520') console.error(`forward-roles slirp: MTU is ${mtu}, not 65520`);
  console.log(`ready ${s.pid}`);
  // slirp4netns ends with this process (its exit fd), which nothing else keeps alive.
  setInterval(() => {}, 1 << 30);
}

function streamOnce(opts, chunk, deadline) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const c = net.connect({ host: opts.host, port: opts.port });
    let answer = '';
    c.setEncoding('utf8');
    c.on('data', (d) => {
      answer += d;
    });
    c.on('end', () => resolve({ bytes: Number(answer), ns: Number(process.hrtime.bigint() - t0) }));
    c.on('error', reject);
    c.on('connect', () => {
      c.write('S');
      const pump = () => {
        while (Date.now() < deadline) {
          if (!c.write(chunk)) return void c.once('drain', pump);
        }
        c.end();
      };
      pump();
    });
  });
}

function requestOnce(opts) {
  return new Promise((resolve) => {
    const c = net.connect({ host: opts.host, port: opts.port });
    let got = 0;
    c.on('connect', () => c.write('R'));
    c.on('data', (d) => {
      got += d.length;
    });
    c.on('end', () => resolve(got === 100));
    c.on('error', () => resolve(false));
  });
}

async function client(opts) {
  const deadline = Date.now() + opts.seconds * 1000;
  if (opts.mode === 'stream') {
    const chunk = Buffer.alloc(1 << 20, 's');
    const runs = await Promise.all(
      Array.from({ length: opts.streams }, () => streamOnce(opts, chunk, deadline)),
    );
    const bytes = runs.reduce((a, r) => a + r.bytes, 0);
    const seconds = Math.max(...runs.map((r) => r.ns)) / 1e9;
    console.log(JSON.stringify({ gbits: (bytes * 8) / seconds / 1e9, bytes, seconds }));
    return;
  }
  let ok = 0;
  let failed = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (Date.now() < deadline) {
        if (await requestOnce(opts)) ok++;
        else failed++;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ connsPerSec: ok / seconds, ok, failed, seconds }));
}

async function podnet(nsPath, addr, mappings) {
  const { NetworkNamespace } = await import('../../dist/index.js');
  const { PortForwarder } = await import('../../dist/rootless/index.js');
  const ns = await NetworkNamespace.open(nsPath);
  await PortForwarder.start({
    netns: ns,
    containerAddress: addr,
    mappings: mappings.map(({ hostPort, port }) => ({
      hostIP: '127.0.0.1',
      hostPort,
      containerPort: port,
    })),
  });
  console.log('ready');
}

// The naive proxy: accept, connect from inside the namespace, pipe() both ways.
async function pipeProxy(nsPath, addr, mappings) {
  const { NetworkNamespace } = await import('../../dist/index.js');
  const ns = await NetworkNamespace.open(nsPath);
  await Promise.all(mappings.map(({ hostPort, port }) => pipeListen(ns, addr, port, hostPort)));
  console.log('ready');
}

function pipeListen(ns, addr, port, hostPort) {
  // allowHalfOpen: the client's EOF must not close the way back.
  const srv = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('error', () => c.destroy());
    ns.connect({ host: addr, port }).then(
      (u) => {
        u.on('error', () => c.destroy());
        c.on('close', () => u.destroy());
        c.pipe(u).pipe(c);
      },
      () => c.destroy(),
    );
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: hostPort, backlog: 4096 }, resolve);
  });
}

switch (role) {
  case 'server':
    server(Number(args[0]));
    break;
  case 'client':
    await client(JSON.parse(args[0]));
    break;
  case 'podnet':
    await podnet(args[0], args[1], parseMappings(args.slice(2)));
    break;
  case 'pipe':
    await pipeProxy(args[0], args[1], parseMappings(args.slice(2)));
    break;
  case 'nsserver':
    await nsServer(args[0], Number(args[1]));
    break;
  case 'slirp':
    await slirp(args[0], args[1], parseMappings(args.slice(2)));
    break;
  default:
    console.error(`unknown role ${role}`);
    process.exit(2);
}
