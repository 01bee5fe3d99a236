// Preloaded (node --import) into processes a test starts together: holds
// each until the time in PODNET_TEST_START_AT (ms since the epoch), so
// their races start at one instant instead of being spread over node's
// start-up. Blocks the main thread on purpose: nothing else should run yet.
const at = Number(process.env.PODNET_TEST_START_AT);
const wait = at - Date.now();
if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait);
