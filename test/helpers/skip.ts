// The one rule for a suite that cannot run here: in CI that is a failure (a
// skip would hide a missing install step in scripts/install-debian-deps.sh),
// elsewhere the suite skips with the reason printed. Loads anywhere.

/** Applies the rule to SUITE with REASON (undefined: it can run); returns REASON. */
export function reportSkip(suite: string, reason: string | undefined): string | undefined {
  if (reason === undefined) return undefined;
  if (process.env['CI']) throw new Error(`${suite} cannot run: ${reason}`);
  console.warn(`skipping ${suite}: ${reason}`);
  return reason;
}
