// Runs podnet's gc back to back, in one process so that no node start-up
// sits between runs and its windows cover nearly all the time, until its
// stdin closes; then prints {"runs": N, "errors": [...]} on stdout. Uses the
// default paths of the process it runs in, and the CNI config dir given as
// its argument. Needs the build (dist/).
import { CniRuntime, Networking } from '../../dist/index.js';

const net = new Networking({ cni: new CniRuntime({ confDir: process.argv[2] }) });
let stop = false;
process.stdin.on('end', () => {
  stop = true;
});
process.stdin.resume();
let runs = 0;
const errors = [];
while (!stop) {
  try {
    errors.push(...(await net.gc()).errors);
  } catch (err) {
    errors.push(String(err));
  }
  runs++;
  // Let the stdin 'end' event in.
  await new Promise((resolve) => setImmediate(resolve));
}
process.stdout.write(`${JSON.stringify({ runs, errors })}\n`);
