"""Settings: read from TOKENRELAY_* variables, validated at start with a clear message."""

from __future__ import annotations

import pytest

from service.cli.config import load_settings


def test_a_misspelt_setting_stops_the_process_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKENRELAY_API_KEY", "sk-1")  # the setting is TOKENRELAY_API_KEYS
    with pytest.raises(SystemExit) as stopped:
        load_settings({})
    assert "unknown setting(s) in the environment: TOKENRELAY_API_KEY" in str(stopped.value)


def test_a_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENRELAY_PORT", "eighty")
    with pytest.raises(SystemExit) as stopped:
        load_settings({})
    assert "TOKENRELAY_PORT:" in str(stopped.value)


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENRELAY_API_KEYS", "sk-a, sk-b")
    monkeypatch.setenv("TOKENRELAY_MODELS", "m1,m2")
    settings = load_settings({})
    assert [key.get_secret_value() for key in settings.api_keys] == ["sk-a", "sk-b"]
    assert settings.models == ["m1", "m2"]
    assert settings.auth_enabled


def test_job_ids_never_start_like_a_command_line_option() -> None:
    from service.contract.jobs import is_job_id, new_job_id

    ids = [new_job_id() for _ in range(2000)]
    assert all(job_id[0].isalnum() and is_job_id(job_id) for job_id in ids)
    assert len(set(ids)) == len(ids)
