// #/requests: the requests (operations) of every user, as `sky api status -a`
// lists them, newest first, 200 at a time ("Load more", paged with
// google.longrunning ListOperations), refreshed every 5 s, with Cancel for
// unfinished ones.

import type { Operation } from "../../../src/gen/google/longrunning/operations_pb.js";
import { RequestState, type RequestMetadata } from "../../../src/gen/skypilot/v1/requests_pb.js";
import { api, canManage, operationId, operationState, requestMetadata, unary } from "../api.js";
import { h, link } from "../dom.js";
import { date, requestState, span } from "../format.js";
import { PagedList, listPage } from "../lists.js";
import { KeyedTable, cancelAction, cell, requestRoute, showNotice, statusCell, timeCell, type Page } from "../ui.js";

const PAGE_SIZE = 200;
/** The most requests a refresh reads again (the largest page ListOperations gives). */
const MAX_REFRESH = 1000;

/** An operation with its metadata unpacked. */
export interface Request {
  op: Operation;
  meta: RequestMetadata | undefined;
  state: RequestState;
}

export function toRequest(op: Operation): Request {
  const meta = requestMetadata(op);
  return { op, meta, state: operationState(op, meta) };
}

/** What went wrong, for a failed or cancelled request. */
export function requestProblem(r: Request): string {
  if (r.op.result.case === "error") return r.op.result.value.message;
  return r.meta?.statusMessage ?? "";
}

/** A table of requests (tr[data-request="operations/<id>"]); also the summary of a request's page. */
export function requestTable(page: Page, refresh: () => void): KeyedTable<Request> {
  return new KeyedTable<Request>(page, {
    attr: "data-request",
    key: (r) => r.op.name,
    columns: ["ID", "Name", "User", "Cluster", "Status", "Created", "Duration", "Message"],
    cells: (r) => {
      const m = r.meta;
      const id = operationId(r.op.name);
      return [
        cell("id", h("a", { href: requestRoute(r.op.name), class: "mono" }, id)),
        cell("name", m?.requestName ?? "-"),
        cell("user", m?.userName ?? "-"),
        cell("cluster", m?.clusterName ? link(["clusters", m.clusterName], m.clusterName) : "-"),
        statusCell(requestState(r.state)),
        timeCell(date(m?.createTime), "created"),
        cell("duration", span(date(m?.startTime), date(m?.finishTime))),
        cell("message", m?.statusMessage || (r.state === RequestState.FAILED ? requestProblem(r) : "")),
      ];
    },
    actions: (r) =>
      cancelAction(!r.op.done && canManage(r.meta?.userId ?? ""), async () => {
        await api.operations.cancelOperation({ name: r.op.name }, unary(page.signal));
        showNotice("Cancelling request ", h("a", { href: requestRoute(r.op.name) }, operationId(r.op.name)));
        refresh();
      }),
    empty: "No requests.",
  });
}

export function requestsPage(page: Page): void {
  listPage<Request>(page, {
    title: "Requests",
    filter: "Filter by id, name, user or cluster",
    fields: (r) => [r.op.name, r.meta?.requestName ?? "", r.meta?.userName ?? "", r.meta?.clusterName ?? ""],
    table: (refresh) => requestTable(page, refresh),
    noun: "requests",
    source: new PagedList<Request>({
      pageSize: PAGE_SIZE,
      maxRefresh: MAX_REFRESH,
      key: (r) => r.op.name,
      fetch: async (pageSize, pageToken) => {
        // Every user's requests, finished or not, newest first.
        const res = await api.operations.listOperations({ pageSize, pageToken }, unary(page.signal));
        return { items: res.operations.map(toRequest), next: res.nextPageToken };
      },
    }),
  });
}
