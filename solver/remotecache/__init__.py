"""Cache export and import in BuildKit's formats: inline, registry and local (OCI layout)."""
