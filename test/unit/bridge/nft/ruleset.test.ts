// podnet's table against nft(8)'s own encoding: the batches in
// test/fixtures/nft/ are what nft 1.0.6 (libnftnl) sent for the same table
// and elements (test/fixtures/nft/capture.mjs), so a message podnet encodes
// differently from nft is a test failure, not a kernel surprise.

import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import {
  addBatch,
  networkElements,
  portElement,
  removeBatch,
  structureBatch,
  subnetElements,
} from '../../../../src/bridge/nft/ruleset.js';
import { type Attr, capturedBatch, type Message, messages } from '../../../helpers/nlattr.js';

const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NEWTABLE = 0xa00;
const NEWSETELEM = 0xa0c;
const DELSETELEM = 0xa0e;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_SET_ELEM_FLAGS = 3;

const ours = (batch: Buffer[]): Message[] => messages(Buffer.concat(batch));

/** Flags apart: podnet asks for an ack on every inner message, and creates its table exclusively. */
const withoutFlags = (m: Message[]): Omit<Message, 'flags'>[] =>
  m.map(({ flags: _, ...rest }) => rest);

/** Every element of a batch's element messages, with its message type and set (hex of the name). */
function elementsOf(m: Message[]): { type: number; set: string; element: Attr }[] {
  return m
    .filter((x) => x.type === NEWSETELEM || x.type === DELSETELEM)
    .flatMap((x) => {
      const set = x.attrs.find((a) => a.type === NFTA_SET_ELEM_LIST_SET)!.value!;
      const list = x.attrs.find((a) => a.type === NFTA_SET_ELEM_LIST_ELEMENTS)!.children!;
      // libnftnl numbers the list's entries 1, 2, 3...; the kernel reads any type there.
      return list.map((element) => ({ type: x.type, set, element: { ...element, type: 1 } }));
    });
}

// nft opens an empty interval set with an interval end at 0, its own
// bookkeeping for listing: the kernel does not need it and podnet does not send it.
const isZeroEnd = (e: Attr): boolean =>
  e.children?.[0]?.type === NFTA_SET_ELEM_FLAGS &&
  /^0+$/.test(e.children[1]?.children?.[0]?.value ?? '1');

describe("podnet's table structure", () => {
  const batch = ours(structureBatch());

  it('is, message for message, the batch nft sends for structure.nft', () => {
    expect(withoutFlags(batch)).toEqual(withoutFlags(capturedBatch('structure')));
  });

  it('creates the table exclusively and asks for an ack of every message but BEGIN and END', () => {
    const nft = capturedBatch('structure');
    expect(batch[1]!.type).toBe(NEWTABLE);
    expect(batch[1]!.flags).toBe(nft[1]!.flags | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    for (const [i, m] of batch.slice(2, -1).entries())
      expect(m.flags).toBe(nft[i + 2]!.flags | NLM_F_ACK);
    for (const i of [0, batch.length - 1]) expect(batch[i]!.flags & NLM_F_ACK).toBe(0);
  });
});

describe('element batches', () => {
  const v4 = ipaddr.parse('10.88.0.2');
  const v6 = ipaddr.parse('fd00:88::2');
  const ports = [
    portElement({ protocol: 'tcp', hostPort: 8080, containerIP: v4, containerPort: 80 }),
    portElement({
      protocol: 'udp',
      hostIP: ipaddr.parse('127.0.0.1'),
      hostPort: 5353,
      containerIP: v4,
      containerPort: 53,
    }),
    portElement({ protocol: 'tcp', hostPort: 8080, containerIP: v6, containerPort: 80 }),
    portElement({
      protocol: 'tcp',
      hostIP: ipaddr.parse('fd00::1'),
      hostPort: 443,
      containerIP: v6,
      containerPort: 8443,
    }),
  ];

  it('encode subnets, bridges and ports as nft does (elements-add.nft)', () => {
    const net4 = networkElements('podnet0', ['10.88.0.0/16'], true);
    const net6 = networkElements('podnet0', ['fd00:88::/64'], false);
    const pick = (list: typeof net4, set: string) => list.filter((e) => e.set === set);
    const batch = ours(
      addBatch([
        ...pick(net4, 'subnets4'),
        ...pick(net6, 'subnets6'),
        ...pick(net4, 'masq4'),
        ...pick(net4, 'bridges'),
        ...ports,
      ]),
    );
    const nft = elementsOf(capturedBatch('elements-add')).filter((e) => !isZeroEnd(e.element));
    expect(elementsOf(batch)).toEqual(nft);
    // One element a message, so the kernel's refusal names the element.
    expect(batch.slice(1, -1).every((m) => m.type === NEWSETELEM)).toBe(true);
    expect(batch).toHaveLength(2 + nft.length);
  });

  it('remove an element as an add of it as it should be, then its delete (elements-delete.nft)', () => {
    const batch = ours(removeBatch([ports[0]!]));
    expect(elementsOf(batch)).toEqual(elementsOf(capturedBatch('elements-delete')));
    expect(batch.map((m) => m.type)).toEqual([0x10, NEWSETELEM, DELSETELEM, 0x11]);
  });

  it('name a network by its subnets with the host bits cleared, and its bridge', () => {
    const els = networkElements('br-x', ['10.89.3.7/24'], true);
    expect(els.map((e) => [e.set, e.element.key.toString('hex'), !!e.element.intervalEnd])).toEqual(
      [
        ['subnets4', '0a590300', false],
        ['masq4', '0a590300', false],
        ['subnets4', '0a590400', true],
        ['masq4', '0a590400', true],
        ['bridges', Buffer.from('br-x').toString('hex').padEnd(32, '0'), false],
      ],
    );
  });

  it('leave out the interval end that would wrap past the last address', () => {
    expect(subnetElements('255.255.255.0/24').elements).toEqual([
      { key: Buffer.from([255, 255, 255, 0]) },
    ]);
    expect(subnetElements('0.0.0.0/0').elements).toEqual([{ key: Buffer.alloc(4) }]);
    const { family, elements } = subnetElements('fd00::/7');
    expect(family).toBe(6);
    expect(elements[1]!.key.toString('hex')).toBe(`fe${'0'.repeat(30)}`);
  });
});
