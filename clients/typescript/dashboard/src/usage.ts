// What clusters hold on an infra and on each host of an SSH node pool, as
// the server counts it when it places a cluster: every cluster that is not
// STOPPED holds its per-node CPUs, memory and GPUs on each node; on an SSH
// node pool only nodes placed on a host hold anything, and a stopped
// cluster keeps them (they stay placed until `sky down`). And what is free:
// a host's total minus what is held.

import { ClusterStatus, type Cluster, type ClusterNode } from "../../src/gen/skypilot/v1/clusters_pb.js";
import type { HostState } from "../../src/gen/skypilot/v1/infra_pb.js";

/** CPUs, GiB of memory and GPUs (by name). */
export interface Amounts {
  cpus: number;
  memoryGib: number;
  gpus: Map<string, number>;
}

/** What the clusters of an infra hold, and which clusters those are. */
export interface Held extends Amounts {
  clusters: Cluster[];
  /** How many of them are stopped (on an SSH node pool, where they keep their hosts). */
  stopped: number;
}

/** A host's (or the local machine's) total: CPUs, GiB, and how many GPUs. */
export interface Total {
  cpus: number;
  memoryGib: number;
  gpus: number;
}

/** The infra a cluster runs on ("local" when unnamed). */
function infraOf(c: Cluster): string {
  return c.infra || "local";
}

/** Whether `c` runs on the infra `name` (a Slurm cluster's infra may name a partition under it). */
export function runsOn(c: Cluster, name: string): boolean {
  const infra = infraOf(c);
  return infra === name || infra.startsWith(`${name}/`);
}

/** Whether `c` runs on an SSH node pool. */
function onPool(c: Cluster): boolean {
  return infraOf(c).startsWith("ssh/");
}

/** Whether `c` holds what it asked for where it runs. */
export function holds(c: Cluster): boolean {
  return c.status !== ClusterStatus.STOPPED || onPool(c);
}

/** How many nodes of `c` hold their share: on an SSH node pool, those placed on a host; elsewhere all. */
function nodesHolding(c: Cluster): number {
  return onPool(c) ? c.nodes.length : c.numNodes || 1;
}

/** "A100:2" -> ["A100", 2]; "A100" -> ["A100", 1]; "" -> undefined. */
export function parseGpus(accelerators: string): [string, number] | undefined {
  const text = accelerators.trim();
  if (!text) return undefined;
  const at = text.lastIndexOf(":");
  const count = at < 0 ? 1 : Number(text.slice(at + 1));
  const name = at < 0 ? text : text.slice(0, at);
  return Number.isFinite(count) && count > 0 ? [name, count] : [text, 1];
}

function nothing(): Held {
  return { cpus: 0, memoryGib: 0, gpus: new Map(), clusters: [], stopped: 0 };
}

/** Adds what `nodes` nodes of `c` hold to `held`. */
function add(held: Held, c: Cluster, nodes: number): void {
  held.cpus += c.cpus * nodes;
  held.memoryGib += c.memoryGib * nodes;
  const gpus = parseGpus(c.accelerators);
  if (gpus) held.gpus.set(gpus[0], (held.gpus.get(gpus[0]) ?? 0) + gpus[1] * nodes);
  if (!held.clusters.includes(c)) {
    held.clusters.push(c);
    if (c.status === ClusterStatus.STOPPED) held.stopped++;
  }
}

/** What the clusters on the infra `name` hold, all their nodes together. */
export function heldOn(clusters: Cluster[], name: string): Held {
  const held = nothing();
  for (const c of clusters) {
    const nodes = runsOn(c, name) && holds(c) ? nodesHolding(c) : 0;
    if (nodes > 0) add(held, c, nodes);
  }
  return held;
}

/** Whether a cluster's node is on the pool host `host` (by its label, else by address). */
function isOn(node: ClusterNode, host: HostState): boolean {
  if (node.host && node.host !== "local") return node.host === host.host;
  return node.address !== "" && node.address === host.address;
}

/** What the nodes of the clusters on the infra `name` hold on one of its hosts. */
export function heldOnHost(clusters: Cluster[], name: string, host: HostState): Held {
  const held = nothing();
  for (const c of clusters) {
    if (!runsOn(c, name) || !holds(c)) continue;
    const nodes = c.nodes.filter((node) => isOn(node, host)).length;
    if (nodes > 0) add(held, c, nodes);
  }
  return held;
}

/** The GPUs held, in all. */
export function gpuCount(a: Amounts): number {
  let n = 0;
  for (const count of a.gpus.values()) n += count;
  return n;
}

/** What is left of `total` beside `held` (never below 0). */
export function free(total: Total, held: Amounts): Total {
  return {
    cpus: Math.max(0, total.cpus - held.cpus),
    memoryGib: Math.max(0, total.memoryGib - held.memoryGib),
    gpus: Math.max(0, total.gpus - gpuCount(held)),
  };
}

/** The sum of totals. */
export function sum(totals: Total[]): Total {
  return totals.reduce(
    (a, t) => ({ cpus: a.cpus + t.cpus, memoryGib: a.memoryGib + t.memoryGib, gpus: a.gpus + t.gpus }),
    { cpus: 0, memoryGib: 0, gpus: 0 },
  );
}
