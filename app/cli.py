"""Operator commands: ``python -m app.cli migrate | seed-demo | demo-consult | create-user |
reset-second-factor | retention-run``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from alembic import command
from alembic.config import Config
from sqlalchemy import func
from sqlmodel import col, select

from app.accounts import admin, factors
from app.accounts import service as accounts
from app.accounts.models import Role, User
from app.audit import service as audit
from app.db import create_engine, session_factory, unit_of_work, utcnow
from app.errors import KonsilError, NotFound
from app.retention import service as retention
from app.seed import DEMO_PASSWORD, DemoConsult, demo_consult, seed_demo
from app.settings import Settings


def migrate(settings: Settings) -> None:
    """Brings the database schema to the newest revision."""
    config = Config("alembic.ini")
    config.attributes["database_url"] = settings.database_url
    command.upgrade(config, "head")


async def _seed(settings: Settings) -> bool:
    engine = create_engine(settings.database_url)
    try:
        async with unit_of_work(session_factory(engine)) as session:
            return await seed_demo(session)
    finally:
        await engine.dispose()


async def _demo_consult(settings: Settings) -> DemoConsult:
    engine = create_engine(settings.database_url)
    try:
        async with unit_of_work(session_factory(engine)) as session:
            return await demo_consult(session, settings=settings, now=utcnow())
    finally:
        await engine.dispose()


def demo_instructions(settings: Settings, demo: DemoConsult) -> str:
    """The three windows of a demo call, for the terminal that started ``make run``."""
    base = settings.base_url.rstrip("/")
    until = demo.link.valid_until.astimezone(settings.tz).strftime("%H:%M")
    return "\n".join(
        [
            f"Demo consultation {demo.appointment_id}, joinable now (the link until {until}):",
            f"  1. Patient (a private window or another browser): {demo.link.join_url}",
            f"  2. Specialist: {base}/login as {demo.specialist_email} / {DEMO_PASSWORD},",
            '     the patient appears under "Warteliste": "Hereinholen" opens the call.',
            f"  3. GP, for a three-way call (optional): {base}/login as {demo.gp_email},",
            '     "Meine Buchungen", the booking, "Am Gespräch teilnehmen".',
        ]
    )


async def _create_user(settings: Settings, args: argparse.Namespace, password: str) -> int:
    engine = create_engine(settings.database_url)
    try:
        async with unit_of_work(session_factory(engine)) as session:
            role = Role(args.role)
            await admin.check_assignment(
                session, role=role, practice_id=args.practice_id, specialty_id=args.specialty_id
            )
            user = await accounts.create_user(
                session,
                email=args.email,
                password_hash=accounts.new_password_hash(password),
                display_name=args.name,
                role=role,
                practice_id=args.practice_id,
                specialty_id=args.specialty_id,
            )
            assert user.id is not None
            return user.id
    finally:
        await engine.dispose()


async def _reset_second_factor(settings: Settings, email: str) -> int:
    """Removes an account's second factors and ends its sessions: for the one admin who lost
    their phone and recovery codes, when no other admin can do it on the page."""
    engine = create_engine(settings.database_url)
    try:
        async with unit_of_work(session_factory(engine)) as session:
            found = await session.execute(
                select(User.id).where(func.lower(col(User.email)) == email.strip().lower())
            )
            user_id = found.scalar_one_or_none()
            if user_id is None:
                raise NotFound("Dieses Konto gibt es nicht.")
            await factors.reset(session, user_id=user_id)
            await accounts.end_sessions_of(session, user_id=user_id)
            audit.record(
                session, action="second_factor.reset", actor_kind="operator", target=user_id
            )
            return int(user_id)
    finally:
        await engine.dispose()


async def _retention_run(settings: Settings) -> retention.Counts:
    engine = create_engine(settings.database_url)
    try:
        return await retention.run(session_factory(engine), settings)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser(
        "seed-demo", help="create demo accounts and consultation hours (not in production)"
    )
    sub.add_parser(
        "demo-consult",
        help="a demo consultation joinable now; prints its patient link (not in production)",
    )
    create = sub.add_parser("create-user", help="create a staff account (password read from stdin)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--practice-id", type=int)
    create.add_argument("--specialty-id", type=int)
    reset = sub.add_parser(
        "reset-second-factor",
        help="remove a staff account's second factors and end its sessions (lost phone)",
    )
    reset.add_argument("--email", required=True)
    sub.add_parser(
        "retention-run",
        help="delete what the retention periods say is due now, print how many rows of each kind",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "migrate":
        migrate(settings)
    elif args.command == "seed-demo":
        if settings.environment == "production":
            print("refusing to seed demo accounts in production", file=sys.stderr)
            return 2
        created = asyncio.run(_seed(settings))
        print("demo data created" if created else "database already has accounts; nothing seeded")
    elif args.command == "demo-consult":
        if settings.environment == "production":
            print("refusing to create a demo consultation in production", file=sys.stderr)
            return 2
        try:
            demo = asyncio.run(_demo_consult(settings))
        except KonsilError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        print(demo_instructions(settings, demo))
    elif args.command == "reset-second-factor":
        try:
            user_id = asyncio.run(_reset_second_factor(settings, args.email))
        except KonsilError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        print(f"second factors of user {user_id} removed; it sets up a new one at its next login")
    elif args.command == "retention-run":
        for kind, number in asyncio.run(_retention_run(settings)).items():
            print(f"{kind}: {number}")
    else:
        password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline()
        try:
            user_id = asyncio.run(_create_user(settings, args, password.rstrip("\n")))
        except KonsilError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        print(f"created user {user_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
