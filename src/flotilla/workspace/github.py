"""The small part of GitHub's REST API Flotilla uses: opening a pull request.

The API base URL comes from the caller (GITHUB_API_URL, default
https://api.github.com), so GitHub Enterprise and the tests' fake server on
127.0.0.1 work alike. httpx errors and GitHub's error answers become
OperationFailed carrying GitHub's own message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from flotilla.counters import count
from flotilla.domain.errors import OperationFailed

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"

# scp-like ssh form: [user@]host:owner/repo(.git)
_SCP = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>[^/].*)$")


@dataclass(frozen=True)
class GitHubRepo:
    host: str
    owner: str
    name: str

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"


def _from_path(host: str, path: str) -> GitHubRepo | None:
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) != 2:
        return None
    owner, name = parts
    name = name.removesuffix(".git")
    if not owner or not name:
        return None
    return GitHubRepo(host.lower(), owner, name)


def parse_remote_url(url: str) -> GitHubRepo | None:
    """Host, owner and repository from a remote URL (https, ssh:// or scp-like); None if none.

    >>> parse_remote_url("git@github.com:acme/widgets.git").slug
    'acme/widgets'
    """
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http", "ssh", "git", "git+ssh", "ssh+git"):
            return None
        if not parts.hostname:
            return None
        return _from_path(parts.hostname, parts.path)
    match = _SCP.match(url)
    if match is None:
        return None
    return _from_path(match["host"], match["path"])


def _error_text(response: httpx.Response) -> str:
    """GitHub's message plus the details of a validation error, on one line."""
    try:
        data: Any = response.json()
    except ValueError:
        count("workspace.github.error_not_json")
        return response.text.strip()[:200] or response.reason_phrase
    if not isinstance(data, dict):
        return str(data)[:200]
    message = str(data.get("message") or response.reason_phrase)
    details = []
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            text = err.get("message") or " ".join(
                str(err[k]) for k in ("resource", "field", "code") if err.get(k)
            )
        else:
            text = str(err)
        if text:
            details.append(str(text))
    return f"{message}: {'; '.join(details)}" if details else message


@dataclass(frozen=True)
class CreatedPull:
    url: str
    number: int


class GitHubClient:
    """A synchronous client for one API base URL and token."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.api_url,
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "flotilla",
            },
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create_pull(
        self, repo: GitHubRepo, *, head: str, base: str, title: str, body: str, draft: bool
    ) -> CreatedPull:
        """POST /repos/{owner}/{repo}/pulls; OperationFailed with GitHub's message on error."""
        path = f"/repos/{repo.owner}/{repo.name}/pulls"
        payload = {"title": title, "body": body, "head": head, "base": base, "draft": draft}
        try:
            response = self._client.post(path, json=payload)
        except httpx.HTTPError as exc:
            raise OperationFailed(
                f"cannot reach the GitHub API at {self.api_url}: {exc} "
                "(check the network, or GITHUB_API_URL)"
            ) from exc
        if response.status_code != 201:
            hint = {
                401: " (check GITHUB_TOKEN)",
                403: " (the token may lack the 'repo' or 'pull_requests' permission)",
                404: f" (is {repo.slug} right, and can the token see it?)",
            }.get(response.status_code, "")
            raise OperationFailed(
                f"GitHub refused the pull request ({response.status_code}): "
                f"{_error_text(response)}{hint}"
            )
        try:
            data = response.json()
            return CreatedPull(url=str(data["html_url"]), number=int(data["number"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise OperationFailed(
                f"GitHub answered 201 without a pull request URL and number: {response.text[:200]}"
            ) from exc
