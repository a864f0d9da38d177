"""`RegistryClient`: the pull side (manifests, blobs) and the push side over one set of endpoints, tokens and openers."""

from __future__ import annotations

from solver.source.registry.blobs import BlobPuller
from solver.source.registry.manifests import ManifestPuller
from solver.source.registry.push import Pusher


class RegistryClient(ManifestPuller, BlobPuller, Pusher):
    """Talks the OCI distribution API to origins and mirrors. Safe to share between threads.

    Without `config`, settings and credentials are loaded as the CLI does
    (`load_registry_config()`: $LLBOOK_CONFIG or ~/.config/llbook/llbook.toml, and Docker's
    config.json). Pass `RegistryConfig()` for a client with no settings at all.
    """
