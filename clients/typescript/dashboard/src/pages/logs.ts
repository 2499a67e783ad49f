// The log pages, all on the one log view: a job's output
// (#/clusters/<name>/jobs/<id>), a managed job's (#/managed/<id>) and a
// request's (#/requests/operations/<id>), each followed live.

import type { Job } from "../../../src/gen/skypilot/v1/clusters_pb.js";
import type { ManagedJob } from "../../../src/gen/skypilot/v1/managed_jobs_pb.js";
import { api, operationId, requestMetadata, stream, unary, watchOperation } from "../api.js";
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

export function jobPage(page: Page, cluster: string, id: string): void {
  const jobId = BigInt(id);
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
  const jobId = BigInt(id);
  const summary = managedTable(page, () => poller.now());
  let over = false;
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
              over = true;
              summary.update([r.job]);
            }
            yield { offset: r.offset, data: r.data, final: r.job ? managedFinal(r.job) : undefined };
          }
        },
      },
      () => page.ready(),
    ),
  );
  // The summary row is refreshed while the job goes on.
  const poller = poll(page, async () => {
    if (over) return;
    const res = await api.managed.listManagedJobs({ allUsers: true, jobIds: [jobId] }, unary(page.signal));
    summary.update(res.jobs);
  });
}

export function requestPage(page: Page, name: string): void {
  const fullName = name.startsWith("operations/") ? name : `operations/${name}`;
  const summary = requestTable(page, () => undefined);
  const problem = h("p", { class: "form-error", id: "request-error", hidden: true });
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
          // The stream ends when the request is done, or early when the server shuts down.
          const op = await api.operations.getOperation({ name: fullName }, unary(signal));
          const meta = requestMetadata(op);
          if (!op.done || offset < (meta?.logSize ?? 0n)) return undefined;
          // The state alone: a failure's message is shown above the log.
          return requestState(toRequest(op).state);
        },
      },
      () => page.ready(),
    ),
  );
  watchOperation(fullName, page.signal, (op) => {
    summary.update([toRequest(op)]);
    const error = op.result.case === "error" ? op.result.value.message : "";
    problem.textContent = error;
    problem.hidden = !error;
  }).catch((err) => page.fail(err));
}
