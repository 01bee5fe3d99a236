// The published-port type, shared by the layers that handle ports: CNI's
// portMappings capability (network), the port forwarder (rootless) and
// inspect. It sits below all of them so no lower layer imports an upper one.
import * as v from 'valibot';

/** One published port: host IP:port -> container port, podman's PortMapping. */
export interface PortMapping {
  /** Host address to bind ('' or undefined: all addresses). */
  hostIP?: string;
  /** Host port (1-65535). */
  hostPort: number;
  /** Port inside the container. */
  containerPort: number;
  /** 'tcp' (default) or 'udp'. */
  protocol?: 'tcp' | 'udp';
  /** Number of consecutive ports from hostPort/containerPort (default 1). */
  range?: number;
}

/**
 * The shape of a PortMapping in a helper process's job (JSON from another
 * process): checked for shape here, for meaning where it is used.
 */
export const PortMappingSchema = v.strictObject({
  hostIP: v.exactOptional(v.string()),
  hostPort: v.number(),
  containerPort: v.number(),
  protocol: v.exactOptional(v.picklist(['tcp', 'udp'])),
  range: v.exactOptional(v.number()),
});
