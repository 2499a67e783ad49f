// #/managed: managed jobs of every user (`sky jobs queue -u`), newest first,
// 500 at a time ("Load more"), refreshed every 5 s, with Cancel for the jobs
// not yet over that the viewer may manage.

import { ManagedJobStatus, type ManagedJob } from "../../../src/gen/skypilot/v1/managed_jobs_pb.js";
import { api, canManage, newKey, unary } from "../api.js";
import { h, link } from "../dom.js";
import { date, duration, managedJobStatus } from "../format.js";
import {
  KeyedTable,
  PagedList,
  cell,
  filterBox,
  heading,
  matches,
  moreLine,
  noticeSubmitted,
  poll,
  statusCell,
  timeCell,
  type Page,
} from "../ui.js";

const PAGE_SIZE = 500;
/** The most jobs a refresh reads again (older ones loaded stay as they were). */
const MAX_REFRESH = 1000;

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
  const list = new PagedList<ManagedJob>({
    pageSize: PAGE_SIZE,
    maxRefresh: MAX_REFRESH,
    key: (j) => String(j.jobId),
    fetch: async (pageSize, pageToken) => {
      const res = await api.managed.listManagedJobs({ allUsers: true, pageSize, pageToken }, unary(page.signal));
      return { items: res.jobs, next: res.nextPageToken };
    },
  });
  let filter = "";
  const table = managedTable(page, () => poller.now());
  const more = moreLine(page, list, "managed jobs", () => show());
  const show = (): void => {
    table.update(
      list.items.filter((j) => matches(filter, j.name, j.userName, j.clusterName, j.infra, String(j.jobId))),
    );
    more.update();
  };
  const box = filterBox("Filter by name, user, cluster or infra", (text) => {
    filter = text;
    show();
  });
  page.root.append(heading("Managed jobs", box), table.el, more.el);
  const poller = poll(page, async () => {
    await list.refresh();
    show();
    page.ready();
  });
}
