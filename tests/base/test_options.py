"""The options as given (nbtools/_base/options.py): each checked with a one-line error that names the fix, a
mistyped name answered with the option meant, and ``models=`` items read from the forms users write."""

from __future__ import annotations

import re
from typing import Any

import pytest

import nbtools
from nbtools._base.errors import ConfigError
from nbtools._base.options import BatchOptions


@pytest.mark.parametrize(("models", "message"), [
    (["nope:gpt-4o"], "models item 'nope:gpt-4o': unknown provider 'nope': choose one of openai"),
    (["sim:sim-small", "sim:sim-small"], "two items are labelled 'sim:sim-small': give one a label of its own"),
    ([{"model": "m", "temp": 1}], r"models\[0\] has unknown key 'temp': an item takes model, base_url"),
    ([{"concurrency": 2}], r"models\[0\] names no endpoint"),
    ([], "must be a non-empty list"),
    (["sim:"], "must be 'provider:model'"),
    ([{"model": "m", "concurrency": 0}], r"models\[0\].concurrency=0 must be at least 1"),
])
def test_bad_models_get_a_one_line_error(models: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        nbtools.batch(["x"], models=models)
    assert "\n" not in str(caught.value)


def test_a_key_in_an_item_never_shows_in_errors_or_reprs() -> None:
    secret = "sk-multi-SECRET-0123456789"
    with pytest.raises(ConfigError) as caught:
        nbtools.batch(["x"], models=[{"model": "m", "api_key": secret, "colour": "red"}])
    assert secret not in str(caught.value)

    options = BatchOptions(models=[{"model": "m", "api_key": secret, "label": "m"}])
    assert secret not in repr(options)


def test_model_and_models_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="model= and models= cannot be combined"):
        nbtools.batch(["x"], model="a", models=["sim:sim-small"])


@pytest.mark.parametrize(("given", "message"), [
    ({"concurency": 8}, "unknown option 'concurency' (did you mean 'concurrency'?)"),
    ({"max_token": 8}, "unknown option 'max_token' (did you mean 'max_tokens'?)"),
    ({"colour": "red"}, "unknown option 'colour': see help(nbtools.batch) for the options"),
])
def test_a_mistyped_option_is_named_with_the_option_meant(given: dict, message: str) -> None:
    for call in (nbtools.batch, nbtools.dry_run):
        with pytest.raises(nbtools.ConfigError) as info:
            call(["hi"], **given)
        assert str(info.value) == message
    with pytest.raises(nbtools.ConfigError, match=f"^{re.escape(message)}$"):
        nbtools.batch(["hi"], models=["sim:sim-small", "sim:sim-large"], **given)


def test_a_mistyped_flag_is_named_with_the_flag_meant(ip) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=r"^unknown option --concurency \(did you mean --concurrency\?\): %%llm_batch\?"):
        ip.run_cell_magic("llm_batch", "--concurency 8", "hi")
