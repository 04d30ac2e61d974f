"""The AWS CDK app that `cdk deploy` ships (see app.py)."""
