"""Client-side checks of a deployed gateway, the way the hand validation did them, and more.

Each check prints one line (`ok` or `FAIL`); the key itself is never printed. Redirects are never
followed: a 302 where a 401 belongs is exactly the failure to catch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def _describe(response: httpx.Response) -> str:
    where = f" -> {response.headers['location']}" if "location" in response.headers else ""
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    return f"{response.status_code} {kind}{where}"


def _is_json_error(response: httpx.Response, status: int) -> bool:
    if response.status_code != status:
        return False
    try:
        return "error" in response.json()
    except ValueError:
        return False


def run_checks(base_url: str, key: str, model: str | None = None, timeout_s: float = 30.0) -> Iterator[Check]:
    base = base_url.rstrip("/")
    with httpx.Client(follow_redirects=False, timeout=timeout_s) as client:

        def attempt(name: str, probe: Callable[[], Check]) -> Check:
            try:
                return probe()
            except httpx.HTTPError as error:
                return Check(name, False, f"request failed: {type(error).__name__}: {error}")

        def models_with_key() -> Check:
            response = client.get(f"{base}/models", headers={"Authorization": f"Bearer {key}"})
            if response.status_code != 200:
                return Check("models listed with the key", False, _describe(response))
            ids = [m.get("id") for m in response.json().get("data", [])]
            return Check("models listed with the key", bool(ids), ", ".join(map(str, ids)) or "no models")

        def rejected(name: str, headers: dict[str, str]) -> Callable[[], Check]:
            def probe() -> Check:
                response = client.get(f"{base}/models", headers=headers)
                ok = _is_json_error(response, 401)
                hint = "" if ok else " (want 401 with a JSON error, not a redirect)"
                return Check(name, ok, _describe(response) + hint)

            return probe

        def keyless_pages_hidden() -> Check:
            # LiteLLM serves its docs and schema without a key; the edge must not pass them through.
            root = base[: -len("/v1")] if base.endswith("/v1") else base
            response = client.get(f"{root}/openapi.json", headers={"Authorization": f"Bearer {key}"})
            ok = response.status_code in (403, 404)
            return Check("LiteLLM's key-less pages hidden", ok, f"{root}/openapi.json: {_describe(response)}")

        def backend_addresses_hidden() -> Check:
            # LiteLLM's model info shows each backend's address; only the model names may leave the edge.
            response = client.get(f"{base}/model/info", headers={"Authorization": f"Bearer {key}"})
            ok = response.status_code in (401, 403, 404)
            return Check("backend addresses hidden", ok, f"{base}/model/info: {_describe(response)}")

        def completion() -> Check:
            body = {"model": model, "messages": [{"role": "user", "content": "Say ok."}], "max_tokens": 8}
            response = client.post(f"{base}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
            if response.status_code != 200:
                return Check(f"completion from {model}", False, _describe(response))
            choices = response.json().get("choices") or []
            return Check(f"completion from {model}", bool(choices), f"{len(choices)} choice(s)")

        yield attempt("models listed with the key", models_with_key)
        yield attempt("no key gets 401", rejected("no key gets 401", {}))
        yield attempt(
            "wrong key gets 401",
            rejected("wrong key gets 401", {"Authorization": "Bearer sk-not-the-key-0000000000"}),
        )
        yield attempt("LiteLLM's key-less pages hidden", keyless_pages_hidden)
        yield attempt("backend addresses hidden", backend_addresses_hidden)
        if model:
            yield attempt(f"completion from {model}", completion)
