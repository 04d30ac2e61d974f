"""devcloud: the Lambda Invoke API on 127.0.0.1 running this repository's real handlers, one process per
function instance under AWS's runtime interface client (``server``, ``instance``, ``pool``, ``task_root``),
and the whole AWS flow on one machine (``stack``: moto's server + devcloud + a table and a bucket).

moto runs no Lambda code without Docker, so end-to-end tests and demos use this instead.
"""

from framefarm.devcloud.server import DevCloud, DevFunction, Invocation, standard_functions
from framefarm.devcloud.stack import LocalAwsStack, fix_moto_number_arithmetic
from framefarm.devcloud.task_root import TaskRoot, build_task_root

__all__ = ["DevCloud", "DevFunction", "Invocation", "LocalAwsStack", "TaskRoot", "build_task_root",
           "fix_moto_number_arithmetic", "standard_functions"]
