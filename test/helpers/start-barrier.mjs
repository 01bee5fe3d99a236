// Preloaded (node --import) into processes a test starts together: loads
// the module in PODNET_TEST_PRELOAD first (so the work that differs from
// process to process is done), then holds each process until the time in
// PODNET_TEST_START_AT (ms since the epoch), so their races start at one
// instant instead of being spread over node's start-up. Blocks the main
// thread on purpose: nothing else should run yet.
const preload = process.env.PODNET_TEST_PRELOAD;
if (preload) await import(preload);
const wait = Number(process.env.PODNET_TEST_START_AT) - Date.now();
if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait);
