"""The skypilot.v1 protocol: every message, enum and client stub by name,
plus the generated modules (``v1.clusters_pb2``, ``v1.clusters_pb2_grpc`` ...).

>>> from skypilot_client import v1
>>> v1.JobStatus.Name(job.status)
'JOB_STATUS_SUCCEEDED'

The modules are generated from proto/skypilot/v1 by scripts/generate.sh into
skypilot_client._gen.skypilot.v1; google.longrunning and google.rpc come from
the googleapis-common-protos package.
"""

from ._gen.skypilot.v1 import *  # noqa: F401,F403
from ._gen.skypilot.v1 import __all__  # noqa: F401
