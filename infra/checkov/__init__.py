"""Custom checkov checks for the stackhook Bicep templates (loaded with --external-checks-dir)."""
