"""Python client of the SkyPilot-compatible API server (gRPC).

>>> from skypilot_client import Client, Task
>>> with Client() as client:
...     op = client.launch(Task(run="echo hello", cpus=0.5), "dev")
...     launched = op.result()
...     for _, data in client.job_logs("dev", launched.job_id):
...         print(data.decode(), end="")

Against a server that runs elsewhere, `launch` and `exec` upload the task's
workdir and file mounts first (`skypilot_client.uploads`). `AsyncClient`
offers the same over asyncio. Failures raise `SkyError`, whose
`error_reason` is an `ErrorReason` value to branch on; messages and enums of
the protocol are in `skypilot_client.v1`.
"""

from ._version import __version__
from .aio import AsyncClient, AsyncLogStream, AsyncOperation
from .client import Client, LogStream, Operation
from .endpoint import Endpoint, parse_endpoint, resolve_endpoint
from .errors import ErrorReason, SkyError, error_reason_name, parse_error_reason
from .task import Task
from .uploads import UploadError, Uploaded

__all__ = [
    "AsyncClient",
    "AsyncLogStream",
    "AsyncOperation",
    "Client",
    "Endpoint",
    "ErrorReason",
    "LogStream",
    "Operation",
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
