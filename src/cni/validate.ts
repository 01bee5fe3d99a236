/**
 * The spec's pattern for network names and container IDs (libcni's
 * `utils.ValidateNetworkName`/`ValidateContainerID`): an alphanumeric
 * followed by alphanumerics, `_`, `.` and `-`.
 */
export const CNI_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Linux's IFNAMSIZ minus the terminating NUL. */
export const MAX_IFNAME_LENGTH = 15;

/** Why a network name or container ID is invalid, or undefined when valid. */
export function nameProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value === '') return 'must not be empty';
  if (!CNI_NAME_PATTERN.test(value)) {
    return `'${value}' has invalid characters (allowed: ${CNI_NAME_PATTERN.source})`;
  }
  return undefined;
}

/**
 * Why an interface name is invalid, or undefined when valid. The rules are
 * libcni's and the kernel's: 1 to 15 bytes, not `.` or `..`, and no `/`, `:`
 * or whitespace.
 */
export function ifNameProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value === '') return 'must not be empty';
  if (Buffer.byteLength(value) > MAX_IFNAME_LENGTH) {
    return `'${value}' is longer than ${MAX_IFNAME_LENGTH} bytes`;
  }
  if (value === '.' || value === '..') return `'${value}' is not allowed`;
  if (/[/:\s]/u.test(value)) return `'${value}' contains '/', ':' or whitespace`;
  return undefined;
}

/**
 * Why a plugin `type` is invalid, or undefined when valid. A type is a file
 * name looked up in the plugin dirs; a path separator or `..` would let a
 * config run any binary on the host (CVE-2021-20206).
 */
export function pluginTypeProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value === '') return 'must not be empty';
  if (value.includes('/') || value.includes('\\')) return `'${value}' contains a path separator`;
  if (value === '.' || value.includes('..')) return `'${value}' contains '..' or is '.'`;
  if (value.includes('\0')) return 'contains a NUL byte';
  return undefined;
}

/**
 * Why one CNI_ARGS pair is invalid, or undefined when valid. CNI_ARGS is
 * `K=V;K=V`, so a key may hold neither `=` nor `;` and a value no `;`.
 */
export function cniArgProblem(key: unknown, value: unknown): string | undefined {
  if (typeof key !== 'string' || typeof value !== 'string')
    return 'keys and values must be strings';
  if (key === '') return 'a key must not be empty';
  if (/[=;]/.test(key)) return `key '${key}' contains '=' or ';'`;
  if (value.includes(';')) return `value of '${key}' contains ';'`;
  if (key.includes('\0') || value.includes('\0')) return 'contains a NUL byte';
  return undefined;
}
