"""OCI distribution API client: manifests, blobs, auth, mirrors, retries, and push.

Pull side:
- `RegistryClient.get_manifest(ref)` GETs a manifest by tag or digest (Accept: OCI and
  Docker manifests and indexes), verifies its digest, and tries the configured mirrors
  before the origin.
- `choose_manifest(index, platform)` picks one manifest of an OCI index / Docker
  manifest list by os/architecture/variant.
- `RegistryClient.download_blob(...)` streams a blob into a writer (e.g. a content
  store writer) hashing as it goes; a digest or size mismatch raises
  `BlobDigestMismatchError` before anything is committed.

Auth: a 401 carries `WWW-Authenticate`. For `Bearer realm=..,service=..,scope=..` a token
is fetched (anonymously, or with basic credentials / an identity token from
`~/.docker/config.json`) and cached per host and scope; for `Basic`, the credentials are
sent directly. Authorization headers are never forwarded across redirects.

Retries: connection errors, timeouts, 5xx and 429 are retried with exponential backoff
(`RetryPolicy`), honouring `Retry-After`.

Push side (used by the registry exporter), each one request of the distribution spec:
`blob_exists` (HEAD), `start_upload` (POST), `mount_blob` (POST ?mount=&from=),
`upload_monolithic` (PUT ?digest=), `upload_chunked` (PATCH... then PUT), `push_blob`
(exists → mount → upload), `put_manifest` (PUT), `head_manifest` (HEAD).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, TypeVar

from solver.errors import LLBookError
from solver.llb.platform import Platform
from solver.source.reference import Reference, api_host, parse as parse_reference
from solver.source.registry_config import Credentials, RegistryConfig, is_loopback, load_registry_config

# --- media types -------------------------------------------------------------------------

MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPE_OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_TYPE_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_TYPE_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_TYPE_DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
MEDIA_TYPE_DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
MEDIA_TYPE_DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = (MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_CONFIG_SIZE = 16 * 1024 * 1024
CHUNK_SIZE = 1024 * 1024
USER_AGENT = "llbook/0.1"
_SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
T = TypeVar("T")

# --- errors ------------------------------------------------------------------------------


class RegistryError(LLBookError):
    """A registry operation that failed; the message names the registry and the object."""


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached or kept failing (connection errors, 5xx, 429)."""


class TransferInterruptedError(RegistryUnavailableError):
    """A blob download that broke off after it had started; retried with a fresh writer."""


class AuthenticationError(RegistryError):
    """The registry wants credentials we do not have, or rejected the ones we sent."""


class NotFoundError(RegistryError):
    """The registry has no such manifest, tag or blob."""


class ManifestError(RegistryError):
    """A manifest that is malformed, too large, of an unsupported type, or not as promised."""


class PlatformNotFoundError(RegistryError):
    """No manifest of an index matches the requested platform."""


class BlobDigestMismatchError(RegistryError):
    """Downloaded bytes do not match the descriptor's digest or size; nothing was stored."""

    def __init__(self, message: str, *, blob: str, actual: str, size: int) -> None:
        self.blob = blob
        self.actual = actual
        self.size = size
        super().__init__(message)


# --- platform and descriptors (Platform is solver.llb.platform's) ------------------------

def default_platform() -> Platform:
    """The host's platform (`linux/<arch>`), as `Platform.host()`."""
    return Platform.host()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    @staticmethod
    def from_dict(data: Mapping[str, object], where: str = "descriptor") -> "Descriptor":
        digest, size = data.get("digest"), data.get("size")
        if not isinstance(digest, str) or not _SHA256_RE.match(digest):
            raise ManifestError(f"{where}: invalid or missing digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}: invalid or missing size {size!r} for {digest}")
        platform = data.get("platform")
        annotations = data.get("annotations") or {}
        urls = data.get("urls") or ()
        return Descriptor(
            media_type=str(data.get("mediaType", "")), digest=digest, size=size,
            urls=tuple(str(u) for u in urls) if isinstance(urls, list) else (),
            annotations={str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
            platform=Platform.from_dict(platform) if isinstance(platform, dict) else None)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        return out


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_media_type(data: Mapping[str, object], content_type: str = "") -> str:
    """The media type of a manifest document: its `mediaType`, the header, or its shape."""
    declared = data.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    header = content_type.split(";", 1)[0].strip()
    if header in MANIFEST_TYPES + INDEX_TYPES:
        return header
    if "manifests" in data:
        return MEDIA_TYPE_OCI_INDEX
    if "layers" in data or "config" in data:
        return MEDIA_TYPE_OCI_MANIFEST
    return header


def _is_attestation(desc: Descriptor) -> bool:
    return (desc.annotations.get("vnd.docker.reference.type") == "attestation-manifest"
            or (desc.platform is not None and desc.platform.os == "unknown"))


def choose_manifest(index: Mapping[str, object], platform: Platform, where: str = "index") -> Descriptor:
    """Pick the manifest for `platform` from an OCI index or Docker manifest list.

    Exact variant match first, then a normalised match (arm64 "" == "v8"), then, when the
    caller asked for no variant, the first manifest of that os/architecture.
    """
    raw = index.get("manifests")
    if not isinstance(raw, list):
        raise ManifestError(f"{where}: index has no 'manifests' list")
    descs = [Descriptor.from_dict(m, where) for m in raw if isinstance(m, dict)]
    candidates = [d for d in descs if d.platform is not None and not _is_attestation(d)]
    exact = [d for d in candidates if d.platform == platform or (
        d.platform.os == platform.os and d.platform.architecture == platform.architecture
        and d.platform.variant == platform.variant)]
    normalised = [d for d in candidates if d.platform.matches(platform)]
    loose = [d for d in candidates if not platform.variant and d.platform.os == platform.os
             and d.platform.architecture == platform.architecture]
    for group in (exact, normalised, loose):
        if group:
            return group[0]
    available = ", ".join(str(d.platform) for d in candidates) or "none"
    raise PlatformNotFoundError(f"{where}: no manifest for platform {platform} (available: {available})")


# --- retries and auth challenges ---------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: delays base, 2*base, 4*base... capped at max_delay."""

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after.strip()), self.max_delay)
        return min(self.base_delay * (2 ** attempt), self.max_delay)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic"
    params: Mapping[str, str]


_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse `WWW-Authenticate: Bearer realm="..",service="..", Basic realm=".."`."""
    challenges: list[Challenge] = []
    for match in re.finditer(r"(?:^|,)\s*(Bearer|Basic)\b((?:(?!,\s*(?:Bearer|Basic)\b).)*)", header, re.I | re.S):
        params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
                  for m in _CHALLENGE_PARAM_RE.finditer(match.group(2))}
        challenges.append(Challenge(match.group(1).lower(), params))
    return challenges


@dataclass(frozen=True)
class Endpoint:
    """One place to talk to: the origin registry or a mirror."""

    host: str  # host[:port] as dialled
    scheme: str  # "http" or "https"
    verify_tls: bool = True
    ca_files: tuple[str, ...] = ()
    prefix: str = ""  # path prefix of a mirror such as "mirror.example/prefix"
    mirror: bool = False
    credentials: Credentials | None = None

    @property
    def base_url(self) -> str:
        prefix = f"/{self.prefix.strip('/')}" if self.prefix else ""
        return f"{self.scheme}://{self.host}{prefix}/v2/"

    def url(self, repository: str, kind: str, obj: str = "") -> str:
        tail = f"{kind}/{obj}" if obj else f"{kind}/"
        return f"{self.base_url}{repository}/{tail}"

    def __str__(self) -> str:
        return f"{'mirror ' if self.mirror else ''}{self.scheme}://{self.host}"


@dataclass
class UploadSession:
    """An upload in progress; `location` moves on with every PATCH."""

    ref: Reference
    endpoint: Endpoint
    location: str
    offset: int = 0


@dataclass(frozen=True)
class ManifestResponse:
    ref: Reference
    data: bytes
    media_type: str
    digest: str
    endpoint: Endpoint

    def json(self) -> dict:
        try:
            document = json.loads(self.data)
        except ValueError as exc:
            raise ManifestError(f"manifest {self.digest} of {self.ref} from {self.endpoint} is not JSON") from exc
        if not isinstance(document, dict):
            raise ManifestError(f"manifest {self.digest} of {self.ref} from {self.endpoint} is not a JSON object")
        return document


class BlobWriterLike(Protocol):
    """What `download_blob` writes into; `solver.cache.content.BlobWriter` is one."""

    def write(self, data: bytes) -> object: ...

    def commit(self) -> str: ...


ProgressFn = Callable[[int], None]  # new bytes; a negative count rewinds a failed attempt
Body = bytes | Callable[[], BinaryIO] | None


class _Response:
    """A small view of an urllib response or HTTPError."""

    def __init__(self, raw: http.client.HTTPResponse | urllib.error.HTTPError, url: str) -> None:
        self.raw = raw
        self.url = url
        self.status: int = getattr(raw, "status", None) or raw.code  # type: ignore[union-attr]
        self.headers = raw.headers

    def read(self, limit: int | None = None) -> bytes:
        if limit is None:
            return self.raw.read()
        data = self.raw.read(limit + 1)
        if len(data) > limit:
            raise ManifestError(f"response from {self.url} is larger than {limit} bytes")
        return data

    def iter_chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        while chunk := self.raw.read(size):
            yield chunk

    def error_text(self) -> str:
        try:
            body = self.raw.read(4096).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            return ""
        try:
            errors = json.loads(body).get("errors") or []
            return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors) or body.strip()
        except (ValueError, AttributeError):
            return body.strip()[:300]

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> "_Response":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _NoAuthRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects (blob storage backends) without carrying Authorization along."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.remove_header("Authorization")
        return new


# --- the client --------------------------------------------------------------------------


class RegistryClient:
    """Talks the OCI distribution API to origins and mirrors. Safe to share between threads.

    Without `config`, settings and credentials are loaded as the CLI does
    (`load_registry_config()`: $LLBOOK_CONFIG or ~/.config/llbook/llbook.toml, and Docker's
    config.json). Pass `RegistryConfig()` for a client with no settings at all.
    """

    def __init__(self, config: RegistryConfig | None = None, retry: RetryPolicy | None = None,
                 timeout: float = 60.0, user_agent: str = USER_AGENT) -> None:
        self.config = config if config is not None else load_registry_config()
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = timeout
        self.user_agent = user_agent
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, frozenset[str]], tuple[str, float]] = {}
        self._challenges: dict[str, Challenge] = {}
        self._openers: dict[tuple[str, bool, tuple[str, ...]], urllib.request.OpenerDirector] = {}
        self._credentials: dict[str, Credentials | None] = {}

    # -- endpoints --

    def endpoint(self, host: str, *, mirror: bool = False) -> Endpoint:
        bare, _, prefix = host.partition("/")
        return Endpoint(host=bare, scheme=self.config.scheme(bare), verify_tls=self.config.verify_tls(bare),
                        ca_files=self.config.ca_files(bare), prefix=prefix, mirror=mirror,
                        credentials=self._credentials_for(bare))

    def _credentials_for(self, host: str) -> Credentials | None:
        """Credentials per host, looked up once (a credential helper is a subprocess)."""
        with self._lock:
            if host in self._credentials:
                return self._credentials[host]
        found = self.config.credentials_for(host)
        with self._lock:
            self._credentials[host] = found
        return found

    def endpoints(self, ref: Reference, *, push: bool = False) -> list[Endpoint]:
        """Mirrors first (pull only), then the origin."""
        origin = self.endpoint(api_host(ref.domain))
        if push:
            return [origin]
        mirrors = [self.endpoint(m, mirror=True) for m in self.config.mirrors(ref.domain)]
        return mirrors + [origin]

    # -- low-level HTTP --

    def _opener(self, endpoint: Endpoint) -> urllib.request.OpenerDirector:
        key = (endpoint.host, endpoint.verify_tls, endpoint.ca_files)
        with self._lock:
            opener = self._openers.get(key)
            if opener is None:
                opener = self._build_opener(endpoint)
                self._openers[key] = opener
            return opener

    @staticmethod
    def _build_opener(endpoint: Endpoint) -> urllib.request.OpenerDirector:
        context = ssl.create_default_context()
        for ca in endpoint.ca_files:
            context.load_verify_locations(cafile=ca)
        if not endpoint.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=context),
                                                     _NoAuthRedirect()]
        if is_loopback(endpoint.host):
            handlers.append(urllib.request.ProxyHandler({}))
        return urllib.request.build_opener(*handlers)

    def _open_once(self, endpoint: Endpoint, method: str, url: str, headers: Mapping[str, str],
                   body: Body) -> _Response:
        data: object = body() if callable(body) else body
        request = urllib.request.Request(url, data=data, method=method)  # type: ignore[arg-type]
        request.add_header("User-Agent", self.user_agent)
        for name, value in headers.items():
            if name.lower() == "authorization":
                request.add_unredirected_header(name, value)
            else:
                request.add_header(name, value)
        try:
            return _Response(self._opener(endpoint).open(request, timeout=self.timeout), url)
        except urllib.error.HTTPError as exc:
            return _Response(exc, url)
        finally:
            if callable(body) and hasattr(data, "close"):
                data.close()  # the request body has been sent by now

    def request(self, endpoint: Endpoint, method: str, url: str, *, scopes: Iterable[str],
                headers: Mapping[str, str] | None = None, body: Body = None,
                retry: bool = True, what: str = "") -> _Response:
        """Send one request with auth (answering one 401) and retries; returns any status."""
        scope_set = frozenset(scopes)
        what = what or f"{method} {url}"
        attempts = self.retry.attempts if retry else 1
        authenticated_after_401 = False
        attempt = 0
        while True:
            all_headers = dict(headers or {})
            same_host = urllib.parse.urlsplit(url).netloc == endpoint.host
            auth = self._auth_header(endpoint, scope_set) if same_host else None
            if auth:
                all_headers["Authorization"] = auth
            try:
                response = self._open_once(endpoint, method, url, all_headers, body)
            except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout,
                    http.client.HTTPException, ssl.SSLError, OSError) as exc:
                tls = _tls_problem(exc)
                if tls:
                    raise RegistryError(f"{what}: TLS with {endpoint} failed: {tls}") from exc
                attempt += 1
                if attempt >= attempts:
                    raise RegistryUnavailableError(
                        f"{what}: cannot reach {endpoint} after {attempt} attempt(s): {_reason(exc)}") from exc
                time.sleep(self.retry.delay(attempt - 1))
                continue
            if response.status == 401 and not authenticated_after_401:
                challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
                response.close()
                self._authenticate(endpoint, challenges, scope_set, what, had_auth=bool(auth))
                authenticated_after_401 = True
                continue
            if response.status in _RETRY_STATUSES and attempt + 1 < attempts:
                attempt += 1
                retry_after = response.headers.get("Retry-After")
                response.close()
                time.sleep(self.retry.delay(attempt - 1, retry_after))
                continue
            if response.status == 401:
                response.close()
                raise AuthenticationError(self._auth_failure_text(endpoint, what))
            return response

    # -- auth --

    def _auth_header(self, endpoint: Endpoint, scopes: frozenset[str]) -> str | None:
        with self._lock:
            challenge = self._challenges.get(endpoint.host)
            if challenge is None:
                return None
            if challenge.scheme == "basic":
                creds = endpoint.credentials
                return _basic(creds) if creds is not None and creds.username else None
            token = self._tokens.get((endpoint.host, scopes))
            if token is not None and token[1] > time.monotonic():
                return f"Bearer {token[0]}"
            return None

    def _authenticate(self, endpoint: Endpoint, challenges: list[Challenge], scopes: frozenset[str],
                      what: str, had_auth: bool) -> None:
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None:
            token, lifetime = self._fetch_token(endpoint, bearer, scopes, what)
            with self._lock:
                self._challenges[endpoint.host] = bearer
                self._tokens[(endpoint.host, scopes)] = (token, time.monotonic() + max(lifetime - 10, 1))
            return
        if basic is not None:
            creds = endpoint.credentials
            if creds is None or not creds.username:
                raise AuthenticationError(self._auth_failure_text(endpoint, what))
            if had_auth and self._challenges.get(endpoint.host) == basic:
                raise AuthenticationError(self._auth_failure_text(endpoint, what))
            with self._lock:
                self._challenges[endpoint.host] = basic
            return
        raise AuthenticationError(f"{what}: {endpoint} answered 401 without a usable WWW-Authenticate challenge")

    def _auth_failure_text(self, endpoint: Endpoint, what: str) -> str:
        creds = endpoint.credentials
        if creds is None:
            where = self.config.docker_config or "~/.docker/config.json"
            return (f"{what}: registry {endpoint.host} requires authentication and there are no "
                    f"credentials for {endpoint.host} in {where} (run `docker login {endpoint.host}`)")
        who = creds.username or "identity token"
        return f"{what}: registry {endpoint.host} rejected the credentials of {who!r} or denied access"

    def _fetch_token(self, endpoint: Endpoint, challenge: Challenge, scopes: frozenset[str],
                     what: str) -> tuple[str, float]:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthenticationError(f"{what}: {endpoint} sent a Bearer challenge without a realm")
        all_scopes = set(scopes)
        if challenge.params.get("scope"):
            all_scopes.update(challenge.params["scope"].split(" "))
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        query += [("scope", s) for s in sorted(all_scopes)]
        creds = endpoint.credentials
        token_endpoint = self.endpoint(urllib.parse.urlsplit(realm).netloc)
        if creds is not None and creds.identity_token:
            form = query + [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token),
                            ("client_id", "llbook")]
            response = self._token_request(token_endpoint, "POST", realm, {
                "Content-Type": "application/x-www-form-urlencoded"}, urllib.parse.urlencode(form).encode())
        else:
            sep = "&" if urllib.parse.urlsplit(realm).query else "?"
            headers = {"Authorization": _basic(creds)} if creds is not None and creds.username else {}
            response = self._token_request(token_endpoint, "GET", realm + sep + urllib.parse.urlencode(query),
                                           headers, None)
        with response:
            if response.status in (401, 403):
                raise AuthenticationError(
                    f"{what}: token server {realm} refused "
                    f"{'credentials of ' + repr(creds.username) if creds and creds.username else 'anonymous access'}"
                    f" for scope {' '.join(sorted(all_scopes))}")
            if response.status != 200:
                raise AuthenticationError(f"{what}: token server {realm} answered {response.status}: "
                                          f"{response.error_text()}")
            try:
                reply = json.loads(response.read(1024 * 1024))
            except ValueError as exc:
                raise AuthenticationError(f"{what}: token server {realm} sent invalid JSON") from exc
        token = reply.get("token") or reply.get("access_token")
        if not token:
            raise AuthenticationError(f"{what}: token server {realm} sent no token")
        lifetime = reply.get("expires_in")
        return str(token), float(lifetime) if isinstance(lifetime, (int, float)) and lifetime > 0 else 60.0

    def _token_request(self, endpoint: Endpoint, method: str, url: str, headers: Mapping[str, str],
                       body: bytes | None) -> _Response:
        last: Exception | None = None
        for attempt in range(self.retry.attempts):
            try:
                response = self._open_once(endpoint, method, url, headers, body)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                last = exc
                time.sleep(self.retry.delay(attempt))
                continue
            if response.status in _RETRY_STATUSES and attempt + 1 < self.retry.attempts:
                response.close()
                time.sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
                continue
            return response
        raise RegistryUnavailableError(f"cannot reach token server {url}: {_reason(last)}")

    # -- pull: manifests --

    def _try_endpoints(self, endpoints: list[Endpoint], what: str, action: Callable[[Endpoint], T]) -> T:
        """Run `action` against each endpoint in order; first success wins."""
        failures: list[tuple[Endpoint, RegistryError]] = []
        for endpoint in endpoints:
            try:
                return action(endpoint)
            except RegistryError as exc:
                failures.append((endpoint, exc))
        if len(failures) == 1:
            raise failures[0][1]
        origin_error = failures[-1][1]
        tried = "; ".join(f"{e}: {exc}" for e, exc in failures[:-1])
        message = f"{origin_error} (mirrors tried first: {tried})"
        if isinstance(origin_error, BlobDigestMismatchError):
            raise BlobDigestMismatchError(message, blob=origin_error.blob, actual=origin_error.actual,
                                          size=origin_error.size) from origin_error
        raise type(origin_error)(message) from origin_error

    def get_manifest(self, ref: Reference | str, accept: str = ACCEPT_MANIFESTS,
                     endpoints: list[Endpoint] | None = None) -> ManifestResponse:
        """GET the manifest (or index) of `ref` by digest or tag, verified."""
        ref = parse_reference(ref) if isinstance(ref, str) else ref
        return self._try_endpoints(endpoints or self.endpoints(ref), f"manifest {ref}",
                                   lambda e: self._get_manifest_from(e, ref, ref.object, accept))

    def get_manifest_by_digest(self, ref: Reference, digest: str,
                               endpoints: list[Endpoint] | None = None) -> ManifestResponse:
        target = ref.with_digest(digest)
        return self._try_endpoints(endpoints or self.endpoints(ref), f"manifest {target}",
                                   lambda e: self._get_manifest_from(e, target, digest, ACCEPT_MANIFESTS))

    def _get_manifest_from(self, endpoint: Endpoint, ref: Reference, obj: str, accept: str) -> ManifestResponse:
        what = f"manifest {ref.familiar if not endpoint.mirror else ref.string}"
        url = endpoint.url(ref.path, "manifests", obj)
        with self.request(endpoint, "GET", url, scopes=[_pull_scope(ref.path)],
                          headers={"Accept": accept}, what=what) as response:
            self._check_status(response, endpoint, what, ok=(200,))
            data = response.read(MAX_MANIFEST_SIZE)
            content_type = response.headers.get("Content-Type", "")
            header_digest = response.headers.get("Docker-Content-Digest", "")
        digest = sha256_digest(data)
        if _SHA256_RE.match(obj) and digest != obj:
            raise ManifestError(f"{what} from {endpoint}: content has digest {digest}, expected {obj}")
        if _SHA256_RE.match(header_digest or "") and header_digest != digest:
            raise ManifestError(f"{what} from {endpoint}: Docker-Content-Digest {header_digest} "
                                f"does not match the content ({digest})")
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise ManifestError(f"{what} from {endpoint} is not JSON") from exc
        media_type = manifest_media_type(document if isinstance(document, dict) else {}, content_type)
        if media_type in (MEDIA_TYPE_DOCKER_SCHEMA1, MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED) or (
                isinstance(document, dict) and document.get("schemaVersion") == 1):
            raise ManifestError(f"{what} from {endpoint} is a Docker schema 1 manifest, which is not supported")
        if media_type not in MANIFEST_TYPES + INDEX_TYPES:
            raise ManifestError(f"{what} from {endpoint} has unsupported media type {media_type!r}")
        return ManifestResponse(ref=ref, data=data, media_type=media_type, digest=digest, endpoint=endpoint)

    def _check_status(self, response: _Response, endpoint: Endpoint, what: str, ok: tuple[int, ...]) -> None:
        if response.status in ok:
            return
        detail = response.error_text()
        suffix = f": {detail}" if detail else ""
        if response.status == 404:
            raise NotFoundError(f"{what} not found on {endpoint}{suffix}")
        if response.status == 403:
            raise AuthenticationError(f"{what}: access denied by {endpoint}{suffix}")
        if response.status in _RETRY_STATUSES:
            raise RegistryUnavailableError(f"{what}: {endpoint} answered {response.status}{suffix}")
        raise RegistryError(f"{what}: {endpoint} answered {response.status}{suffix}")

    # -- pull: blobs --

    def read_blob(self, ref: Reference, desc: Descriptor, max_size: int = MAX_CONFIG_SIZE,
                  endpoints: list[Endpoint] | None = None) -> bytes:
        """A small blob (e.g. an image config) in memory, verified against `desc`."""
        if desc.size > max_size:
            raise ManifestError(f"blob {desc.digest} of {ref} is {desc.size} bytes, more than {max_size}")
        parts: list[bytes] = []

        class _Mem:
            def write(self, data: bytes) -> int:
                parts.append(data)
                return len(data)

            def commit(self) -> str:
                return desc.digest

        def open_writer() -> AbstractContextManager[BlobWriterLike]:
            parts.clear()
            return nullcontext(_Mem())

        self.download_blob(ref, desc, open_writer, endpoints=endpoints)
        return b"".join(parts)

    def download_blob(self, ref: Reference, desc: Descriptor,
                      open_writer: Callable[[], AbstractContextManager[BlobWriterLike]],
                      endpoints: list[Endpoint] | None = None,
                      progress: ProgressFn | None = None) -> str:
        """Stream blob `desc` of `ref` into a fresh writer, verify it, then `commit()`.

        Each attempt (per endpoint, per retry) opens a new writer, so a half-written or
        tampered download is never committed. Returns the committed digest.
        """
        ref = parse_reference(ref) if isinstance(ref, str) else ref

        def from_endpoint(endpoint: Endpoint) -> str:
            return self._download_from(endpoint, ref, desc, open_writer, progress)

        return self._try_endpoints(endpoints or self.endpoints(ref), f"blob {desc.digest} of {ref}",
                                   from_endpoint)

    def _download_from(self, endpoint: Endpoint, ref: Reference, desc: Descriptor,
                       open_writer: Callable[[], AbstractContextManager[BlobWriterLike]],
                       progress: ProgressFn | None) -> str:
        what = f"blob {desc.digest} of {ref.string}"
        url = endpoint.url(ref.path, "blobs", desc.digest)
        for attempt in range(self.retry.attempts):
            try:
                return self._download_once(endpoint, url, desc, open_writer, progress, what)
            except TransferInterruptedError:
                if attempt + 1 >= self.retry.attempts:
                    raise
                time.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    def _download_once(self, endpoint: Endpoint, url: str, desc: Descriptor,
                       open_writer: Callable[[], AbstractContextManager[BlobWriterLike]],
                       progress: ProgressFn | None, what: str) -> str:
        with self.request(endpoint, "GET", url, scopes=[_pull_scope(_repo_of(url, endpoint))],
                          what=what) as response:
            self._check_status(response, endpoint, what, ok=(200,))
            counted = _Counted(progress)
            try:
                with open_writer() as writer:
                    self._stream_verified(response, desc, writer, counted, f"{what} from {endpoint}")
                    return writer.commit()
            except BaseException:
                counted.rewind()
                raise

    @staticmethod
    def _stream_verified(response: _Response, desc: Descriptor, writer: BlobWriterLike,
                         counted: "_Counted", what: str) -> str:
        """Copy the body into `writer` while hashing; raise unless it is exactly `desc`."""
        hasher = hashlib.sha256()
        size = 0
        try:
            for chunk in response.iter_chunks():
                size += len(chunk)
                if size > desc.size:
                    raise BlobDigestMismatchError(
                        f"{what}: more than the {desc.size} bytes the descriptor promises; "
                        f"refused, nothing stored", blob=desc.digest, actual="", size=size)
                hasher.update(chunk)
                writer.write(chunk)
                counted(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise TransferInterruptedError(f"{what}: download broke off after {size} bytes: "
                                           f"{_reason(exc)}") from exc
        declared = response.headers.get("Content-Length")
        if size < desc.size and (declared is None or declared == str(desc.size)):
            # http.client returns a short read, not an error, when the peer closes early
            raise TransferInterruptedError(f"{what}: download broke off after {size} of {desc.size} bytes")
        actual = "sha256:" + hasher.hexdigest()
        if actual != desc.digest or size != desc.size:
            raise BlobDigestMismatchError(
                f"{what}: got {size} bytes with digest {actual}, expected {desc.size} bytes with "
                f"digest {desc.digest}; refused, nothing stored", blob=desc.digest, actual=actual, size=size)
        return actual

    # -- push --

    def blob_exists(self, ref: Reference, digest: str) -> bool:
        """HEAD /v2/<name>/blobs/<digest>."""
        endpoint = self.endpoints(ref, push=True)[0]
        what = f"blob {digest} in {ref.name}"
        with self.request(endpoint, "HEAD", endpoint.url(ref.path, "blobs", digest),
                          scopes=[_push_scope(ref.path)], what=what) as response:
            if response.status == 404:
                return False
            self._check_status(response, endpoint, what, ok=(200,))
            return True

    def start_upload(self, ref: Reference) -> UploadSession:
        """POST /v2/<name>/blobs/uploads/ → a session at the returned Location."""
        endpoint = self.endpoints(ref, push=True)[0]
        what = f"upload to {ref.name}"
        with self.request(endpoint, "POST", endpoint.url(ref.path, "blobs", "uploads/"),
                          scopes=[_push_scope(ref.path)], headers={"Content-Length": "0"}, body=b"",
                          what=what) as response:
            self._check_status(response, endpoint, what, ok=(202,))
            return UploadSession(ref, endpoint, self._location(response, endpoint, what))

    def mount_blob(self, ref: Reference, digest: str, from_repository: str) -> UploadSession | None:
        """POST ?mount=<digest>&from=<repo>: None if mounted (201), else the upload session (202)."""
        endpoint = self.endpoints(ref, push=True)[0]
        what = f"mount of {digest} from {from_repository} into {ref.name}"
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository})
        url = endpoint.url(ref.path, "blobs", "uploads/") + "?" + query
        with self.request(endpoint, "POST", url, scopes=[_push_scope(ref.path), _pull_scope(from_repository)],
                          headers={"Content-Length": "0"}, body=b"", what=what) as response:
            if response.status == 201:
                return None
            self._check_status(response, endpoint, what, ok=(202,))
            return UploadSession(ref, endpoint, self._location(response, endpoint, what))

    def upload_monolithic(self, session: UploadSession, digest: str, size: int,
                          body: bytes | Callable[[], BinaryIO]) -> str:
        """PUT <location>?digest=<digest> with the whole blob; returns the stored digest."""
        what = f"upload of blob {digest} to {session.ref.name}"
        url = _with_query(session.location, {"digest": digest})
        with self.request(session.endpoint, "PUT", url, scopes=[_push_scope(session.ref.path)],
                          headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                          body=body, what=what) as response:
            self._check_status(response, session.endpoint, what, ok=(201, 204))
            return self._stored_digest(response, digest, session.endpoint, what)

    def upload_chunked(self, session: UploadSession, digest: str, source: BinaryIO,
                       chunk_size: int = 8 * CHUNK_SIZE, progress: ProgressFn | None = None) -> str:
        """PATCH the blob in chunks (Content-Range), then PUT ?digest= to close the upload."""
        what = f"chunked upload of blob {digest} to {session.ref.name}"
        scopes = [_push_scope(session.ref.path)]
        while chunk := source.read(chunk_size):
            end = session.offset + len(chunk) - 1
            with self.request(session.endpoint, "PATCH", session.location, scopes=scopes, retry=False,
                              headers={"Content-Type": "application/octet-stream",
                                       "Content-Range": f"{session.offset}-{end}",
                                       "Content-Length": str(len(chunk))},
                              body=chunk, what=what) as response:
                self._check_status(response, session.endpoint, what, ok=(202,))
                session.location = self._location(response, session.endpoint, what)
            session.offset = end + 1
            if progress is not None:
                progress(len(chunk))
        url = _with_query(session.location, {"digest": digest})
        with self.request(session.endpoint, "PUT", url, scopes=scopes, headers={"Content-Length": "0"},
                          body=b"", what=what) as response:
            self._check_status(response, session.endpoint, what, ok=(201, 204))
            return self._stored_digest(response, digest, session.endpoint, what)

    def push_blob(self, ref: Reference, desc: Descriptor, body: bytes | Callable[[], BinaryIO],
                  mount_from: str | None = None, chunked_above: int | None = None) -> str:
        """Make `desc` exist in `ref`'s repository: skip if present, mount if possible, else upload
        (in PATCH chunks when `body` opens a stream and the blob is larger than `chunked_above`)."""
        if self.blob_exists(ref, desc.digest):
            return "exists"
        session: UploadSession | None
        if mount_from and mount_from != ref.path:
            session = self.mount_blob(ref, desc.digest, mount_from)
            if session is None:
                return "mounted"
        else:
            session = self.start_upload(ref)
        if callable(body) and chunked_above is not None and desc.size > chunked_above:
            with body() as stream:
                self.upload_chunked(session, desc.digest, stream)
        else:
            self.upload_monolithic(session, desc.digest, desc.size, body)
        return "uploaded"

    def put_manifest(self, ref: Reference, data: bytes, media_type: str) -> str:
        """PUT /v2/<name>/manifests/<tag or digest>; returns the manifest digest."""
        endpoint = self.endpoints(ref, push=True)[0]
        digest = sha256_digest(data)
        what = f"manifest {digest} for {ref.string}"
        with self.request(endpoint, "PUT", endpoint.url(ref.path, "manifests", ref.object),
                          scopes=[_push_scope(ref.path)],
                          headers={"Content-Type": media_type, "Content-Length": str(len(data))},
                          body=data, what=what) as response:
            self._check_status(response, endpoint, what, ok=(201, 202, 204))
            return self._stored_digest(response, digest, endpoint, what)

    def head_manifest(self, ref: Reference) -> Descriptor | None:
        """HEAD /v2/<name>/manifests/<tag or digest>; None when absent."""
        endpoint = self.endpoints(ref, push=True)[0]
        what = f"manifest {ref.string}"
        with self.request(endpoint, "HEAD", endpoint.url(ref.path, "manifests", ref.object),
                          scopes=[_pull_scope(ref.path)], headers={"Accept": ACCEPT_MANIFESTS},
                          what=what) as response:
            if response.status == 404:
                return None
            self._check_status(response, endpoint, what, ok=(200,))
            digest = response.headers.get("Docker-Content-Digest", "")
            if not _SHA256_RE.match(digest):
                raise ManifestError(f"{what}: {endpoint} sent no Docker-Content-Digest on HEAD")
            return Descriptor(media_type=response.headers.get("Content-Type", "").split(";")[0],
                              digest=digest, size=int(response.headers.get("Content-Length", "0") or 0))

    @staticmethod
    def _location(response: _Response, endpoint: Endpoint, what: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{what}: {endpoint} sent no Location header")
        return urllib.parse.urljoin(f"{endpoint.scheme}://{endpoint.host}/", location)

    @staticmethod
    def _stored_digest(response: _Response, expected: str, endpoint: Endpoint, what: str) -> str:
        returned = response.headers.get("Docker-Content-Digest", "") or expected
        if returned != expected:
            raise RegistryError(f"{what}: {endpoint} stored digest {returned}, expected {expected}")
        return returned


# --- helpers -----------------------------------------------------------------------------


class _Counted:
    """Forwards byte counts to a progress callback and can take them back."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress = progress
        self.total = 0

    def __call__(self, n: int) -> None:
        self.total += n
        if self.progress is not None:
            self.progress(n)

    def rewind(self) -> None:
        if self.progress is not None and self.total:
            self.progress(-self.total)
        self.total = 0


def _basic(creds: Credentials | None) -> str:
    assert creds is not None
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _repo_of(url: str, endpoint: Endpoint) -> str:
    path = urllib.parse.urlsplit(url).path
    rest = path[len(urllib.parse.urlsplit(endpoint.base_url).path):]
    return rest.rsplit("/blobs/", 1)[0].rsplit("/manifests/", 1)[0]


def _with_query(url: str, params: Mapping[str, str]) -> str:
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + sep + urllib.parse.urlencode(params)


def _tls_problem(exc: BaseException) -> str:
    """A hint for TLS failures that retrying cannot fix, else ""."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    host_hint = 'in the llbook config\'s [registry."<host>"] table'
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"{reason.verify_message or reason}; add its CA with ca = [...] or set insecure = true {host_hint}"
    if isinstance(reason, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(reason):
        return f"the server does not speak TLS; set http = true {host_hint}"
    return ""


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"
