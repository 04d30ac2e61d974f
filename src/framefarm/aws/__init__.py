"""The AWS deployment's code: resource settings and the three Lambda handlers' logic.

``lambda_handlers/*.py`` only import from here; boto3 is imported when these are used.
"""
