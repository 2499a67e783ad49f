// The log pages, all on the one log view: a job's output
// (#/clusters/<name>/jobs/<id>), a managed job's (#/managed/<id>) and a
// request's (#/requests/operations/<id>), each followed live.

import type { Operation } from "../../../src/gen/google/longrunning/operations_pb.js";
import type { Job } from "../../../src/gen/skypilot/v1/clusters_pb.js";
import type { ManagedJob } from "../../../src/gen/skypilot/v1/managed_jobs_pb.js";
import { api, operationId, requestMetadata, stream, unary } from "../api.js";
import { h, link } from "../dom.js";
import { jobStatus, managedJobStatus, requestState } from "../format.js";
import { logView, type LogChunk } from "../logview.js";
import { heading, poll, type Page } from "../ui.js";
import { managedTable } from "./managed.js";
import { requestTable, toRequest } from "./requests.js";

/** "SUCCEEDED (exit 0)", "FAILED (exit 1)", "CANCELLED". */
function jobFinal(j: Job): string {
  const exit = j.exitCode === undefined ? "" : ` (exit ${j.exitCode})`;
  return `${jobStatus(j.status)}${exit}`;
}

function managedFinal(j: ManagedJob): string {
  return `${managedJobStatus(j.status)}${j.failureReason ? `: ${j.failureReason}` : ""}`;
}

const MAX_INT64 = (1n << 63n) - 1n;

/**
 * A job id of an address: a positive integer (0 means "the latest job" to
 * the server, which a page of one job must not follow); undefined otherwise.
 */
export function positiveId(text: string): bigint | undefined {
  if (!/^[1-9][0-9]{0,18}$/.test(text)) return undefined;
  const id = BigInt(text);
  return id <= MAX_INT64 ? id : undefined;
}

/** The page of an address naming no job. */
function noSuchJob(page: Page, what: string, id: string, back: HTMLElement): void {
  page.root.dataset.page = "notfound";
  page.root.append(
    h("h1", null, "Not found"),
    h(
      "p",
      { class: "empty", id: "not-found" },
      `There is no ${what} “${id}”: job ids are positive whole numbers (1, 2, 3 …). `,
      back,
    ),
  );
  page.ready();
}

export function jobPage(page: Page, cluster: string, id: string): void {
  const jobId = positiveId(id);
  if (jobId === undefined) {
    noSuchJob(page, `job on cluster ${cluster} with id`, id, link(["clusters", cluster], `Jobs of ${cluster}`));
    return;
  }
  page.root.append(
    heading(h("span", null, "Job ", h("span", { class: "mono" }, id), " on ", link(["clusters", cluster], cluster))),
    logView(
      page,
      {
        async *open(offset, signal, opened): AsyncIterable<LogChunk> {
          const responses = api.jobs.tailJobLogs(
            { clusterName: cluster, jobId, follow: true, offset },
            stream(signal, opened),
          );
          for await (const r of responses) {
            yield { offset: r.offset, data: r.data, final: r.job ? jobFinal(r.job) : undefined };
          }
        },
      },
      () => page.ready(),
    ),
  );
}

export function managedJobPage(page: Page, id: string): void {
  const jobId = positiveId(id);
  if (jobId === undefined) {
    noSuchJob(page, "managed job with id", id, link(["managed"], "Managed jobs"));
    return;
  }
  const summary = managedTable(page, () => poller.now());
  page.root.append(
    heading(h("span", null, "Managed job ", h("span", { class: "mono" }, id))),
    summary.el,
    logView(
      page,
      {
        async *open(offset, signal, opened): AsyncIterable<LogChunk> {
          const responses = api.managed.tailManagedJobLogs({ jobId, follow: true, offset }, stream(signal, opened));
          for await (const r of responses) {
            if (r.job) {
              // The job as it ended: nothing more to poll for.
              poller.stop();
              summary.update([r.job]);
            }
            yield { offset: r.offset, data: r.data, final: r.job ? managedFinal(r.job) : undefined };
          }
        },
      },
      () => page.ready(),
    ),
  );
  // The summary row is refreshed (a unary call every 5 s) while the job goes on.
  const poller = poll(page, async () => {
    const res = await api.managed.listManagedJobs({ allUsers: true, jobIds: [jobId] }, unary(page.signal));
    summary.update(res.jobs);
  });
}

export function requestPage(page: Page, name: string): void {
  const fullName = name.startsWith("operations/") ? name : `operations/${name}`;
  const summary = requestTable(page, () => poller.now());
  const problem = h("p", { class: "form-error", id: "request-error", hidden: true });
  const show = (op: Operation): void => {
    summary.update([toRequest(op)]);
    const error = op.result.case === "error" ? op.result.value.message : "";
    problem.textContent = error;
    problem.hidden = !error;
  };
  page.root.append(
    heading(h("span", null, "Request ", h("span", { class: "mono" }, operationId(fullName)))),
    summary.el,
    problem,
    logView(
      page,
      {
        async *open(offset, signal, opened): AsyncIterable<LogChunk> {
          const responses = api.requests.streamLogs({ name: fullName, follow: true, offset }, stream(signal, opened));
          for await (const r of responses) yield { offset: r.offset, data: r.data };
        },
        async settle(offset, signal): Promise<string | undefined> {
          // The stream ends when the request is done, or early when the server
          // shuts down: its state, fetched once, says which.
          const op = await api.operations.getOperation({ name: fullName }, unary(signal));
          show(op);
          const meta = requestMetadata(op);
          if (!op.done || offset < (meta?.logSize ?? 0n)) return undefined;
          poller.stop();
          // The state alone: a failure's message is shown above the log.
          return requestState(toRequest(op).state);
        },
      },
      () => page.ready(),
    ),
  );
  // Its state, with a unary call every 5 s while it runs: the log stream is
  // the page's only open stream (a browser has 6 connections per server over
  // HTTP/1.1, and each stream holds one).
  const poller = poll(page, async () => {
    const op = await api.operations.getOperation({ name: fullName }, unary(page.signal));
    show(op);
    if (op.done) poller.stop();
  });
}
