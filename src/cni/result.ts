import ipaddr from 'ipaddr.js';
import * as v from 'valibot';
import { CNI_VERSIONS, type CniVersion, CURRENT_CNI_VERSION, resultShape } from './version.js';

/** DNS settings in a result (every version). */
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/**
 * A route. `dst` is a CIDR, `gw` an address. The extra fields are 1.1.0's,
 * kept in every version as libcni does (they share one route type).
 */
export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** An interface in a 0.3.x/0.4.0 result. */
export interface CniInterface040 {
  name: string;
  mac?: string;
  sandbox?: string;
}

/** An interface in a 1.x result. */
export interface CniInterface extends CniInterface040 {
  mtu?: number;
  socketPath?: string;
  pciID?: string;
}

/** An address in a 1.x result: `address` is a CIDR, `interface` an index into `interfaces`. */
export interface CniIpConfig {
  address: string;
  gateway?: string;
  interface?: number;
}

/** An address in a 0.3.x/0.4.0 result, which also states the family. */
export interface CniIpConfig040 extends CniIpConfig {
  version: '4' | '6';
}

/** One family's configuration in a 0.1.0/0.2.0 result. */
export interface CniIpConfig020 {
  ip: string;
  gateway?: string;
  routes?: CniRoute[];
}

/** A result in 0.1.0/0.2.0 form. */
export interface CniResult020 {
  cniVersion: '0.1.0' | '0.2.0';
  ip4?: CniIpConfig020;
  ip6?: CniIpConfig020;
  dns?: CniDns;
}

/** A result in 0.3.0/0.3.1/0.4.0 form. */
export interface CniResult040 {
  cniVersion: '0.3.0' | '0.3.1' | '0.4.0';
  interfaces?: CniInterface040[];
  ips?: CniIpConfig040[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** A result in 1.0.0/1.1.0 form. */
export interface CniResult100 {
  cniVersion: '1.0.0' | '1.1.0';
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** A plugin result in any spec version, discriminated by `cniVersion`. */
export type CniResult = CniResult020 | CniResult040 | CniResult100;

/**
 * The normalised form callers build on (the orchestration layer, inspect):
 * the 1.1.0 shape with every list present, whatever version the plugins spoke.
 */
export interface NormalizedCniResult {
  cniVersion: '1.1.0';
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns: CniDns;
}

/** Thrown by the parsers and converters below; the runtime names the plugin. */
export class ResultFormatError extends Error {
  override readonly name = 'ResultFormatError';
}

function ipFamily(addr: string): 4 | 6 | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(addr)) return 4;
  if (addr.includes(':') && ipaddr.IPv6.isValid(addr)) return 6;
  return undefined;
}

function cidrFamily(cidr: string): 4 | 6 | undefined {
  const slash = cidr.indexOf('/');
  if (slash < 0) return undefined;
  const family = ipFamily(cidr.slice(0, slash));
  const prefix = cidr.slice(slash + 1);
  if (family === undefined || !/^(0|[1-9]\d{0,2})$/.test(prefix)) return undefined;
  return Number(prefix) <= (family === 4 ? 32 : 128) ? family : undefined;
}

/** The family of a CIDR (4 or 6); throws for anything that is not one. */
export function familyOfCidr(cidr: string): 4 | 6 {
  const f = cidrFamily(cidr);
  if (f === undefined) throw new ResultFormatError(`'${cidr}' is not an IP address in CIDR form`);
  return f;
}

const Ip = v.pipe(
  v.string(),
  v.check((s) => ipFamily(s) !== undefined, 'not an IP address'),
);
const Cidr = v.pipe(
  v.string(),
  v.check((s) => cidrFamily(s) !== undefined, 'not an IP address in CIDR form'),
);
const Uint = v.pipe(v.number(), v.integer(), v.minValue(0));
const Int = v.pipe(v.number(), v.integer());

const Dns = v.object({
  nameservers: v.optional(v.array(v.string())),
  domain: v.optional(v.string()),
  search: v.optional(v.array(v.string())),
  options: v.optional(v.array(v.string())),
});
const Route = v.object({
  dst: Cidr,
  gw: v.optional(Ip),
  mtu: v.optional(Uint),
  advmss: v.optional(Uint),
  priority: v.optional(Uint),
  table: v.optional(Uint),
  scope: v.optional(Int),
});
const Interface040 = v.object({
  name: v.string(),
  mac: v.optional(v.string()),
  sandbox: v.optional(v.string()),
});
const Interface100 = v.object({
  name: v.string(),
  mac: v.optional(v.string()),
  mtu: v.optional(Uint),
  sandbox: v.optional(v.string()),
  socketPath: v.optional(v.string()),
  pciID: v.optional(v.string()),
});
const IpConfig100 = v.object({
  address: Cidr,
  gateway: v.optional(Ip),
  interface: v.optional(Uint),
});
const IpConfig040 = v.pipe(
  v.object({
    version: v.picklist(['4', '6']),
    address: Cidr,
    gateway: v.optional(Ip),
    interface: v.optional(Uint),
  }),
  v.check(
    (ip) => String(familyOfCidr(ip.address)) === ip.version,
    'version does not match the address family',
  ),
);
const IpConfig020 = v.object({
  ip: Cidr,
  gateway: v.optional(Ip),
  routes: v.optional(v.array(Route)),
});

const Result020 = v.object({
  cniVersion: v.picklist(['0.1.0', '0.2.0']),
  ip4: v.optional(
    v.pipe(
      IpConfig020,
      v.check((c) => familyOfCidr(c.ip) === 4, 'ip4.ip is not IPv4'),
    ),
  ),
  ip6: v.optional(
    v.pipe(
      IpConfig020,
      v.check((c) => familyOfCidr(c.ip) === 6, 'ip6.ip is not IPv6'),
    ),
  ),
  dns: v.optional(Dns),
});
const Result040 = v.object({
  cniVersion: v.picklist(['0.3.0', '0.3.1', '0.4.0']),
  interfaces: v.optional(v.array(Interface040)),
  ips: v.optional(v.array(IpConfig040)),
  routes: v.optional(v.array(Route)),
  dns: v.optional(Dns),
});
const Result100 = v.object({
  cniVersion: v.picklist(['1.0.0', '1.1.0']),
  interfaces: v.optional(v.array(Interface100)),
  ips: v.optional(v.array(IpConfig100)),
  routes: v.optional(v.array(Route)),
  dns: v.optional(Dns),
});

function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues
    .slice(0, 3)
    .map((i) => `${v.getDotPath(i) ?? '(root)'}: ${i.message}`)
    .join('; ');
}

/**
 * Validates a parsed plugin result and returns a typed copy (unknown fields
 * dropped). A result without `cniVersion` is read as `fallbackVersion`, as
 * libcni reads it as the config's version. Throws ResultFormatError.
 */
export function parseResult(raw: unknown, fallbackVersion: CniVersion): CniResult {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ResultFormatError('result is not a JSON object');
  }
  const given = (raw as { cniVersion?: unknown }).cniVersion;
  const version = given === undefined || given === '' ? fallbackVersion : given;
  if (typeof version !== 'string' || !(CNI_VERSIONS as readonly string[]).includes(version)) {
    throw new ResultFormatError(`unsupported result cniVersion ${JSON.stringify(version)}`);
  }
  const input = { ...raw, cniVersion: version };
  const shape = resultShape(version as CniVersion);
  const parsed =
    shape === '020'
      ? v.safeParse(Result020, input)
      : shape === '040'
        ? v.safeParse(Result040, input)
        : v.safeParse(Result100, input);
  if (!parsed.success)
    throw new ResultFormatError(`malformed ${version} result: ${describeIssues(parsed.issues)}`);
  return stripUndefined(parsed.output) as CniResult;
}

// valibot keeps optional keys that were absent as absent, but an explicit
// `null`-free copy without undefined keeps exactOptionalPropertyTypes honest
// and the JSON we send to the next plugin identical to what libcni sends.
function stripUndefined<T>(value: T): T {
  if (Array.isArray(value)) return value.map(stripUndefined) as T;
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(value)) if (x !== undefined) out[k] = stripUndefined(x);
    return out as T;
  }
  return value;
}

function dnsOf(dns: CniDns | undefined): { dns?: CniDns } {
  if (dns === undefined) return {};
  const out: CniDns = {};
  if (dns.nameservers !== undefined && dns.nameservers.length > 0)
    out.nameservers = [...dns.nameservers];
  if (dns.domain !== undefined && dns.domain !== '') out.domain = dns.domain;
  if (dns.search !== undefined && dns.search.length > 0) out.search = [...dns.search];
  if (dns.options !== undefined && dns.options.length > 0) out.options = [...dns.options];
  return Object.keys(out).length > 0 ? { dns: out } : {};
}

function copyRoute(r: CniRoute): CniRoute {
  return { ...r };
}

function ipConfig(
  address: string,
  gateway: string | undefined,
  iface: number | undefined,
): CniIpConfig {
  const out: CniIpConfig = { address };
  if (iface !== undefined) out.interface = iface;
  if (gateway !== undefined) out.gateway = gateway;
  return out;
}

/** Converts any result to the 1.x shape, stamped with `version` (a 1.x version). */
function toShape100(result: CniResult, version: '1.0.0' | '1.1.0'): CniResult100 {
  const out: CniResult100 = { cniVersion: version };
  switch (result.cniVersion) {
    case '0.1.0':
    case '0.2.0': {
      const ips: CniIpConfig[] = [];
      const routes: CniRoute[] = [];
      for (const c of [result.ip4, result.ip6]) {
        if (c === undefined) continue;
        ips.push(ipConfig(c.ip, c.gateway, undefined));
        for (const r of c.routes ?? []) routes.push(copyRoute(r));
      }
      if (ips.length > 0) out.ips = ips;
      if (routes.length > 0) out.routes = routes;
      return { ...out, ...dnsOf(result.dns) };
    }
    case '0.3.0':
    case '0.3.1':
    case '0.4.0':
    case '1.0.0':
    case '1.1.0': {
      if (result.interfaces !== undefined)
        out.interfaces = result.interfaces.map((i) => ({ ...i }));
      if (result.ips !== undefined) {
        out.ips = result.ips.map((ip) => ipConfig(ip.address, ip.gateway, ip.interface));
      }
      if (result.routes !== undefined) out.routes = result.routes.map(copyRoute);
      return { ...out, ...dnsOf(result.dns) };
    }
  }
}

function toShape040(r: CniResult100, version: CniResult040['cniVersion']): CniResult040 {
  const out: CniResult040 = { cniVersion: version };
  if (r.interfaces !== undefined) {
    out.interfaces = r.interfaces.map((i) => {
      const x: CniInterface040 = { name: i.name };
      if (i.mac !== undefined) x.mac = i.mac;
      if (i.sandbox !== undefined) x.sandbox = i.sandbox;
      return x;
    });
  }
  if (r.ips !== undefined) {
    out.ips = r.ips.map((ip) => {
      const x: CniIpConfig040 = {
        version: familyOfCidr(ip.address) === 4 ? '4' : '6',
        address: ip.address,
      };
      if (ip.interface !== undefined) x.interface = ip.interface;
      if (ip.gateway !== undefined) x.gateway = ip.gateway;
      return x;
    });
  }
  if (r.routes !== undefined) out.routes = r.routes.map(copyRoute);
  return { ...out, ...dnsOf(r.dns) };
}

// As libcni: the first address of each family becomes ip4/ip6, and a route
// goes with the family of its destination (dropped if that family has no
// address). A result with no address at all cannot be expressed.
function toShape020(r: CniResult100, version: CniResult020['cniVersion']): CniResult020 {
  const out: CniResult020 = { cniVersion: version };
  for (const ip of r.ips ?? []) {
    const key = familyOfCidr(ip.address) === 4 ? 'ip4' : 'ip6';
    if (out[key] !== undefined) continue;
    const c: CniIpConfig020 = { ip: ip.address };
    if (ip.gateway !== undefined) c.gateway = ip.gateway;
    out[key] = c;
  }
  if (out.ip4 === undefined && out.ip6 === undefined) {
    throw new ResultFormatError(`cannot convert to ${version}: the result has no IP address`);
  }
  for (const route of r.routes ?? []) {
    const c = familyOfCidr(route.dst) === 4 ? out.ip4 : out.ip6;
    if (c !== undefined) c.routes = [...(c.routes ?? []), copyRoute(route)];
  }
  return { ...out, ...dnsOf(r.dns) };
}

/**
 * Converts a result to another spec version, as libcni's GetAsVersion does,
 * through the 1.x form. Fields the target version cannot hold are dropped
 * (1.x interface mtu/socketPath/pciID going to 0.x; interfaces and extra
 * addresses going to 0.2.0). Throws ResultFormatError when impossible.
 */
export function convertResult(result: CniResult, to: CniVersion): CniResult {
  if (result.cniVersion === to) return result;
  switch (resultShape(to)) {
    case '100':
      return toShape100(result, to as CniResult100['cniVersion']);
    case '040':
      return toShape040(toShape100(result, '1.1.0'), to as CniResult040['cniVersion']);
    case '020':
      return toShape020(toShape100(result, '1.1.0'), to as CniResult020['cniVersion']);
  }
}

/** The normalised 1.1.0 form of any result, with every list present. */
export function normalizeResult(result: CniResult): NormalizedCniResult {
  const r = toShape100(result, CURRENT_CNI_VERSION as '1.1.0');
  return {
    cniVersion: '1.1.0',
    interfaces: r.interfaces ?? [],
    ips: r.ips ?? [],
    routes: r.routes ?? [],
    dns: r.dns ?? {},
  };
}
