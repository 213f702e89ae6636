"""The platform calls behind `hud jobs`, `hud trace` and `hud cancel` (spec platform.md §9),
with the client transport policy of §0.2 (Bearer key, retries on 429/502/503/504)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from hud.protocol.errors import HudError

RETRY_STATUSES = {429, 502, 503, 504}


def tls_verify(url: str) -> Any:
    """``verify`` for an httpx client of ``url``: the default for https; for plain http, a
    TLS context without CA certificates, cheap to make (loading the CA bundle costs ~20 ms of
    start-up), never used, and refusing every server if it ever were."""
    if not url.lower().startswith("http://"):
        return True
    import ssl

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class PlatformAPIError(HudError):
    """A non-2xx reply (``status``; 0 when the platform could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PlatformAPI:
    def __init__(
        self, api_url: str, api_key: str, *, timeout: float = 60, retries: int = 4
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(
            base_url=self.api_url + "/v2",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            verify=tls_verify(self.api_url),
        )

    def close(self) -> None:
        self._http.close()

    def same_origin(self, url: str) -> bool:
        """True when ``url`` is on the platform's own scheme, host and port."""
        theirs, ours = httpx.URL(url), httpx.URL(self.api_url)
        return (theirs.scheme, theirs.host, theirs.port) == (ours.scheme, ours.host, ours.port)

    def send_without_key(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request to ``url`` (on this platform: `same_origin`) over this client's
        connection, without the API key (an upload URL carries its own token)."""
        request = self._http.build_request(method, url, **kwargs)
        request.headers.pop("Authorization", None)
        return self._http.send(request)

    def __enter__(self) -> PlatformAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(self.retries + 1):
            try:
                reply = self._http.request(method, path, **kwargs)
            except httpx.TimeoutException:
                raise PlatformAPIError(0, f"{self.api_url} did not answer in time") from None
            except httpx.HTTPError as exc:
                if attempt < self.retries:
                    time.sleep(min(2.0 * 2**attempt, 30))
                    continue
                raise PlatformAPIError(0, f"cannot reach {self.api_url}: {exc}") from None
            if reply.status_code in RETRY_STATUSES and attempt < self.retries:
                time.sleep(_retry_after(reply) or min(2.0 * 2**attempt, 30))
                continue
            if reply.status_code >= 400:
                raise PlatformAPIError(reply.status_code, _message(reply))
            if reply.status_code == 204 or not reply.content:
                return {}
            try:
                return reply.json()
            except ValueError:
                raise PlatformAPIError(
                    reply.status_code, "the platform sent a non-JSON reply"
                ) from None
        raise PlatformAPIError(0, "unreachable")  # pragma: no cover

    # -- §9 -------------------------------------------------------------------------------
    def list_jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        return _items(self.request("GET", "/jobs", params={"limit": limit}))

    def job_traces(self, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return _items(self.request("GET", f"/jobs/{job_id}/traces", params={"limit": limit}))

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{job_id}")

    def get_trace(self, trace_id: str) -> dict[str, Any]:
        return self.request("GET", f"/trace/{trace_id}")

    def trace_events(self, trace_id: str) -> dict[str, Any]:
        return self.request("GET", f"/trace/{trace_id}/events")

    def cancel_job(self, job_id: str) -> int:
        return int(
            self.request("POST", "/rollouts/cancel_job", json={"job_id": job_id}).get("cancelled")
            or 0
        )

    def cancel_trace(self, job_id: str | None, trace_id: str) -> bool:
        body = {"trace_id": trace_id, **({"job_id": job_id} if job_id else {})}
        return self.request("POST", "/rollouts/cancel", json=body).get("status") == "accepted"

    def cancel_user_jobs(self) -> dict[str, Any]:
        return self.request("POST", "/rollouts/cancel_user_jobs", json={})


def _items(body: Any) -> list[dict[str, Any]]:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise PlatformAPIError(200, "the platform sent a list reply hud cannot read")
    return items


def _retry_after(reply: httpx.Response) -> float | None:
    value = reply.headers.get("retry-after", "")
    return min(float(value), 30.0) if value.replace(".", "", 1).isdigit() else None


def _message(reply: httpx.Response) -> str:
    try:
        body = reply.json()
    except ValueError:
        return f"Request failed with status {reply.status_code}"
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    return f"Request failed with status {reply.status_code}"
