"""OCI distribution API client (BuildKit's remotes/docker): the package's public names.

- `descriptor.py`: media types, `Descriptor`, the media type of a manifest document.
- `errors.py`: `RegistryError` and the ways a registry operation fails.
- `transport.py`: `Endpoint`, one HTTP request (TLS openers, no Authorization across
  redirects), `RetryPolicy` (connection errors, timeouts, 5xx and 429, honouring
  `Retry-After`), status checks.
- `auth.py`: `WWW-Authenticate` challenges; bearer tokens fetched (anonymously, or with
  basic credentials / an identity token from `~/.docker/config.json`) and cached per host
  and scope; basic credentials sent directly.
- `base.py`: a reference's endpoints (mirrors before the origin on pull), the
  authenticated, retried request, trying endpoints in order.
- `manifests.py`: `get_manifest` by tag or digest (verified), `choose_manifest` of an index.
- `blobs.py`: `download_blob` streams into a fresh writer per attempt, hashing as it goes;
  a digest or size mismatch raises `BlobDigestMismatchError` before anything is committed.
- `push.py`: `blob_exists`, `start_upload`, `mount_blob`, `upload_monolithic`,
  `upload_chunked`, `push_blob`, `put_manifest`, `head_manifest`.
- `client.py`: `RegistryClient`, all of the above over one set of endpoints and tokens.
"""

from solver.llb.platform import Platform
from solver.source.registry.client import RegistryClient
from solver.source.registry.descriptor import (ACCEPT_MANIFESTS, INDEX_TYPES, MANIFEST_TYPES,
                                               MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_FOREIGN_LAYER,
                                               MEDIA_TYPE_DOCKER_LAYER, MEDIA_TYPE_DOCKER_LAYER_GZIP,
                                               MEDIA_TYPE_DOCKER_LAYER_ZSTD, MEDIA_TYPE_DOCKER_LIST,
                                               MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_SCHEMA1,
                                               MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED, MEDIA_TYPE_OCI_CONFIG,
                                               MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER,
                                               MEDIA_TYPE_OCI_LAYER_GZIP, MEDIA_TYPE_OCI_LAYER_ND_GZIP,
                                               MEDIA_TYPE_OCI_LAYER_ZSTD, MEDIA_TYPE_OCI_MANIFEST, Descriptor,
                                               default_platform, manifest_media_type, sha256_digest)
from solver.source.registry.errors import (AuthenticationError, BlobDigestMismatchError, ManifestError,
                                           NotFoundError, PlatformNotFoundError, RegistryError,
                                           RegistryUnavailableError, TransferInterruptedError)
from solver.source.registry.manifests import ManifestResponse, choose_manifest
from solver.source.registry.push import UploadSession
from solver.source.registry.transport import Endpoint, RetryPolicy

__all__ = [
    "ACCEPT_MANIFESTS", "INDEX_TYPES", "MANIFEST_TYPES", "MEDIA_TYPE_DOCKER_CONFIG", "MEDIA_TYPE_DOCKER_FOREIGN_LAYER",
    "MEDIA_TYPE_DOCKER_LAYER", "MEDIA_TYPE_DOCKER_LAYER_GZIP", "MEDIA_TYPE_DOCKER_LAYER_ZSTD",
    "MEDIA_TYPE_DOCKER_LIST", "MEDIA_TYPE_DOCKER_MANIFEST", "MEDIA_TYPE_DOCKER_SCHEMA1",
    "MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED", "MEDIA_TYPE_OCI_CONFIG", "MEDIA_TYPE_OCI_INDEX", "MEDIA_TYPE_OCI_LAYER",
    "MEDIA_TYPE_OCI_LAYER_GZIP", "MEDIA_TYPE_OCI_LAYER_ND_GZIP", "MEDIA_TYPE_OCI_LAYER_ZSTD",
    "MEDIA_TYPE_OCI_MANIFEST", "AuthenticationError", "BlobDigestMismatchError", "Descriptor", "Endpoint",
    "ManifestError", "ManifestResponse", "NotFoundError", "Platform", "PlatformNotFoundError", "RegistryClient",
    "RegistryError", "RegistryUnavailableError", "RetryPolicy", "TransferInterruptedError", "UploadSession",
    "choose_manifest", "default_platform", "manifest_media_type", "sha256_digest",
]
