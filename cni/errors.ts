// CNI error codes (CNI spec 1.1 §"Error") and the typed error every failing command ends in.
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  /** STATUS: the plugin cannot serve ADDs now. */
  NotAvailable: 50,
  /** STATUS: not available, and existing containers may be damaged. */
  NotAvailableDamaged: 51,
  /** Plugin-specific (≥ 100): no address left in the pools. */
  PoolExhausted: 100,
  /** Plugin-specific: etcd could not be reached. */
  DatastoreUnavailable: 101,
  /** Plugin-specific: a kernel (netlink / sysctl) operation failed. */
  DataplaneFailure: 102,
  /** Plugin-specific: the delegated IPAM plugin failed. */
  IpamFailure: 103,
} as const;

export type CniCodeValue = (typeof CniCode)[keyof typeof CniCode];

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    const out: { cniVersion: string; code: number; msg: string; details?: string } = {
      cniVersion,
      code: this.code,
      msg: this.message,
    };
    if (this.details) out.details = this.details;
    return out;
  }
}
