/**
 * Every CNI spec version this runtime speaks, oldest first. Results are
 * grouped by shape: 0.1.0/0.2.0 (`ip4`/`ip6`), 0.3.x/0.4.0 (`ips` with
 * `version`) and 1.x (no `version`).
 */
export const CNI_VERSIONS = [
  '0.1.0',
  '0.2.0',
  '0.3.0',
  '0.3.1',
  '0.4.0',
  '1.0.0',
  '1.1.0',
] as const;

/** A CNI spec version this runtime speaks. */
export type CniVersion = (typeof CNI_VERSIONS)[number];

/** The newest spec version implemented (what results are normalised to). */
export const CURRENT_CNI_VERSION: CniVersion = '1.1.0';

/** True when `v` is a version this runtime speaks. */
export function isCniVersion(v: unknown): v is CniVersion {
  return typeof v === 'string' && (CNI_VERSIONS as readonly string[]).includes(v);
}

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/;

/** Parses `MAJOR.MINOR.PATCH`; undefined for anything else. */
export function parseSemver(v: string): [number, number, number] | undefined {
  const m = SEMVER.exec(v);
  return m === null ? undefined : [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Orders two versions (negative, zero, positive); both must be MAJOR.MINOR.PATCH. */
export function compareVersions(a: string, b: string): number {
  const pa = parseSemver(a);
  const pb = parseSemver(b);
  if (pa === undefined || pb === undefined)
    throw new TypeError(`not a CNI version: '${pa ? b : a}'`);
  return pa[0] - pb[0] || pa[1] - pb[1] || pa[2] - pb[2];
}

/** True when `v` is at least `min` (both known versions). */
export function versionAtLeast(v: CniVersion, min: CniVersion): boolean {
  return compareVersions(v, min) >= 0;
}

/** The result shape a version uses. */
export type ResultShape = '020' | '040' | '100';

/** Which result shape `v` uses. */
export function resultShape(v: CniVersion): ResultShape {
  if (v === '0.1.0' || v === '0.2.0') return '020';
  if (v === '1.0.0' || v === '1.1.0') return '100';
  return '040';
}
