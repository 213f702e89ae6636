"""Provider SDK clients share one TLS context per process (`hud.transport.sdk_http`), which
still verifies the provider's certificate: an agent reaches a fake provider over https when
``SSL_CERT_FILE`` trusts its certificate, and fails to when nothing does."""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
import pytest

from hud.agents.openai_chat import OpenAIChatAgent, OpenAIChatConfig
from hud.transport.sdk_http import http_client, tls_context
from tests.agents.conftest import run_task
from tests.agents.fakes import FakeProvider, Reply
from tests.certs import OPENSSL, self_signed

pytestmark = pytest.mark.skipif(
    OPENSSL is None, reason="openssl is not installed (Debian package openssl)"
)


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


def test_one_context_per_library_and_certificate_setting(
    cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    default = tls_context(openai)
    assert tls_context(openai) is default
    assert default.check_hostname and default.verify_mode.name == "CERT_REQUIRED"
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    trusting = tls_context(openai)
    assert trusting is not default and tls_context(openai) is trusting
    # the certificate is the only CA of that context
    assert [c["subject"] for c in trusting.get_ca_certs()] == [((("commonName", "localhost"),),)]
    for sdk in (openai, anthropic):
        assert isinstance(http_client(sdk), sdk.DefaultAsyncHttpxClient)


async def test_agent_reaches_an_https_provider_it_trusts(
    cert: tuple[Path, Path], shell_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeProvider([Reply(text="4")], tls=cert) as fake:
        assert fake.url.startswith("https://")
        config = OpenAIChatConfig(base_url=f"{fake.url}/v1", model="local-model", max_retries=0)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
        run = await run_task(shell_env, OpenAIChatAgent(config), "ask")
        assert run.status == "completed" and run.reward == 1.0
        assert len(fake.bodies("/chat/completions")) == 1

        monkeypatch.delenv("SSL_CERT_FILE")  # the default store does not know the cert
        refused = await run_task(shell_env, OpenAIChatAgent(config), "ask")
        assert refused.status == "error", refused.status
        assert len(fake.bodies("/chat/completions")) == 1  # no request got through
