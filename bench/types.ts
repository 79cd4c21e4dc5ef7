// One measured figure of a benchmark, as printed by `npm run bench`.
export interface BenchRow {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  /** The reference figure measured in the same run (e.g. the raw etcd watch floor). */
  baseline?: number;
  baselineLabel?: string;
  /** The goal, in words (e.g. "p99 within 5 ms of the floor"). */
  goal?: string;
}
