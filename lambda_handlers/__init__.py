"""AWS Lambda entry points. Each is one import of its logic from ``framefarm.aws.handlers``."""
