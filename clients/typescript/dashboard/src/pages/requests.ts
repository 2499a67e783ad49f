// #/requests: the requests (operations) of every user, as `sky api status -a`
// lists them, refreshed every 5 s, with Cancel for unfinished ones.

import type { Operation } from "../../../src/gen/google/longrunning/operations_pb.js";
import { RequestState, type RequestMetadata } from "../../../src/gen/skypilot/v1/requests_pb.js";
import { api, canManage, operationId, operationState, requestMetadata, unary } from "../api.js";
import { h, link } from "../dom.js";
import { date, requestState, span } from "../format.js";
import {
  KeyedTable,
  cell,
  filterBox,
  heading,
  matches,
  poll,
  requestRoute,
  showNotice,
  statusCell,
  timeCell,
  type Page,
} from "../ui.js";

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
    columns: [
      { label: "ID" },
      { label: "Name" },
      { label: "User" },
      { label: "Cluster" },
      { label: "Status" },
      { label: "Created" },
      { label: "Duration" },
      { label: "Message" },
    ],
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
      !r.op.done && canManage(r.meta?.userId ?? "")
        ? [
            {
              action: "cancel",
              label: "Cancel",
              confirm: "Confirm cancel",
              danger: true,
              run: async () => {
                await api.operations.cancelOperation({ name: r.op.name }, unary(page.signal));
                showNotice("Cancelling request ", h("a", { href: requestRoute(r.op.name) }, operationId(r.op.name)));
                refresh();
              },
            },
          ]
        : [],
    empty: "No requests.",
  });
}

export function requestsPage(page: Page): void {
  let requests: Request[] = [];
  let filter = "";
  const table = requestTable(page, () => poller.now());
  const show = (): void =>
    table.update(
      requests.filter((r) =>
        matches(filter, r.op.name, r.meta?.requestName ?? "", r.meta?.userName ?? "", r.meta?.clusterName ?? ""),
      ),
    );
  const box = filterBox("Filter by id, name, user or cluster", (text) => {
    filter = text;
    show();
  });
  page.root.append(heading("Requests", box), table.el);
  const poller = poll(page, async () => {
    const res = await api.requests.listRequests(
      { allUsers: true, includeFinished: true, limit: 200 },
      unary(page.signal),
    );
    requests = res.operations.map(toRequest);
    show();
    page.ready();
  });
}
