#!/usr/bin/env node
// The podnet command: a thin layer over the public API (src/cli).
import { main } from '../dist/cli/index.js';

process.exitCode = await main(process.argv.slice(2));
