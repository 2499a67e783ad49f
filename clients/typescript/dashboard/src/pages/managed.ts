// #/managed: managed jobs of every user (`sky jobs queue -u`), newest first,
// 500 at a time ("Load more"), refreshed every 5 s, with Cancel for the jobs
// not yet over that the viewer may manage.

import { ManagedJobStatus, type ManagedJob } from "../../../src/gen/skypilot/v1/managed_jobs_pb.js";
import { api, canManage, newKey, unary } from "../api.js";
import { h, link } from "../dom.js";
import { date, duration, managedJobStatus } from "../format.js";
import { PagedList, listPage } from "../lists.js";
import { KeyedTable, cancelAction, cell, statusCell, submitting, timeCell, type Page } from "../ui.js";

const PAGE_SIZE = 500;
/** The most jobs a refresh reads again (older ones loaded stay as they were). */
const MAX_REFRESH = 1000;

/** The statuses of a managed job that is not over and not being cancelled. */
const ACTIVE = [
  ManagedJobStatus.PENDING,
  ManagedJobStatus.STARTING,
  ManagedJobStatus.RUNNING,
  ManagedJobStatus.RECOVERING,
];

/** Whether a managed job may still be cancelled. */
export function cancellable(j: ManagedJob): boolean {
  return ACTIVE.includes(j.status);
}

/** A table of managed jobs (tr[data-managed-job]); also the summary of a managed job's page. */
export function managedTable(page: Page, refresh: () => void): KeyedTable<ManagedJob> {
  return new KeyedTable<ManagedJob>(page, {
    attr: "data-managed-job",
    key: (j) => String(j.jobId),
    columns: [
      "ID", "Name", "User", "Status", "Resources", "Infra",
      "Submitted", "Duration", "Recoveries", "Task", "Cluster", "Failure",
    ],
    cells: (j) => [
      cell("id", link(["managed", j.jobId], String(j.jobId))),
      cell("name", link(["managed", j.jobId], j.name || "-")),
      cell("user", j.userName),
      statusCell(managedJobStatus(j.status)),
      cell("resources", j.resources || "-"),
      cell("infra", j.infra || "-"),
      timeCell(date(j.submittedAt), "submitted"),
      cell("duration", j.jobDurationMs > 0n ? duration(Number(j.jobDurationMs)) : "-"),
      h("td", { "data-col": "recoveries", class: j.recoveryCount > 0 ? "warn" : undefined }, String(j.recoveryCount)),
      cell("task", `${j.currentTask + 1}/${j.numTasks || 1}${j.taskName && j.numTasks > 1 ? ` ${j.taskName}` : ""}`),
      cell("cluster", j.clusterName ? link(["clusters", j.clusterName], j.clusterName) : "-"),
      cell("failure", j.failureReason || ""),
    ],
    actions: (j) =>
      cancelAction(
        cancellable(j) && canManage(j.userId),
        submitting(
          () => api.managed.cancelManagedJobs({ jobIds: [j.jobId], idempotencyKey: newKey() }, unary(page.signal)),
          refresh,
        ),
      ),
    empty: "No managed jobs. Submit one with sky jobs launch.",
  });
}

export function managedPage(page: Page): void {
  listPage<ManagedJob>(page, {
    title: "Managed jobs",
    filter: "Filter by name, user, cluster or infra",
    fields: (j) => [j.name, j.userName, j.clusterName, j.infra, String(j.jobId)],
    table: (refresh) => managedTable(page, refresh),
    noun: "managed jobs",
    source: new PagedList<ManagedJob>({
      pageSize: PAGE_SIZE,
      maxRefresh: MAX_REFRESH,
      key: (j) => String(j.jobId),
      fetch: async (pageSize, pageToken) => {
        const res = await api.managed.listManagedJobs({ allUsers: true, pageSize, pageToken }, unary(page.signal));
        return { items: res.jobs, next: res.nextPageToken };
      },
    }),
  });
}
