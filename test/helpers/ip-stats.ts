// ip(8)'s view of a link's counters as podnet's LinkStats: what the tests of
// the statistics decoders (against a captured reply, and against a live
// kernel) compare podnet's numbers with. Pure, so unit tests may import it.
import { type LinkStats, type LinkStatsField, linkStatsFields } from '../../src/netns/rtnl.js';

// iproute2's stats64 name of each counter (`ip -s -s -j link`).
const IP_NAME: Record<LinkStatsField, [dir: 'rx' | 'tx', name: string]> = {
  rxPackets: ['rx', 'packets'],
  txPackets: ['tx', 'packets'],
  rxBytes: ['rx', 'bytes'],
  txBytes: ['tx', 'bytes'],
  rxErrors: ['rx', 'errors'],
  txErrors: ['tx', 'errors'],
  rxDropped: ['rx', 'dropped'],
  txDropped: ['tx', 'dropped'],
  multicast: ['rx', 'multicast'],
  collisions: ['tx', 'collisions'],
  rxLengthErrors: ['rx', 'length_errors'],
  rxOverErrors: ['rx', 'over_errors'],
  rxCrcErrors: ['rx', 'crc_errors'],
  rxFrameErrors: ['rx', 'frame_errors'],
  rxFifoErrors: ['rx', 'fifo_errors'],
  rxMissedErrors: ['rx', 'missed_errors'],
  txAbortedErrors: ['tx', 'aborted_errors'],
  txCarrierErrors: ['tx', 'carrier_errors'],
  txFifoErrors: ['tx', 'fifo_errors'],
  txHeartbeatErrors: ['tx', 'heartbeat_errors'],
  txWindowErrors: ['tx', 'window_errors'],
  rxCompressed: ['rx', 'compressed'],
  txCompressed: ['tx', 'compressed'],
  rxNohandler: ['rx', 'nohandler'],
  rxOtherhostDropped: ['rx', 'otherhost'],
};

/** The `stats64` object of one link in `ip -s -s -j link`'s output. */
export type IpStats64 = Record<'rx' | 'tx', Record<string, number>>;

/**
 * ip's stats64 as LinkStats: every counter by its ip name, 0 for the ones
 * ip leaves out when they are 0 (the last four).
 */
export function linkStatsFromIp(stats64: IpStats64): LinkStats {
  const out = {} as LinkStats;
  for (const f of linkStatsFields) {
    const [dir, name] = IP_NAME[f];
    out[f] = stats64[dir][name] ?? 0;
  }
  return out;
}
