"""Bearer tokens: HS256 JWTs carrying sub, role, sites and (for residents) person_id.

    propdesk-token --sub alice --role agent --sites 001,002 [--person-id P] [--ttl-hours 24] [--secret S]

prints a token; the secret defaults to PROPDESK_JWT_SECRET (through config.yml).
"""
import argparse
import re
from datetime import datetime, timedelta, timezone

import jwt

from services.common.auth import ALL_SITES, Identity
from services.common.roles import ROLES
from services.common.errors import Unauthorized

ALGORITHM = "HS256"
DEFAULT_TTL = timedelta(hours=24)
SITE_CODE = re.compile(r"\d{3}")
# Clocks of the minting host and the gateway may drift a little.
LEEWAY_SECONDS = 30
# SPEC §7: what a token of these claims needs, with room to spare; a larger one is not ours.
MAX_TOKEN_BYTES = 4096


def claims_problem(claims):
    """Why `claims` cannot identify a caller, or None."""
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        return "sub must be a non-empty string"
    if claims.get("role") not in ROLES:
        return f"role must be one of {', '.join(ROLES)}"
    sites = claims.get("sites")
    if not isinstance(sites, list) or not all(
            isinstance(s, str) and (s == ALL_SITES or SITE_CODE.fullmatch(s)) for s in sites):
        return 'sites must be a list of 3-digit site codes, or ["*"]'
    person_id = claims.get("person_id")
    if claims["role"] == "resident" and not (isinstance(person_id, str) and person_id):
        return "a resident's token needs person_id"
    if person_id is not None and not isinstance(person_id, str):
        return "person_id must be a string"
    if "exp" not in claims:
        return "exp is required: a token that never expires cannot be revoked"
    return None


def mint(sub, role, sites, person_id=None, secret=None, ttl=DEFAULT_TTL, now=None):
    """A signed token that expires `ttl` after `now`."""
    now = now or datetime.now(timezone.utc)
    claims = {"sub": sub, "role": role, "sites": list(sites), "iat": now, "exp": now + ttl}
    if person_id is not None:
        claims["person_id"] = person_id
    problem = claims_problem(claims)
    if problem:
        raise ValueError(problem)
    return jwt.encode(claims, secret or default_secret(), algorithm=ALGORITHM)


def identity_from_header(header, secret):
    """The caller named by an `Authorization: Bearer <JWT>` header; Unauthorized otherwise."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token>")
    return decode(token.strip(), secret)


def decode(token, secret):
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthorized(f"invalid token: larger than {MAX_TOKEN_BYTES} bytes")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], leeway=LEEWAY_SECONDS,
                            options={"require": ["sub", "role", "sites"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    problem = claims_problem(claims)
    if problem:
        raise Unauthorized(f"invalid token: {problem}")
    return Identity(sub=claims["sub"], role=claims["role"], sites=tuple(claims["sites"]),
                    person_id=claims.get("person_id"))


def default_secret():
    from services.common.config import load_config
    return str(load_config()["JWT_SECRET"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="propdesk-token", description="Mint a propdesk bearer token.")
    parser.add_argument("--sub", required=True, help="who the caller is (staff login or resident id)")
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--sites", required=True, help='comma-separated site codes, or "*" for all')
    parser.add_argument("--person-id", help="the resident's person id (required for residents)")
    parser.add_argument("--ttl-hours", type=float, default=DEFAULT_TTL.total_seconds() / 3600,
                        help="validity in hours (default 24)")
    parser.add_argument("--secret", help="signing secret (default: PROPDESK_JWT_SECRET / config.yml)")
    args = parser.parse_args(argv)
    if args.ttl_hours <= 0:
        parser.error("--ttl-hours must be positive")
    sites = [s.strip() for s in args.sites.split(",") if s.strip()]
    try:
        token = mint(args.sub, args.role, sites, person_id=args.person_id, secret=args.secret,
                     ttl=timedelta(hours=args.ttl_hours))
    except ValueError as exc:
        parser.error(str(exc))
    print(token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
