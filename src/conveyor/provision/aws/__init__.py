"""AWS through boto3: the only package that talks to AWS (an import-linter contract)."""
