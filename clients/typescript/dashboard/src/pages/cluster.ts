// #/clusters/<name>: one cluster (its row, its nodes) and its jobs, newest
// first, 100 at a time ("Load more"; a refresh reads all the jobs shown),
// with Cancel for jobs not yet over.

import { Code, ConnectError } from "@connectrpc/connect";

import { JobStatus, type Cluster, type ClusterNode, type Job } from "../../../src/gen/skypilot/v1/clusters_pb.js";
import { api, canManage, newKey, unary } from "../api.js";
import { h, link } from "../dom.js";
import { date, jobResources, jobStatus, span } from "../format.js";
import { clusterTable } from "./clusters.js";
import { PagedList, listView } from "../lists.js";
import { KeyedTable, cancelAction, cell, heading, poll, statusCell, submitting, timeCell, type Page } from "../ui.js";

const PAGE_SIZE = 100;
/** The most jobs a refresh reads again (older ones loaded stay as they were). */
const MAX_REFRESH = 1000;
const ACTIVE_JOB = [JobStatus.PENDING, JobStatus.SETTING_UP, JobStatus.RUNNING];

function nodeTable(page: Page): KeyedTable<ClusterNode> {
  return new KeyedTable<ClusterNode>(page, {
    attr: "data-node",
    key: (n) => String(n.rank),
    columns: ["Rank", "Address", "Host", "Reachable"],
    cells: (n) => [
      cell("rank", String(n.rank)),
      cell("address", n.address || "-"),
      cell("host", n.host || "-"),
      statusCell(n.reachable ? "REACHABLE" : "UNREACHABLE", n.detail || undefined),
    ],
    empty: "No nodes yet.",
  });
}

export function clusterPage(page: Page, name: string): void {
  let cluster: Cluster | undefined;
  const jobList = new PagedList<Job>({
    pageSize: PAGE_SIZE,
    maxRefresh: MAX_REFRESH,
    key: (j) => String(j.jobId),
    fetch: async (pageSize, pageToken) => {
      try {
        const res = await api.jobs.listJobs(
          { clusterName: name, allUsers: true, pageSize, pageToken },
          unary(page.signal),
        );
        return { items: res.jobs, next: res.nextPageToken };
      } catch (err) {
        // A torn-down cluster has no job queue left.
        if (ConnectError.from(err).code === Code.NotFound) return { items: [], next: "" };
        throw err;
      }
    },
  });

  const summary = clusterTable(page, () => poller.now());
  const nodes = nodeTable(page);
  const missing = h("p", { class: "empty", hidden: true }, `No cluster named ${name} (it may have been torn down).`);
  const nodesBlock = h("section", { hidden: true }, h("h2", null, "Nodes"), nodes.el);

  const jobs = new KeyedTable<Job>(page, {
    attr: "data-job",
    key: (j) => String(j.jobId),
    columns: ["ID", "Name", "User", "Status", "Submitted", "Duration", "Resources", "Exit"],
    cells: (j) => [
      cell("id", link(["clusters", name, "jobs", j.jobId], String(j.jobId))),
      cell("name", link(["clusters", name, "jobs", j.jobId], j.name || "-")),
      cell("user", j.userName),
      statusCell(jobStatus(j.status)),
      timeCell(date(j.submittedAt), "submitted"),
      cell("duration", span(date(j.startedAt), date(j.endedAt))),
      cell("resources", jobResources(j)),
      cell("exit", [j.exitCode === undefined ? "" : String(j.exitCode), j.message].filter(Boolean).join(": ") || "-"),
    ],
    actions: (j) =>
      cancelAction(
        ACTIVE_JOB.includes(j.status) && canManage(j.userId),
        submitting(
          () =>
            api.jobs.cancelJobs(
              { clusterName: name, jobIds: [j.jobId], idempotencyKey: newKey() },
              unary(page.signal),
            ),
          () => poller.now(),
        ),
      ),
    empty: "No jobs on this cluster.",
  });

  // Newest first.
  const jobView = listView(page, jobs, jobList, "jobs", (items) =>
    items.slice().sort((a, b) => (a.jobId === b.jobId ? 0 : a.jobId > b.jobId ? -1 : 1)),
  );

  page.root.append(
    heading(h("span", null, "Cluster ", h("span", { class: "mono" }, name))),
    summary.el,
    missing,
    nodesBlock,
    h("section", null, h("h2", null, "Jobs"), ...jobView.elements),
  );

  const poller = poll(page, async () => {
    const [clusters] = await Promise.all([
      api.clusters.listClusters({ clusterNames: [name], allUsers: true }, unary(page.signal)),
      jobView.refresh(),
    ]);
    cluster = clusters.clusters.find((c) => c.name === name);
    summary.update(cluster ? [cluster] : []);
    summary.el.hidden = !cluster;
    missing.hidden = Boolean(cluster);
    nodesBlock.hidden = !cluster || cluster.nodes.length === 0;
    nodes.update(cluster?.nodes ?? []);
    page.ready();
  });
}
