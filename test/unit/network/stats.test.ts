import { describe, expect, it } from 'vitest';
import { type Link, type LinkStats, linkStatsFields } from '../../../src/netns/index.js';
import { publishedVia, statsRates, summarizeStats } from '../../../src/network/stats.js';
import type { ContainerState, ContainerStats } from '../../../src/network/types.js';

function counters(seed: number): LinkStats {
  return Object.fromEntries(linkStatsFields.map((f, i) => [f, seed * 100 + i])) as LinkStats;
}

function link(index: number, name: string, statistics: LinkStats, flags = 0x1043): Link {
  return {
    index,
    name,
    mtu: 1500,
    mac: '02:00:00:00:00:01',
    flags,
    up: true,
    operstate: 'up',
    statistics,
  };
}

describe('summarizeStats', () => {
  it('leaves out loopback and sums every field of the rest, sorted by name', () => {
    const links = [
      link(1, 'lo', counters(9), 0x49),
      link(3, 'eth1', counters(2)),
      link(2, 'eth0', counters(1)),
    ];
    const s = summarizeStats(links);
    expect(s.interfaces.map((i) => i.name)).toEqual(['eth0', 'eth1']);
    expect(s.interfaces[0]?.stats).toEqual(counters(1));
    expect(Object.keys(s.total)).toHaveLength(25);
    for (const [i, f] of linkStatsFields.entries()) expect(s.total[f]).toBe(300 + 2 * i);
  });

  it('recognises loopback by its flag whatever its name, and lo by its name', () => {
    const s = summarizeStats([
      link(1, 'loop9', counters(1), 0x49),
      link(2, 'lo', counters(1), 0),
      link(3, 'eth0', counters(1)),
    ]);
    expect(s.interfaces.map((i) => i.name)).toEqual(['eth0']);
  });

  it('gives zeros with no interface but loopback', () => {
    const s = summarizeStats([link(1, 'lo', counters(5), 0x49)]);
    expect(s.interfaces).toEqual([]);
    expect(s.total).toEqual(Object.fromEntries(linkStatsFields.map((f) => [f, 0])));
  });

  it('lists lo when asked, flagged and last, in the total only with loopbackInTotal', () => {
    const links = [link(1, 'lo', counters(9), 0x49), link(2, 'eth0', counters(1))];
    const listed = summarizeStats(links, { loopback: true });
    expect(listed.interfaces.map((i) => [i.name, i.loopback])).toEqual([
      ['eth0', undefined],
      ['lo', true],
    ]);
    expect(listed.total).toEqual(counters(1));
    const summed = summarizeStats(links, { loopback: true, loopbackInTotal: true });
    expect(summed.total.rxBytes).toBe(counters(1).rxBytes + counters(9).rxBytes);
    // Asked for the sum only: lo is not listed, so not summed either.
    expect(summarizeStats(links, { loopbackInTotal: true }).total).toEqual(counters(1));
  });

  it("'published' lists lo only when it carries the published ports", () => {
    const links = [link(1, 'lo', counters(9), 0x49), link(2, 'tap0', counters(1))];
    const names = (via: string | undefined): string[] =>
      summarizeStats(
        links,
        { loopback: 'published' },
        via ? { publishedVia: via } : {},
      ).interfaces.map((i) => i.name);
    expect(names('forwarder')).toEqual(['tap0', 'lo']);
    expect(names('lo')).toEqual(['tap0', 'lo']);
    expect(names('tap0')).toEqual(['tap0']);
    expect(names(undefined)).toEqual(['tap0']);
    const ports = [
      {
        hostIP: '127.0.0.1',
        hostPort: 8080,
        containerPort: 80,
        protocol: 'tcp' as const,
        connections: 1,
        active: 0,
        rxBytes: 5,
        txBytes: 7,
        rxDatagrams: 0,
        txDatagrams: 0,
      },
    ];
    const s = summarizeStats(links, {}, { publishedVia: 'forwarder', ports });
    expect(s.publishedVia).toBe('forwarder');
    expect(s.ports).toEqual(ports);
  });

  it('copies the counters rather than aliasing the links', () => {
    const l = link(2, 'eth0', counters(1));
    const s = summarizeStats([l]);
    l.statistics.rxBytes = 0;
    expect(s.interfaces[0]?.stats.rxBytes).toBe(102);
  });
});

describe('publishedVia', () => {
  const state = (over: Partial<ContainerState>): ContainerState =>
    ({
      mode: 'bridge',
      portMappings: [{ hostIP: '', hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
      networks: [{ ifName: 'eth0' }],
      ...over,
    }) as ContainerState;

  it('names the counter that carries published ports, per mode', () => {
    expect(publishedVia(state({}), false)).toBe('eth0');
    expect(publishedVia(state({ portMappings: [] }), false)).toBeUndefined();
    expect(publishedVia(state({ mode: 'slirp4netns', networks: [] }), true)).toBe('forwarder');
    expect(
      publishedVia(
        state({ mode: 'slirp4netns', modeOptions: ['port_handler=slirp4netns'], networks: [] }),
        false,
      ),
    ).toBe('tap0');
    // The default handler is the forwarder, even when its keeper did not answer.
    expect(publishedVia(state({ mode: 'slirp4netns', networks: [] }), false)).toBe('forwarder');
    expect(publishedVia(state({ mode: 'pasta', networks: [] }), false)).toBe('lo');
    expect(publishedVia(state({ mode: 'pasta', networks: [] }), true)).toBe('forwarder');
  });
});

describe('statsRates', () => {
  const sample = (rx: number, tx: number, rxp: number, txp: number): LinkStats => ({
    ...counters(0),
    rxBytes: rx,
    txBytes: tx,
    rxPackets: rxp,
    txPackets: txp,
  });
  const of = (...ifs: [string, LinkStats][]): ContainerStats =>
    summarizeStats(ifs.map(([name, st], i) => link(i + 2, name, st)));

  it('divides the deltas by the interval', () => {
    const prev = of(['eth0', sample(1000, 2000, 10, 20)]);
    const next = of(['eth0', sample(3000, 2500, 30, 25)]);
    expect(statsRates(prev, next, 2)).toEqual([
      {
        name: 'eth0',
        rxBytesPerSec: 1000,
        txBytesPerSec: 250,
        rxPacketsPerSec: 10,
        txPacketsPerSec: 2.5,
      },
    ]);
  });

  it('gives 0 for a counter that went down and for an interface with no baseline', () => {
    const prev = of(['eth0', sample(5000, 100, 50, 1)]);
    const next = of(['eth0', sample(10, 300, 1, 3)], ['eth1', sample(999, 999, 9, 9)]);
    expect(statsRates(prev, next, 1)).toEqual([
      {
        name: 'eth0',
        rxBytesPerSec: 0,
        txBytesPerSec: 200,
        rxPacketsPerSec: 0,
        txPacketsPerSec: 2,
      },
      { name: 'eth1', rxBytesPerSec: 0, txBytesPerSec: 0, rxPacketsPerSec: 0, txPacketsPerSec: 0 },
    ]);
  });

  it('rejects an interval that is not positive', () => {
    const s = of(['eth0', sample(1, 1, 1, 1)]);
    expect(() => statsRates(s, s, 0)).toThrow(RangeError);
    expect(() => statsRates(s, s, Number.NaN)).toThrow(RangeError);
  });
});
