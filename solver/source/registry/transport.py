"""The HTTP transport: endpoints, TLS openers per host, one request, the retry policy, status checks."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from solver.source.registry.errors import (AuthenticationError, ManifestError, NotFoundError, RegistryError,
                                           RegistryUnavailableError)
from solver.source.registry_config import Credentials, is_loopback

CHUNK_SIZE = 1024 * 1024
USER_AGENT = "llbook/0.1"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
Body = bytes | Callable[[], BinaryIO] | None


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


class Response:
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

    def __enter__(self) -> "Response":
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


class Transport:
    """Sends one HTTP request to an endpoint (no auth, no retries); one opener per TLS setting."""

    def __init__(self, timeout: float, user_agent: str) -> None:
        self.timeout = timeout
        self.user_agent = user_agent
        self._lock = threading.Lock()
        self._openers: dict[tuple[str, bool, tuple[str, ...]], urllib.request.OpenerDirector] = {}

    def _opener(self, endpoint: Endpoint) -> urllib.request.OpenerDirector:
        key = (endpoint.host, endpoint.verify_tls, endpoint.ca_files)
        with self._lock:
            opener = self._openers.get(key)
            if opener is None:
                opener = _build_opener(endpoint)
                self._openers[key] = opener
            return opener

    def open_once(self, endpoint: Endpoint, method: str, url: str, headers: Mapping[str, str],
                  body: Body) -> Response:
        data: object = body() if callable(body) else body
        request = urllib.request.Request(url, data=data, method=method)  # type: ignore[arg-type]
        request.add_header("User-Agent", self.user_agent)
        for name, value in headers.items():
            if name.lower() == "authorization":
                request.add_unredirected_header(name, value)
            else:
                request.add_header(name, value)
        try:
            return Response(self._opener(endpoint).open(request, timeout=self.timeout), url)
        except urllib.error.HTTPError as exc:
            return Response(exc, url)
        finally:
            if callable(body) and hasattr(data, "close"):
                data.close()  # the request body has been sent by now


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


def check_status(response: Response, endpoint: Endpoint, what: str, ok: tuple[int, ...]) -> None:
    """Raise the registry error a status outside `ok` stands for."""
    if response.status in ok:
        return
    detail = response.error_text()
    suffix = f": {detail}" if detail else ""
    if response.status == 404:
        raise NotFoundError(f"{what} not found on {endpoint}{suffix}")
    if response.status == 403:
        raise AuthenticationError(f"{what}: access denied by {endpoint}{suffix}")
    if response.status in RETRY_STATUSES:
        raise RegistryUnavailableError(f"{what}: {endpoint} answered {response.status}{suffix}")
    raise RegistryError(f"{what}: {endpoint} answered {response.status}{suffix}")


def tls_problem(exc: BaseException) -> str:
    """A hint for TLS failures that retrying cannot fix, else ""."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    host_hint = 'in the llbook config\'s [registry."<host>"] table'
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"{reason.verify_message or reason}; add its CA with ca = [...] or set insecure = true {host_hint}"
    if isinstance(reason, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(reason):
        return f"the server does not speak TLS; set http = true {host_hint}"
    return ""


def reason(exc: BaseException | None) -> str:
    """A short text for a failed connection."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"
