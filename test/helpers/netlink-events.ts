// A short label of a watch's event, for comparing sequences of them: the
// same words in the unit tests of the decoder and the integration tests of
// watch(). Loads anywhere.
import type { NetlinkEvent } from '../../src/index.js';

/** `link-added v0 up`, `address-added 10.0.0.1/24`, `route-added 10.0.0.0/24` (with `table N` when asked). */
export function eventLabel(ev: NetlinkEvent, opts: { table?: boolean } = {}): string {
  switch (ev.type) {
    case 'link-added':
    case 'link-changed':
    case 'link-removed':
      return `${ev.type} ${ev.link.name}${ev.link.up ? ' up' : ''}`;
    case 'address-added':
    case 'address-removed':
      return `${ev.type} ${ev.address.address}/${ev.address.prefixLength}`;
    case 'route-added':
    case 'route-removed':
      return `${ev.type} ${ev.route.destination}/${ev.route.prefixLength}${opts.table ? ` table ${ev.route.table}` : ''}`;
    case 'neighbor-added':
    case 'neighbor-removed':
      return `${ev.type} ${ev.neighbor.address}`;
    default:
      return ev.type;
  }
}
