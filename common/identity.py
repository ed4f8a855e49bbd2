"""Who calls the api: a Firebase ID token, verified with firebase-admin.

firebase-admin checks the signature against Google's keys and the token's audience, issuer and
expiry. With `FIREBASE_AUTH_EMULATOR_HOST` set it accepts the emulator's unsigned tokens and
checks neither signature nor expiry, so the expiry is checked here as well: an expired token is
refused locally exactly as in the cloud.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

EXPIRED = "the ID token has expired: sign in again"


class Unauthenticated(Exception):
    """No usable ID token: the api answers 401 with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Caller:
    uid: str


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "unauthenticated", "sign in first: send the Firebase ID token as 'Bearer TOKEN'"
        )
    return token.strip()


class FirebaseTokens:
    """Verifies ID tokens of one Firebase project (revoked tokens and disabled users refused)."""

    def __init__(self, project: str) -> None:
        import firebase_admin
        from firebase_admin import auth

        name = f"closet-api-{project}"
        try:
            app = firebase_admin.get_app(name)
        except ValueError:
            app = firebase_admin.initialize_app(options={"projectId": project}, name=name)
        self._auth = auth
        self._app = app

    def verify(self, token: str) -> Caller:
        auth = self._auth
        _refuse_expired(token)
        try:
            claims: dict[str, Any] = auth.verify_id_token(token, app=self._app, check_revoked=True)
        except auth.ExpiredIdTokenError:
            raise Unauthenticated("token_expired", EXPIRED) from None
        except auth.RevokedIdTokenError:
            raise Unauthenticated(
                "token_revoked", "the ID token was revoked: sign in again"
            ) from None
        except auth.UserDisabledError:
            raise Unauthenticated("user_disabled", "this account is disabled") from None
        except auth.UserNotFoundError:
            raise Unauthenticated("unauthenticated", "no such user: sign in again") from None
        except (auth.InvalidIdTokenError, ValueError) as exc:
            raise Unauthenticated("invalid_token", f"the ID token is not valid: {exc}") from None
        return Caller(uid=str(claims["uid"]))


def _refuse_expired(token: str) -> None:
    """Refuse a token past its `exp` before anything else (firebase-admin's emulator mode
    skips this check). Reading the claims unverified only ever refuses: acceptance is
    firebase-admin's."""
    from google.auth import jwt

    try:
        claims = jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise Unauthenticated("invalid_token", f"the ID token is not valid: {exc}") from None
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or expires <= time.time():
        raise Unauthenticated("token_expired", EXPIRED)
