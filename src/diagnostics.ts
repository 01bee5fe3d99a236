import diagnosticsChannel from 'node:diagnostics_channel';
import { debuglog, format } from 'node:util';

/**
 * Every diagnostics channel podnet publishes on, named `podnet:<area>:<event>`.
 * Subscribe with `diagnostics_channel.subscribe(name, fn)`.
 */
export const channelNames = [
  'podnet:netns:create',
  'podnet:netns:remove',
  'podnet:netns:open',
  // ns.spawn started a process: { path, command, args, pid }.
  'podnet:netns:spawn',
  'podnet:cni:exec',
  'podnet:cni:result',
  'podnet:network:setup',
  'podnet:network:teardown',
  'podnet:network:gc',
  // Before gc checks whether one container is alive (tests inject faults here).
  'podnet:network:gc:check',
  'podnet:slirp:start',
  'podnet:slirp:exit',
  'podnet:slirp:api',
] as const;

/** Name of one podnet diagnostics channel. */
export type ChannelName = (typeof channelNames)[number];

const channels = new Map(channelNames.map((n) => [n, diagnosticsChannel.channel(n)]));

/** Publishes `message` on `name` when anyone listens (cheap otherwise). */
export function publish(name: ChannelName, message: object): void {
  const ch = channels.get(name);
  if (ch?.hasSubscribers) ch.publish(message);
}

// NODE_DEBUG=podnet is just one more subscriber, as undici does it.
const log = debuglog('podnet');
if (log.enabled) {
  for (const [name, ch] of channels) {
    ch.subscribe((message) => log('%s %s', name, format('%o', message)));
  }
}
