import pytest

from lpnode.core.auth import AuthTokenError, AuthTokens, load_or_create_key


def test_token_survives_a_restart_with_the_same_key_file(tmp_path):
    key_file = tmp_path / "authtoken.key"
    token = AuthTokens(load_or_create_key(key_file)).issue()
    assert key_file.stat().st_mode & 0o777 == 0o600
    AuthTokens(load_or_create_key(key_file)).verify(token)   # a "restarted" orchestrator


def test_forged_and_expired_tokens_are_refused(tmp_path):
    tokens = AuthTokens(b"k" * 32)
    token = tokens.issue(now=1000.0)
    forged = type(token)(token=token.token, session_id="other", expiration=token.expiration)
    with pytest.raises(AuthTokenError, match="invalid auth token"):
        tokens.verify(forged, now=1000.0)
    with pytest.raises(AuthTokenError, match="expired auth token"):
        tokens.verify(token, now=token.expiration + 1)
    with pytest.raises(AuthTokenError, match="invalid auth token"):
        AuthTokens(b"x" * 32).verify(token, now=1000.0)
