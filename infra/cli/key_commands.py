"""`itsm keys list | create | revoke | rotate | expire`: API keys (docs/access.md).

The CLI writes the store of record directly: run it with the server's `ITSM_DATA_DIR` /
`ITSM_DATABASE_URL`. Each action is an audited event whose actor is `cli:<OS user>` (or
`--by`) and whose causation id is `cli-<uuid>`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING
from uuid import uuid4

from infra.cli.process import Commands, open_container

if TYPE_CHECKING:
    from application.access import ApiKeyService
    from domain.access.api_key import ApiKey
    from domain.shared_kernel.command_context import Context


def _context(args: argparse.Namespace) -> Context:
    from domain.shared_kernel.actor import Actor, ActorKind
    from domain.shared_kernel.command_context import Context

    return Context(Actor(args.by or f"cli:{_user()}", ActorKind.PERSON), f"cli-{uuid4()}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container)
        return "unknown"


def _run(args: argparse.Namespace, action: Callable[[ApiKeyService], int]) -> int:
    from domain.shared_kernel.errors import DomainError

    container = open_container()
    try:
        return action(container.keys)
    except DomainError as error:
        print(f"itsm keys {args.keys_command}: {error}", file=sys.stderr)
        return 1
    finally:
        container.close()


def _line(key: ApiKey) -> dict[str, object]:
    return {
        "id": str(key.id),
        "name": key.name,
        "role": key.role,
        "status": key.status(),
        "issued_at": key.created_on.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "generation": key.generation,
    }


def keys_list(args: argparse.Namespace) -> int:
    def run(keys: ApiKeyService) -> int:
        listed = [k for k in keys.list() if args.all or not k.revoked]
        if args.json:
            print(json.dumps([_line(k) for k in listed], indent=2))
            return 0
        print(f"{'id':36}  {'name':24}  {'role':11}  {'status':7}  expires")
        for key in listed:
            expires = key.expires_at.isoformat() if key.expires_at else "never"
            print(f"{key.id!s:36}  {key.name:24}  {key.role:11}  {key.status():7}  {expires}")
        return 0

    return _run(args, run)


def keys_create(args: argparse.Namespace) -> int:
    from application.access import parse_expiry

    def run(keys: ApiKeyService) -> int:
        issued = keys.issue(args.name, args.role, _context(args), parse_expiry(args.expires))
        print(issued.secret)
        _shown_once(issued.key, "issued")
        return 0

    return _run(args, run)


def keys_revoke(args: argparse.Namespace) -> int:
    def run(keys: ApiKeyService) -> int:
        key = keys.revoke(args.key, _context(args), reason=args.reason)
        print(f"API key {key.name!r} ({key.id}) is revoked.", file=sys.stderr)
        return 0

    return _run(args, run)


def keys_rotate(args: argparse.Namespace) -> int:
    def run(keys: ApiKeyService) -> int:
        issued = keys.rotate(args.key, _context(args))
        print(issued.secret)
        _shown_once(issued.key, "rotated; the secret before it no longer works")
        return 0

    return _run(args, run)


def keys_expire(args: argparse.Namespace) -> int:
    from application.access import parse_expiry

    def run(keys: ApiKeyService) -> int:
        key = keys.set_expiry(args.key, parse_expiry(args.expires), _context(args))
        when = key.expires_at.isoformat() if key.expires_at else "never"
        print(f"API key {key.name!r} ({key.id}) now expires: {when}.", file=sys.stderr)
        return 0

    return _run(args, run)


def _shown_once(key: ApiKey, what: str) -> None:
    expires = f", expires {key.expires_at.isoformat()}" if key.expires_at else ""
    print(
        f"API key {key.name!r} ({key.id}) with role {key.role}{expires}: {what}. "
        "The secret above is shown only once.",
        file=sys.stderr,
    )


_EXPIRES = "an ISO 8601 time (2027-01-31T00:00:00Z), a duration from now (P90D, 12h) or 'never'"


def register(commands: Commands) -> None:
    from application.access import Role

    keys = commands.add_parser("keys", help="API keys (docs/access.md)").add_subparsers(
        dest="keys_command", required=True
    )
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument("--by", help="who acts, for the audit trail (default: cli:<OS user>)")

    p = keys.add_parser("list", help="list keys (not revoked ones, unless --all)")
    p.add_argument("--all", action="store_true", help="revoked keys too")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=keys_list)

    p = keys.add_parser("create", parents=[by], help="issue an API key; prints its secret once")
    p.add_argument("--role", required=True, choices=[str(r) for r in Role])
    p.add_argument("--name", required=True, help="unique among keys that are not revoked")
    p.add_argument("--expires", help=f"when the key stops working: {_EXPIRES}")
    p.set_defaults(run=keys_create)

    p = keys.add_parser("revoke", parents=[by], help="revoke a key (by name or id)")
    p.add_argument("key", metavar="NAME-or-ID")
    p.add_argument("--reason", default="")
    p.set_defaults(run=keys_revoke)

    p = keys.add_parser("rotate", parents=[by], help="a new secret for a key; prints it once")
    p.add_argument("key", metavar="NAME-or-ID")
    p.set_defaults(run=keys_rotate)

    p = keys.add_parser("expire", parents=[by], help="set or clear a key's expiry")
    p.add_argument("key", metavar="NAME-or-ID")
    p.add_argument("--expires", required=True, help=_EXPIRES)
    p.set_defaults(run=keys_expire)
