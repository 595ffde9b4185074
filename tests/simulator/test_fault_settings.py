"""FaultSettings: defaults off, validation, and the CLI form."""

from __future__ import annotations

import pytest

from exporter.simulator import FaultSettings, PortalSettings

FULL = (
    "500=0.1,drop=0.05,truncate=0.05,html=0.02,slow=0.01,slow_seconds=1,"
    "link_ttl=1,token_ttl=60,seed=7"
)


def test_default_injects_nothing() -> None:
    faults = PortalSettings().faults
    assert faults == FaultSettings()
    assert not faults.any_random
    assert (faults.link_ttl, faults.token_ttl) == (None, None)


def test_parse_reads_every_name() -> None:
    assert FaultSettings.parse(FULL) == FaultSettings(
        seed=7,
        error_500=0.1,
        drop=0.05,
        truncate=0.05,
        html=0.02,
        slow=0.01,
        slow_seconds=1.0,
        link_ttl=1.0,
        token_ttl=60.0,
    )


def test_parse_tolerates_spaces_case_and_empty_items() -> None:
    assert FaultSettings.parse(" DROP = 0.5 ,, seed=3,") == FaultSettings(drop=0.5, seed=3)


def test_parse_of_an_empty_text_is_no_faults() -> None:
    assert FaultSettings.parse("") == FaultSettings()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("boom=0.1", "unknown name 'boom'"),
        ("500", "'500' has no value"),
        ("drop=lots", "'drop' needs a number"),
        ("seed=1.5", "'seed' needs an integer"),
        ("slow=inf", "finite"),
        ("html=1.5", "0..1"),
        ("link_ttl=0", "link_ttl must be positive"),
        ("slow_seconds=-1", "slow_seconds"),
        ("drop=0.1,drop=0.2", "given twice"),
    ],
)
def test_parse_refuses_bad_input_and_lists_the_accepted_names(text: str, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        FaultSettings.parse(text)
    message = str(caught.value)
    assert complaint in message
    for name in ("seed", "500", "drop", "truncate", "html", "slow", "slow_seconds", "link_ttl"):
        assert name in message
    assert "token_ttl" in message


@pytest.mark.parametrize("field", ["error_500", "drop", "truncate", "html", "slow"])
def test_probabilities_must_be_between_zero_and_one(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FaultSettings(**{field: -0.1})  # type: ignore[arg-type]


def test_oauth_secrets_stay_out_of_repr() -> None:
    settings = PortalSettings()
    text = repr(settings)
    assert settings.client_id in text
    for secret in (settings.client_secret, settings.refresh_token, settings.access_token):
        assert secret not in text
