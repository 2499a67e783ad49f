// #/managed: managed jobs of every user (`sky jobs queue -u`), refreshed every
// 5 s, with Cancel for the jobs not yet over that the viewer may manage.

import { ManagedJobStatus, type ManagedJob } from "../../../src/gen/skypilot/v1/managed_jobs_pb.js";
import { api, canManage, newKey, unary } from "../api.js";
import { h, link } from "../dom.js";
import { date, duration, managedJobStatus } from "../format.js";
import {
  KeyedTable,
  cell,
  filterBox,
  heading,
  matches,
  noticeSubmitted,
  poll,
  statusCell,
  timeCell,
  type Page,
} from "../ui.js";

const OVER = [
  ManagedJobStatus.SUCCEEDED,
  ManagedJobStatus.FAILED,
  ManagedJobStatus.FAILED_SETUP,
  ManagedJobStatus.FAILED_NO_RESOURCE,
  ManagedJobStatus.FAILED_CONTROLLER,
  ManagedJobStatus.CANCELLED,
];

/** Whether a managed job may still be cancelled. */
export function cancellable(j: ManagedJob): boolean {
  return !OVER.includes(j.status) && j.status !== ManagedJobStatus.CANCELLING;
}

/** A table of managed jobs (tr[data-managed-job]); also the summary of a managed job's page. */
export function managedTable(page: Page, refresh: () => void): KeyedTable<ManagedJob> {
  return new KeyedTable<ManagedJob>(page, {
    attr: "data-managed-job",
    key: (j) => String(j.jobId),
    columns: [
      { label: "ID" },
      { label: "Name" },
      { label: "User" },
      { label: "Status" },
      { label: "Resources" },
      { label: "Infra" },
      { label: "Submitted" },
      { label: "Duration" },
      { label: "Recoveries" },
      { label: "Task" },
      { label: "Cluster" },
      { label: "Failure" },
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
      cancellable(j) && canManage(j.userId)
        ? [
            {
              action: "cancel",
              label: "Cancel",
              confirm: "Confirm cancel",
              danger: true,
              run: async () => {
                const op = await api.managed.cancelManagedJobs(
                  { jobIds: [j.jobId], idempotencyKey: newKey() },
                  unary(page.signal),
                );
                noticeSubmitted(op);
                refresh();
              },
            },
          ]
        : [],
    empty: "No managed jobs. Submit one with sky jobs launch.",
  });
}

export function managedPage(page: Page): void {
  let jobs: ManagedJob[] = [];
  let filter = "";
  const table = managedTable(page, () => poller.now());
  const show = (): void =>
    table.update(jobs.filter((j) => matches(filter, j.name, j.userName, j.clusterName, j.infra, String(j.jobId))));
  const box = filterBox("Filter by name, user, cluster or infra", (text) => {
    filter = text;
    show();
  });
  page.root.append(heading("Managed jobs", box), table.el);
  const poller = poll(page, async () => {
    const res = await api.managed.listManagedJobs({ allUsers: true, pageSize: 500 }, unary(page.signal));
    jobs = res.jobs;
    show();
    page.ready();
  });
}
