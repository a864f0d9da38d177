"""Registry auth: WWW-Authenticate challenges, the bearer token flow, basic credentials, per host and scope."""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from solver.source.registry.errors import AuthenticationError, RegistryUnavailableError
from solver.source.registry.transport import RETRY_STATUSES, Endpoint, Response, RetryPolicy, Transport, reason
from solver.source.registry_config import Credentials


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


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _basic(creds: Credentials | None) -> str:
    assert creds is not None
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Authorizer:
    """Answers 401s: remembers each host's challenge and the bearer tokens per host and scope set."""

    def __init__(self, transport: Transport, retry: RetryPolicy, endpoint_for: Callable[[str], Endpoint],
                 docker_config: Path | None) -> None:
        self.transport = transport
        self.retry = retry
        self.endpoint_for = endpoint_for  # the endpoint of a token server's host
        self.docker_config = docker_config
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, frozenset[str]], tuple[str, float]] = {}
        self._challenges: dict[str, Challenge] = {}

    def header(self, endpoint: Endpoint, scopes: frozenset[str]) -> str | None:
        """The Authorization header for a request, once the host has challenged us."""
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

    def authenticate(self, endpoint: Endpoint, challenges: list[Challenge], scopes: frozenset[str],
                     what: str, had_auth: bool) -> None:
        """Act on a 401's challenges: fetch a token, or take up basic credentials."""
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
                raise AuthenticationError(self.failure_text(endpoint, what))
            if had_auth and self._challenges.get(endpoint.host) == basic:
                raise AuthenticationError(self.failure_text(endpoint, what))
            with self._lock:
                self._challenges[endpoint.host] = basic
            return
        raise AuthenticationError(f"{what}: {endpoint} answered 401 without a usable WWW-Authenticate challenge")

    def failure_text(self, endpoint: Endpoint, what: str) -> str:
        creds = endpoint.credentials
        if creds is None:
            where = self.docker_config or "~/.docker/config.json"
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
        token_endpoint = self.endpoint_for(urllib.parse.urlsplit(realm).netloc)
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
                       body: bytes | None) -> Response:
        last: Exception | None = None
        for attempt in range(self.retry.attempts):
            try:
                response = self.transport.open_once(endpoint, method, url, headers, body)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                last = exc
                time.sleep(self.retry.delay(attempt))
                continue
            if response.status in RETRY_STATUSES and attempt + 1 < self.retry.attempts:
                response.close()
                time.sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
                continue
            return response
        raise RegistryUnavailableError(f"cannot reach token server {url}: {reason(last)}")
