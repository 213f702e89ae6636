"""RFC 8628 device authorization for `hud login`.

The client asks for a device code, shows the user code, and polls the token endpoint; the user
signs in on the verification page with an existing key and approves. Codes are stored hashed; the
new API key is minted only when the approved code is redeemed, so it is never stored in clear.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from hud.platform.db import Database
from hud.platform.db.schema import device_codes, teams, users
from hud.platform.services.common import aware, now
from hud.platform.services.errors import DeviceFlowError, NotFound
from hud.platform.services.identity import Identity, IdentityService

EXPIRES_IN = 600
INTERVAL = 5
SLOW_DOWN_STEP = 5
#: No vowels or look-alikes (RFC 8628 §6.1): codes cannot spell words or be misread.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalize_user_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch in USER_CODE_ALPHABET)


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


class DeviceService:
    def __init__(
        self, db: Database, identity: IdentityService, *, interval: int = INTERVAL
    ) -> None:
        self.db = db
        self.identity = identity
        self.interval = interval

    async def start(self, client_name: str = "", client_version: str = "") -> dict[str, Any]:
        device_code = secrets.token_urlsafe(32)
        user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
        created = now()
        async with self.db.write() as conn:
            await conn.execute(
                device_codes.insert().values(
                    device_hash=_hash(device_code),
                    user_code=user_code,
                    client_name=client_name[:200],
                    client_version=client_version[:64],
                    status="pending",
                    interval=self.interval,
                    created_at=created,
                    expires_at=created + timedelta(seconds=EXPIRES_IN),
                )
            )
        return {
            "device_code": device_code,
            "user_code": format_user_code(user_code),
            "expires_in": EXPIRES_IN,
            "interval": self.interval,
        }

    async def poll(self, device_code: str) -> dict[str, Any]:
        """The token endpoint: the new key once approved, else a `DeviceFlowError`."""
        async with self.db.write() as conn:
            outcome = await self._poll(conn, device_code)
        if isinstance(outcome, DeviceFlowError):  # raised after the commit of the poll time
            raise outcome
        return outcome

    async def _poll(self, conn: Any, device_code: str) -> dict[str, Any] | DeviceFlowError:
        stamp = now()
        row = (
            await conn.execute(
                select(device_codes).where(device_codes.c.device_hash == _hash(device_code))
            )
        ).first()
        if row is None:
            return DeviceFlowError("invalid_grant", "unknown device code")
        if row.status == "redeemed":
            return DeviceFlowError("invalid_grant", "this device code was already used")
        if aware(row.expires_at) <= stamp:
            return DeviceFlowError("expired_token", "the device code expired")
        if row.status == "denied":
            return DeviceFlowError("access_denied", "the request was denied")
        last = aware(row.last_poll_at)
        if row.status == "pending":
            too_fast = last is not None and (stamp - last).total_seconds() < row.interval
            values: dict[str, Any] = {"last_poll_at": stamp}
            if too_fast:
                values["interval"] = row.interval + SLOW_DOWN_STEP
            await conn.execute(
                update(device_codes)
                .where(device_codes.c.device_hash == row.device_hash)
                .values(**values)
            )
            if too_fast:
                return DeviceFlowError("slow_down", "polling too fast")
            return DeviceFlowError("authorization_pending", "waiting for approval")
        claimed = await conn.execute(
            update(device_codes)
            .where(
                device_codes.c.device_hash == row.device_hash,
                device_codes.c.status == "approved",
            )
            .values(status="redeemed", last_poll_at=stamp)
        )
        if not claimed.rowcount:
            return DeviceFlowError("invalid_grant", "this device code was already used")
        user = (await conn.execute(select(users).where(users.c.id == row.user_id))).one()
        team = (await conn.execute(select(teams).where(teams.c.id == row.team_id))).one()
        name = f"login: {row.client_name}".strip()
        key, info = await self.identity._create_key(conn, row.user_id, row.team_id, name)
        return {
            "api_key": key,
            "key_id": info["id"],
            "user": {"id": str(user.id), "email": user.email},
            "team": {"id": str(team.id), "name": team.name},
        }

    async def describe(self, user_code: str) -> dict[str, Any]:
        """What the verification page shows about a pending code."""
        code = normalize_user_code(user_code)
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(device_codes).where(device_codes.c.user_code == code))
            ).first()
        if row is None or aware(row.expires_at) <= now():
            raise NotFound("This code is unknown or expired. Run `hud login` again.")
        return {
            "user_code": format_user_code(row.user_code),
            "client_name": row.client_name,
            "client_version": row.client_version,
            "status": row.status,
        }

    async def decide(self, ident: Identity, user_code: str, *, approve: bool) -> str:
        """Approve (for the signed-in user's team) or deny a pending code."""
        code = normalize_user_code(user_code)
        async with self.db.write() as conn:
            row = (
                await conn.execute(select(device_codes).where(device_codes.c.user_code == code))
            ).first()
            if row is None or aware(row.expires_at) <= now():
                raise NotFound("This code is unknown or expired. Run `hud login` again.")
            if row.status != "pending":
                return row.status
            status = "approved" if approve else "denied"
            await conn.execute(
                update(device_codes)
                .where(device_codes.c.device_hash == row.device_hash)
                .values(status=status, user_id=ident.user_id, team_id=ident.team_id)
            )
        return status
