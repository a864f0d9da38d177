"""What every registry call stands on: a reference's endpoints (mirrors, origin), the authenticated and retried request, trying endpoints in order."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from solver.source.reference import Reference, api_host
from solver.source.registry.auth import Authorizer, parse_challenges
from solver.source.registry.errors import (AuthenticationError, BlobDigestMismatchError, RegistryError,
                                           RegistryUnavailableError)
from solver.source.registry.transport import (RETRY_STATUSES, USER_AGENT, Body, Endpoint, Response, RetryPolicy,
                                              Transport, reason, tls_problem)
from solver.source.registry_config import Credentials, RegistryConfig, load_registry_config

T = TypeVar("T")


class RegistryBase:
    """Endpoints and requests of the OCI distribution API, shared by the pull and push sides.

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
        self._credentials: dict[str, Credentials | None] = {}
        self.transport = Transport(timeout, user_agent)
        self.auth = Authorizer(self.transport, self.retry, self.endpoint, self.config.docker_config)

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

    # -- requests --

    def request(self, endpoint: Endpoint, method: str, url: str, *, scopes: Iterable[str],
                headers: Mapping[str, str] | None = None, body: Body = None,
                retry: bool = True, what: str = "") -> Response:
        """Send one request with auth (answering one 401) and retries; returns any status."""
        scope_set = frozenset(scopes)
        what = what or f"{method} {url}"
        attempts = self.retry.attempts if retry else 1
        authenticated_after_401 = False
        attempt = 0
        while True:
            all_headers = dict(headers or {})
            same_host = urllib.parse.urlsplit(url).netloc == endpoint.host
            auth = self.auth.header(endpoint, scope_set) if same_host else None
            if auth:
                all_headers["Authorization"] = auth
            try:
                response = self.transport.open_once(endpoint, method, url, all_headers, body)
            except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout,
                    http.client.HTTPException, ssl.SSLError, OSError) as exc:
                tls = tls_problem(exc)
                if tls:
                    raise RegistryError(f"{what}: TLS with {endpoint} failed: {tls}") from exc
                attempt += 1
                if attempt >= attempts:
                    raise RegistryUnavailableError(
                        f"{what}: cannot reach {endpoint} after {attempt} attempt(s): {reason(exc)}") from exc
                time.sleep(self.retry.delay(attempt - 1))
                continue
            if response.status == 401 and not authenticated_after_401:
                challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
                response.close()
                self.auth.authenticate(endpoint, challenges, scope_set, what, had_auth=bool(auth))
                authenticated_after_401 = True
                continue
            if response.status in RETRY_STATUSES and attempt + 1 < attempts:
                attempt += 1
                retry_after = response.headers.get("Retry-After")
                response.close()
                time.sleep(self.retry.delay(attempt - 1, retry_after))
                continue
            if response.status == 401:
                response.close()
                raise AuthenticationError(self.auth.failure_text(endpoint, what))
            return response

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
