// A container state (format 2) for tests that read, plant or inspect one:
// a ready bridge container with nothing attached, fields replaced by `over`.
import type { ContainerState } from '../../src/network/types.js';

/** A state as podnet writes it; `over` replaces fields. */
export function containerState(over: Partial<ContainerState> = {}): ContainerState {
  return {
    version: 2,
    phase: 'ready',
    id: 'c0ffee',
    name: 'web',
    mode: 'bridge',
    netnsPath: '/run/netns/cni-0c0ffee0-0000-4000-8000-000000000000',
    ownsNetns: true,
    networksRequested: false,
    networks: [],
    portMappings: [],
    exposedPorts: [],
    helpers: [],
    created: '2024-01-01T00:00:00.000Z',
    ...over,
  };
}
