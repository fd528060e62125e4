"""Bearer tokens: what propdesk-token mints, the gateway accepts, and everything it refuses."""
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from services.common.auth import Identity
from services.common.errors import Unauthorized
from services.gateway import tokens
from services.gateway.tests.support import SECRET, token


def test_a_minted_token_names_the_caller():
    identity = tokens.identity_from_header(f"Bearer {token('li', 'agent', ['001', '002'])}", SECRET)
    assert identity == Identity(sub="li", role="agent", sites=("001", "002"))


def test_a_residents_token_carries_their_person_id():
    identity = tokens.decode(token("p-9", "resident", ["001"], person_id="p-9"), SECRET)
    assert identity.is_resident and identity.person_id == "p-9"


def test_head_office_sees_every_site():
    assert tokens.decode(token("hq-1", "hq", ["*"]), SECRET).can_see_site("042")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_a_request_without_a_bearer_token_is_unauthorized(header):
    with pytest.raises(Unauthorized, match="Bearer"):
        tokens.identity_from_header(header, SECRET)


def test_a_token_signed_with_another_secret_is_refused():
    with pytest.raises(Unauthorized, match="invalid token"):
        tokens.decode(token(secret="someone-elses-secret-0123456789abcdef"), SECRET)


def test_an_expired_token_is_refused():
    old = datetime.now(timezone.utc) - timedelta(hours=2)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.decode(token(now=old, ttl=timedelta(hours=1)), SECRET)


def test_an_unsigned_token_is_refused():
    unsigned = jwt.encode({"sub": "x", "role": "ops_admin", "sites": ["*"]}, None, algorithm="none")
    with pytest.raises(Unauthorized):
        tokens.decode(unsigned, SECRET)


@pytest.mark.parametrize("claims, problem", [
    ({"sub": "x", "role": "janitor", "sites": ["001"]}, "role"),
    ({"sub": "x", "role": "agent", "sites": "001"}, "sites"),
    ({"sub": "x", "role": "agent", "sites": ["1"]}, "sites"),
    ({"sub": "", "role": "agent", "sites": ["001"]}, "sub"),
    ({"sub": "x", "role": "resident", "sites": ["001"]}, "person_id"),
    ({"role": "agent", "sites": ["001"]}, "sub"),
])
def test_a_signed_token_with_bad_claims_is_refused(claims, problem):
    with pytest.raises(Unauthorized, match=problem):
        tokens.decode(jwt.encode(claims, SECRET, algorithm="HS256"), SECRET)


def test_mint_refuses_what_decode_would_refuse():
    with pytest.raises(ValueError, match="person_id"):
        tokens.mint("r", "resident", ["001"], secret=SECRET)


def test_the_command_line_prints_a_token_the_gateway_accepts(capsys):
    tokens.main(["--sub", "ops", "--role", "ops_admin", "--sites", "*", "--secret", SECRET,
                 "--ttl-hours", "1"])
    identity = tokens.decode(capsys.readouterr().out.strip(), SECRET)
    assert identity == Identity(sub="ops", role="ops_admin", sites=("*",))


def test_the_command_line_splits_sites_and_takes_a_person_id(capsys):
    tokens.main(["--sub", "p1", "--role", "resident", "--sites", "001, 002", "--person-id", "p1",
                 "--secret", SECRET])
    identity = tokens.decode(capsys.readouterr().out.strip(), SECRET)
    assert identity.sites == ("001", "002") and identity.person_id == "p1"


def test_the_command_line_refuses_a_resident_without_person_id(capsys):
    with pytest.raises(SystemExit):
        tokens.main(["--sub", "p1", "--role", "resident", "--sites", "001", "--secret", SECRET])
    assert "person_id" in capsys.readouterr().err


def test_the_secret_defaults_to_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("PROPDESK_JWT_SECRET", SECRET)
    tokens.main(["--sub", "a", "--role", "agent", "--sites", "001"])
    assert tokens.decode(capsys.readouterr().out.strip(), SECRET).sub == "a"


def test_a_token_without_exp_is_refused():
    claims = {"sub": "x", "role": "ops_admin", "sites": ["*"]}
    with pytest.raises(Unauthorized, match="exp"):
        tokens.decode(jwt.encode(claims, SECRET, algorithm="HS256"), SECRET)


def test_a_token_above_4_kb_is_refused_before_it_is_decoded():
    padded = jwt.encode({"sub": "x", "role": "agent", "sites": ["001"], "pad": "x" * 4096,
                         "exp": datetime.now(timezone.utc) + timedelta(hours=1)}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="4096 bytes"):
        tokens.identity_from_header(f"Bearer {padded}", SECRET)
    assert len(token(sites=[f"{n:03d}" for n in range(200)])) <= tokens.MAX_TOKEN_BYTES


def test_every_minted_token_expires(capsys):
    tokens.main(["--sub", "ops", "--role", "ops_admin", "--sites", "*", "--secret", SECRET])
    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 24 * 3600
