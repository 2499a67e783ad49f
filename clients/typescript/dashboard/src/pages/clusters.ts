// #/clusters: every user's clusters (`sky status -u`), refreshed every 5 s,
// with Stop / Start / Down for the clusters the viewer may manage.

import { ClusterStatus, type Cluster } from "../../../src/gen/skypilot/v1/clusters_pb.js";
import { api, canManage, newKey, unary } from "../api.js";
import { link } from "../dom.js";
import { autostop, clusterResources, clusterStatus, date } from "../format.js";
import { listPage, wholeList } from "../lists.js";
import {
  KeyedTable,
  cell,
  dangerAction,
  statusCell,
  submitting,
  timeCell,
  type Action,
  type Page,
} from "../ui.js";

/** The Stop / Start / Down actions the viewer may take on a cluster. */
export function clusterActions(page: Page, c: Cluster, refresh: () => void): Action[] {
  if (!canManage(c.userId)) return [];
  const submit = (call: typeof api.clusters.stop) =>
    submitting(() => call({ clusterName: c.name, idempotencyKey: newKey() }, unary(page.signal)), refresh);
  const actions: Action[] = [];
  if (c.status === ClusterStatus.UP || c.status === ClusterStatus.INIT) {
    actions.push({ action: "stop", label: "Stop", run: submit(api.clusters.stop) });
  }
  if (c.status === ClusterStatus.STOPPED || c.status === ClusterStatus.INIT) {
    actions.push({ action: "start", label: "Start", run: submit(api.clusters.start) });
  }
  actions.push(dangerAction("down", "Down", submit(api.clusters.down)));
  return actions;
}

/** A table of clusters (tr[data-cluster]); also the summary of the cluster page. */
export function clusterTable(page: Page, refresh: () => void): KeyedTable<Cluster> {
  return new KeyedTable<Cluster>(page, {
    attr: "data-cluster",
    key: (c) => c.name,
    columns: ["Name", "User", "Infra", "Resources", "Status", "Autostop", "Launched"],
    cells: (c) => [
      cell("name", link(["clusters", c.name], c.name)),
      cell("user", c.userName),
      cell("infra", c.infra || "-"),
      cell("resources", clusterResources(c)),
      statusCell(clusterStatus(c.status)),
      cell("autostop", autostop(c)),
      timeCell(date(c.launchedAt), "launched"),
    ],
    actions: (c) => clusterActions(page, c, refresh),
    empty: "No clusters. Launch one with sky launch.",
  });
}

export function clustersPage(page: Page): void {
  listPage<Cluster>(page, {
    title: "Clusters",
    filter: "Filter by name, user or infra",
    fields: (c) => [c.name, c.userName, c.infra],
    table: (refresh) => clusterTable(page, refresh),
    noun: "clusters",
    source: wholeList(async () => (await api.clusters.listClusters({ allUsers: true }, unary(page.signal))).clusters),
  });
}
