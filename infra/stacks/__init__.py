"""The framefarm stack."""
