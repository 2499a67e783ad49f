"""Python client of the SkyPilot-compatible API server (gRPC).

>>> from skypilot_client import Client, Task
>>> with Client() as client:
...     op = client.launch(Task(run="echo hello", cpus=0.5), "dev")
...     launched = op.result()
...     for _, data in client.job_logs("dev", launched.job_id):
...         print(data.decode(), end="")
...     job_id = client.jobs_launch(Task(run="python train.py")).result().job_id
...     managed = client.jobs_wait(job_id)     # a managed job, on a cluster of its own

Against a server that runs elsewhere, `launch`, `exec` and `jobs_launch`
upload the task's workdir and file mounts first (`skypilot_client.uploads`). `AsyncClient`
offers the same over asyncio. Failures raise `SkyError`, whose
`error_reason` is an `ErrorReason` value to branch on; messages and enums of
the protocol are in `skypilot_client.v1`.
"""

from ._common import FINAL_MANAGED_JOB_STATUSES
from ._version import __version__
from .aio import AsyncClient, AsyncLogStream, AsyncOperation
from .client import Client, LogStream, Operation
from .endpoint import Endpoint, parse_endpoint, resolve_endpoint
from .errors import ErrorReason, SkyError, error_reason_name, parse_error_reason
from .task import JobRecovery, Pipeline, Task
from .uploads import UploadError, Uploaded

__all__ = [
    "AsyncClient",
    "AsyncLogStream",
    "AsyncOperation",
    "Client",
    "Endpoint",
    "ErrorReason",
    "FINAL_MANAGED_JOB_STATUSES",
    "JobRecovery",
    "LogStream",
    "Operation",
    "Pipeline",
    "SkyError",
    "Task",
    "UploadError",
    "Uploaded",
    "__version__",
    "error_reason_name",
    "parse_endpoint",
    "parse_error_reason",
    "resolve_endpoint",
]
