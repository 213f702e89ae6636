"""Users, teams, API keys and projects (spec platform.md §1–§2).

Keys are random tokens shown once; the database keeps their SHA-256 only. Every object the
platform stores belongs to a team; another team's object is reported as missing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hud.platform.db import Database
from hud.platform.db.schema import api_keys, memberships, projects, teams, users
from hud.platform.services.common import insert, iso, now, parse_uuid
from hud.platform.services.errors import Conflict, Invalid, NotFound, Unauthorized

KEY_PREFIX = "hud_"
ADMIN_EMAIL = "admin@localhost"
DEFAULT_TEAM = "default"


@dataclass(frozen=True)
class Identity:
    """Who is calling: the key's user and team."""

    user_id: uuid.UUID
    team_id: uuid.UUID
    key_id: uuid.UUID | None = None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def normalize_project_name(name: str) -> str:
    """The client's normalization (§2): lowercase, spaces/underscores -> ``-``, drop others."""
    text = re.sub(r"[\s_]+", "-", name.strip().lower())
    text = re.sub(r"[^a-z0-9-]", "", text)
    return re.sub(r"-{2,}", "-", text).strip("-")


#: How long a verified key is trusted without a database lookup (so a revocation, possibly by
#: another process such as `hud platform key revoke`, takes effect within this many seconds).
AUTH_CACHE_SECONDS = 1.0
AUTH_CACHE_SIZE = 10_000
#: A user's active keys in one team, at most (keys made on the web page).
MAX_ACTIVE_KEYS = 100
MAX_KEY_NAME = 200


class IdentityService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._verified: dict[str, tuple[float, Identity]] = {}

    # -- auth -------------------------------------------------------------------------------
    async def authenticate(self, key: str | None) -> Identity:
        if not key:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <HUD_API_KEY>'")
        hashed = hash_key(key)
        clock = time.monotonic()
        cached = self._verified.get(hashed)
        if cached is not None and clock - cached[0] < AUTH_CACHE_SECONDS:
            return cached[1]
        ident = await self._lookup(hashed)
        if len(self._verified) >= AUTH_CACHE_SIZE:
            self._verified.clear()
        self._verified[hashed] = (clock, ident)
        return ident

    async def _lookup(self, hashed: str) -> Identity:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        api_keys.c.id, api_keys.c.user_id, api_keys.c.team_id, api_keys.c.revoked_at
                    ).where(api_keys.c.key_hash == hashed)
                )
            ).first()
        if row is None:
            raise Unauthorized("Invalid API key")
        if row.revoked_at is not None:
            raise Unauthorized("This API key was revoked")
        return Identity(user_id=row.user_id, team_id=row.team_id, key_id=row.id)

    async def me(self, ident: Identity) -> dict[str, Any]:
        async with self.db.read() as conn:
            user = (await conn.execute(select(users).where(users.c.id == ident.user_id))).first()
            team = (await conn.execute(select(teams).where(teams.c.id == ident.team_id))).first()
        return {
            "user_id": str(ident.user_id),
            "team_id": str(ident.team_id),
            "email": user.email if user else None,
            "team_name": team.name if team else None,
        }

    # -- bootstrap and admin ----------------------------------------------------------------
    async def bootstrap(self) -> str | None:
        """On an empty platform: create the admin user, the default team and an admin key;
        returns that key (the only time it is shown), or None when users already exist."""
        async with self.db.write() as conn:
            if (await conn.execute(select(func.count()).select_from(users))).scalar_one():
                return None
            team_id = await self._create_team(conn, DEFAULT_TEAM)
            user_id = await self._create_user(conn, ADMIN_EMAIL, is_admin=True)
            await self._add_member(conn, user_id, team_id, "admin")
            await self._create_default_project(conn, team_id)
            key, _ = await self._create_key(conn, user_id, team_id, "admin")
        return key

    async def create_team(self, name: str, *, member: str | None = None) -> dict[str, Any]:
        name = name.strip()
        if not name:
            raise Invalid("team name is empty")
        async with self.db.write() as conn:
            if await self._find_team(conn, name):
                raise Conflict(f"team {name!r} already exists")
            team_id = await self._create_team(conn, name)
            await self._create_default_project(conn, team_id)
            user_id = await self._user_id(conn, member or ADMIN_EMAIL)
            await self._add_member(conn, user_id, team_id, "admin")
        return {"id": str(team_id), "name": name}

    async def create_user(self, email: str, *, team: str | None = None) -> dict[str, Any]:
        email = email.strip()
        if not email:
            raise Invalid("user email is empty")
        async with self.db.write() as conn:
            exists = await conn.execute(select(users.c.id).where(users.c.email == email))
            if exists.first():
                raise Conflict(f"user {email!r} already exists")
            team_id = await self._team_id(conn, team or DEFAULT_TEAM)
            user_id = await self._create_user(conn, email)
            await self._add_member(conn, user_id, team_id, "member")
        return {"id": str(user_id), "email": email, "team": team or DEFAULT_TEAM}

    async def create_key(
        self, *, team: str | None = None, user: str | None = None, name: str = ""
    ) -> tuple[str, dict[str, Any]]:
        async with self.db.write() as conn:
            team_id = await self._team_id(conn, team or DEFAULT_TEAM)
            user_id = await self._user_id(conn, user or ADMIN_EMAIL)
            member = await conn.execute(
                select(memberships.c.role).where(
                    memberships.c.user_id == user_id, memberships.c.team_id == team_id
                )
            )
            if member.first() is None:
                raise Invalid(f"user {user or ADMIN_EMAIL!r} is not in team {team!r}")
            key, info = await self._create_key(conn, user_id, team_id, name)
        return key, info

    async def list_keys(self, *, team: str | None = None) -> list[dict[str, Any]]:
        query = (
            select(api_keys, teams.c.name.label("team"), users.c.email)
            .join(teams, teams.c.id == api_keys.c.team_id)
            .join(users, users.c.id == api_keys.c.user_id)
            .order_by(api_keys.c.created_at)
        )
        if team:
            query = query.where(teams.c.name == team)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {
                "id": str(r.id),
                "prefix": r.prefix,
                "name": r.name,
                "team": r.team,
                "user": r.email,
                "created_at": iso(r.created_at),
                "revoked": r.revoked_at is not None,
            }
            for r in rows
        ]

    async def revoke_key(self, ref: str) -> dict[str, Any]:
        """Revoke by key id, by a unique id/prefix start, or by the key itself."""
        ref = ref.strip()
        async with self.db.write() as conn:
            rows = (await conn.execute(select(api_keys.c.id, api_keys.c.prefix))).all()
            matches = [
                r
                for r in rows
                if str(r.id) == ref
                or (len(ref) >= 4 and str(r.id).startswith(ref))
                or (len(ref) >= 8 and r.prefix == ref[: len(r.prefix)] and ref.startswith(r.prefix))
            ]
            if ref.startswith(KEY_PREFIX) and len(ref) > 20:
                hashed = await conn.execute(
                    select(api_keys.c.id, api_keys.c.prefix).where(
                        api_keys.c.key_hash == hash_key(ref)
                    )
                )
                matches = list(hashed.all())
            if not matches:
                raise NotFound(f"no API key matches {ref!r}")
            if len(matches) > 1:
                raise Invalid(f"{ref!r} matches {len(matches)} keys: pass the key id")
            key_id = matches[0].id
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
        return {"id": str(key_id), "prefix": matches[0].prefix, "revoked": True}

    # -- the caller's own keys (the web page's API keys) -------------------------------------
    async def own_keys(self, ident: Identity) -> list[dict[str, Any]]:
        """The caller's keys in the caller's team, newest first (revoked ones too); never the
        key itself, which is not stored. ``current``: the key of this request."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(api_keys)
                    .where(api_keys.c.user_id == ident.user_id, api_keys.c.team_id == ident.team_id)
                    .order_by(api_keys.c.created_at.desc(), api_keys.c.id)
                )
            ).all()
        return [
            {
                "id": str(r.id),
                "prefix": r.prefix,
                "name": r.name,
                "created_at": iso(r.created_at),
                "revoked_at": iso(r.revoked_at),
                "current": r.id == ident.key_id,
            }
            for r in rows
        ]

    async def create_own_key(self, ident: Identity, name: str = "") -> tuple[str, dict[str, Any]]:
        """A new key for the caller in the caller's team; the key is returned this once."""
        name = " ".join(name.split())
        if len(name) > MAX_KEY_NAME:
            raise Invalid(f"name: at most {MAX_KEY_NAME} characters")
        async with self.db.write() as conn:
            active = (
                await conn.execute(
                    select(func.count())
                    .select_from(api_keys)
                    .where(
                        api_keys.c.user_id == ident.user_id,
                        api_keys.c.team_id == ident.team_id,
                        api_keys.c.revoked_at.is_(None),
                    )
                )
            ).scalar_one()
            if active >= MAX_ACTIVE_KEYS:
                raise Invalid(f"you have {active} active keys: revoke one first")
            return await self._create_key(conn, ident.user_id, ident.team_id, name)

    async def revoke_own_key(self, ident: Identity, key_id: str) -> dict[str, Any]:
        """Revoke one of the caller's keys (in the caller's team) by its id."""
        kid = parse_uuid(key_id, "API key")
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    select(api_keys.c.id, api_keys.c.prefix).where(
                        api_keys.c.id == kid,
                        api_keys.c.user_id == ident.user_id,
                        api_keys.c.team_id == ident.team_id,
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"API key {key_id} not found")
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == kid, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
        for hashed, (_at, cached) in list(self._verified.items()):
            if cached.key_id == kid:  # effective at once in this process
                self._verified.pop(hashed, None)
        return {"id": str(kid), "prefix": row.prefix, "revoked": True}

    # -- projects (§2) ----------------------------------------------------------------------
    async def list_projects(
        self, ident: Identity, *, search: str | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        where = [projects.c.team_id == ident.team_id]
        if search:
            where.append(projects.c.name.contains(normalize_project_name(search)))
        async with self.db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(projects).where(*where))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(projects)
                    .where(*where)
                    .order_by(projects.c.created_at, projects.c.name)
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        return [_project(r) for r in rows], total

    async def get_project(self, ident: Identity, project_id: str) -> dict[str, Any]:
        pid = parse_uuid(project_id, "project")
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(projects).where(
                        projects.c.id == pid, projects.c.team_id == ident.team_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"project {project_id} not found")
        return _project(row)

    async def create_project(
        self, ident: Identity, name: str, description: str | None = None
    ) -> dict[str, Any]:
        slug = normalize_project_name(name)
        if not slug:
            raise Invalid("name: a project name needs letters or digits")
        async with self.db.write() as conn:
            exists = await conn.execute(
                select(projects.c.id).where(
                    projects.c.team_id == ident.team_id, projects.c.name == slug
                )
            )
            if exists.first():
                raise Conflict(f"project {slug!r} already exists")
            pid = uuid.uuid4()
            await conn.execute(
                projects.insert().values(
                    id=pid,
                    team_id=ident.team_id,
                    name=slug,
                    description=description,
                    is_default=0,
                    created_at=now(),
                )
            )
            row = (await conn.execute(select(projects).where(projects.c.id == pid))).one()
        return _project(row)

    # -- internals --------------------------------------------------------------------------
    async def _create_team(self, conn: AsyncConnection, name: str) -> uuid.UUID:
        team_id = uuid.uuid4()
        await conn.execute(teams.insert().values(id=team_id, name=name, created_at=now()))
        return team_id

    async def _create_user(
        self, conn: AsyncConnection, email: str, *, is_admin: bool = False
    ) -> uuid.UUID:
        user_id = uuid.uuid4()
        await conn.execute(
            users.insert().values(id=user_id, email=email, is_admin=int(is_admin), created_at=now())
        )
        return user_id

    async def _add_member(
        self, conn: AsyncConnection, user_id: uuid.UUID, team_id: uuid.UUID, role: str
    ) -> None:
        stmt = insert(conn, memberships).values(
            user_id=user_id, team_id=team_id, role=role, created_at=now()
        )
        await conn.execute(stmt.on_conflict_do_nothing())

    async def _create_default_project(self, conn: AsyncConnection, team_id: uuid.UUID) -> None:
        await conn.execute(
            projects.insert().values(
                id=uuid.uuid4(),
                team_id=team_id,
                name="default",
                description="The team's default project",
                is_default=1,
                created_at=now(),
            )
        )

    async def _create_key(
        self, conn: AsyncConnection, user_id: uuid.UUID, team_id: uuid.UUID, name: str
    ) -> tuple[str, dict[str, Any]]:
        key = new_key()
        key_id = uuid.uuid4()
        prefix = key[:12]
        await conn.execute(
            api_keys.insert().values(
                id=key_id,
                key_hash=hash_key(key),
                prefix=prefix,
                name=name,
                user_id=user_id,
                team_id=team_id,
                created_at=now(),
            )
        )
        return key, {"id": str(key_id), "prefix": prefix, "name": name}

    async def _find_team(self, conn: AsyncConnection, name: str) -> uuid.UUID | None:
        row = (await conn.execute(select(teams.c.id).where(teams.c.name == name))).first()
        return row.id if row else None

    async def _team_id(self, conn: AsyncConnection, name: str) -> uuid.UUID:
        team_id = await self._find_team(conn, name)
        if team_id is None:
            raise NotFound(f"team {name!r} not found (create it with `hud platform team add`)")
        return team_id

    async def _user_id(self, conn: AsyncConnection, email: str) -> uuid.UUID:
        row = (await conn.execute(select(users.c.id).where(users.c.email == email))).first()
        if row is None:
            raise NotFound(f"user {email!r} not found (create it with `hud platform user add`)")
        return row.id

    async def team_name(self, team_id: uuid.UUID) -> str:
        async with self.db.read() as conn:
            row = (await conn.execute(select(teams.c.name).where(teams.c.id == team_id))).first()
        return row.name if row else ""

    async def user_email(self, user_id: uuid.UUID) -> str:
        async with self.db.read() as conn:
            row = (await conn.execute(select(users.c.email).where(users.c.id == user_id))).first()
        return row.email if row else ""


def _project(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "description": row.description,
        "is_default": bool(row.is_default),
        "capabilities": {"create": True},
        "created_at": iso(row.created_at),
    }
