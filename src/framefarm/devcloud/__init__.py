"""devcloud: the Lambda Invoke API on 127.0.0.1 running this repository's real handlers (``server``),
and the whole AWS flow on one machine (``stack``: moto's server + devcloud + a table and a bucket).

moto runs no Lambda code without Docker, so end-to-end tests and demos use this instead.
"""

from framefarm.devcloud.server import DevCloud, DevFunction, Invocation, LambdaContext, standard_functions
from framefarm.devcloud.stack import LocalAwsStack, fix_moto_number_arithmetic

__all__ = ["DevCloud", "DevFunction", "Invocation", "LambdaContext", "LocalAwsStack", "fix_moto_number_arithmetic",
           "standard_functions"]
