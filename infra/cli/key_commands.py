"""`itsm keys create`: API keys."""

from __future__ import annotations

import argparse
import sys

from infra.cli.process import Commands, open_container


def keys_create(args: argparse.Namespace) -> int:
    key = open_container().keys.create(args.role, args.name)
    print(key)
    print(
        f"API key for {args.name!r} with role {args.role}; it is shown only once.", file=sys.stderr
    )
    return 0


def register(commands: Commands) -> None:
    from application.access import Role

    keys = commands.add_parser("keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("create", help="create an API key; prints it once")
    p.add_argument("--role", required=True, choices=[str(r) for r in Role])
    p.add_argument("--name", required=True)
    p.set_defaults(run=keys_create)
