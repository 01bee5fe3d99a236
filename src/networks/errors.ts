import { PodnetError, type PodnetErrorOptions } from '../errors.js';

/** The codes of {@link NetworkError}, each a literal of the table in error-codes.ts. */
export type NetworkErrorCode =
  | 'ERR_PODNET_NETWORK_EXISTS'
  | 'ERR_PODNET_NETWORK_IN_USE'
  | 'ERR_PODNET_NETWORK_OPTION'
  | 'ERR_PODNET_NETWORK_BUSY'
  | 'ERR_PODNET_SUBNET_OVERLAP'
  | 'ERR_PODNET_NO_FREE_SUBNET';

/**
 * A network object could not be created, removed or changed; `network`
 * names it. Nothing was written: every check runs before the file is.
 */
export class NetworkError extends PodnetError {
  /** The network's name. */
  readonly network: string;

  constructor(
    code: NetworkErrorCode,
    network: string,
    detail: string,
    options: PodnetErrorOptions = {},
  ) {
    super(code, `network '${network}': ${detail}`, options);
    this.network = network;
  }
}
