// Formatting for people: times (relative, with the absolute time as a
// title), durations, resources, and status names with their badge colours.

import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

import { ClusterStatus, JobStatus, type Cluster, type Job } from "../../src/gen/skypilot/v1/clusters_pb.js";
import { ManagedJobStatus } from "../../src/gen/skypilot/v1/managed_jobs_pb.js";
import { RequestState } from "../../src/gen/skypilot/v1/requests_pb.js";
import { Role } from "../../src/gen/skypilot/v1/users_pb.js";

/** A Timestamp as a Date; undefined when unset (or the zero time). */
export function date(ts: Timestamp | undefined): Date | undefined {
  if (!ts || (ts.seconds === 0n && ts.nanos === 0)) return undefined;
  return timestampDate(ts);
}

/** "12s ago", "5m ago", "3h ago", "2d ago" ("in 5m" for the future); "-" when unset. */
export function relative(when: Date | undefined, now = Date.now()): string {
  if (!when) return "-";
  const diff = now - when.getTime();
  const text = duration(Math.abs(diff), true);
  if (Math.abs(diff) < 1000) return "just now";
  return diff >= 0 ? `${text} ago` : `in ${text}`;
}

/** The absolute local time, for a title. */
export function absolute(when: Date | undefined): string {
  return when ? when.toLocaleString() : "";
}

/** "1h 2m", "3m 4s", "12s" ("1h" with `coarse`: the largest unit only). */
export function duration(ms: number, coarse = false): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  const s = Math.floor(ms / 1000);
  const units: [number, string][] = [
    [Math.floor(s / 86400), "d"],
    [Math.floor(s / 3600) % 24, "h"],
    [Math.floor(s / 60) % 60, "m"],
    [s % 60, "s"],
  ];
  const first = units.findIndex(([n]) => n > 0);
  if (first < 0) return "0s";
  const shown = units.slice(first, coarse ? first + 1 : first + 2).filter(([n]) => n > 0);
  return shown.map(([n, u]) => `${n}${u}`).join(" ");
}

/** From `start` to `end` (or now, while it goes on); "-" without a start. */
export function span(start: Date | undefined, end: Date | undefined, now = Date.now()): string {
  if (!start) return "-";
  return duration((end?.getTime() ?? now) - start.getTime());
}

/** A number without needless decimals: 4, 0.5, 7.75. */
export function num(n: number): string {
  return String(Math.round(n * 100) / 100);
}

/** What one node has or asks for: "CPU:4, 16GB, A100:1". */
export function nodeResources(cpus: number, memoryGib: number, accelerators: string): string {
  const parts: string[] = [];
  if (cpus > 0) parts.push(`CPU:${num(cpus)}`);
  if (memoryGib > 0) parts.push(`${num(memoryGib)}GB`);
  if (accelerators) parts.push(accelerators);
  return parts.join(", ");
}

/** A cluster's resources as `sky status` shows them: "2x[CPU:4, 16GB, A100:1]". */
export function clusterResources(c: Cluster): string {
  const node = nodeResources(c.cpus, c.memoryGib, c.accelerators);
  return `${c.numNodes || 1}x[${node || "-"}]`;
}

/** A job's resources per node. */
export function jobResources(j: Job): string {
  return nodeResources(j.cpus, 0, j.accelerators) || "-";
}

/** "10m", "10m (down)", or "-" when autostop is off. */
export function autostop(c: Cluster): string {
  if (c.autostopIdleMinutes < 0) return "-";
  return `${c.autostopIdleMinutes}m${c.autostopDown ? " (down)" : ""}`;
}

/** The name of an enum value as the CLI prints it ("UP", "FAILED_SETUP"). */
function enumName(e: Record<number, string>, value: number): string {
  return e[value] ?? String(value);
}

export const clusterStatus = (s: ClusterStatus): string => enumName(ClusterStatus, s);
export const jobStatus = (s: JobStatus): string => enumName(JobStatus, s);
export const managedJobStatus = (s: ManagedJobStatus): string => enumName(ManagedJobStatus, s);
export const requestState = (s: RequestState): string => enumName(RequestState, s);
export const roleName = (r: Role): string => enumName(Role, r).toLowerCase();

/** The badge colour of a status: ok (green), busy (blue), wait (amber), off (grey), bad (red). */
export function statusTone(status: string): string {
  if (["UP", "SUCCEEDED", "ENABLED", "READY", "REACHABLE"].includes(status)) return "ok";
  if (status === "RUNNING" || status === "SETTING_UP" || status === "STARTING") return "busy";
  if (status === "INIT" || status === "PENDING" || status === "RECOVERING" || status === "CANCELLING") return "wait";
  if (status.startsWith("FAILED") || status === "DISABLED" || status === "NOT_READY" || status === "UNREACHABLE") {
    return "bad";
  }
  return "off";
}
