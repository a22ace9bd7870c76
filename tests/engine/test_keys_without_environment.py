"""Keys where there is no environment to set before the kernel starts: Colab's Secrets, and a browser kernel's
password prompt (the error says how, never with a key in it)."""

from __future__ import annotations

import sys
import types

import pytest

import nbtools
from nbtools._engine.endpoints import resolve_endpoint

COLAB_KEY = "sk-colab-secret-0123456789abcdef"


class _NotGranted(Exception):
    """As Colab's userdata raises for a secret the notebook was not granted."""


@pytest.fixture
def colab(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colab's google.colab.userdata, holding OPENAI_API_KEY and refusing every other name."""
    def get(name: str) -> str:
        if name != "OPENAI_API_KEY":
            raise _NotGranted(name)
        return COLAB_KEY

    userdata = types.ModuleType("google.colab.userdata")
    userdata.get = get  # type: ignore[attr-defined]
    colab_module = types.ModuleType("google.colab")
    colab_module.userdata = userdata  # type: ignore[attr-defined]
    for name, module in [("google", types.ModuleType("google")), ("google.colab", colab_module),
                         ("google.colab.userdata", userdata)]:
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


def test_on_colab_a_key_missing_from_the_environment_is_read_from_its_secrets(colab, monkeypatch) -> None:
    assert resolve_endpoint("openai").api_key.reveal() == COLAB_KEY
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    assert resolve_endpoint("openai").api_key.reveal() == "sk-from-the-environment"  # the environment first


def test_on_colab_a_secret_not_granted_is_as_if_unset(colab) -> None:
    with pytest.raises(nbtools.ConfigError, match="ANTHROPIC_API_KEY, which is not set"):
        resolve_endpoint("anthropic")


def test_in_a_browser_the_missing_key_error_says_how_to_type_it_in_unseen(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(sys, "platform", "emscripten")
    with pytest.raises(nbtools.ConfigError) as error:
        resolve_endpoint("openai")
    assert "os.environ['OPENAI_API_KEY'] = getpass.getpass('OPENAI_API_KEY: ')" in str(error.value)
    assert "before starting Jupyter" not in str(error.value)
