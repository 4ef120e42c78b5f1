"""`collector accounts DATASET_OR_URL add|passwd|remove|list`: the people who may log in to the web pages
served beyond loopback (`--listen` on review, session and fleet; docs/fleet.md).

    collector accounts data/hall add ana --role reviewer          # asks for the password twice
    collector accounts postgresql://collector@dbhost/hall add lee --role operator --password-file lee.txt
    collector accounts data/hall passwd ana                       # ends ana's open sessions too
    collector accounts data/hall remove ana
    collector accounts data/hall list

Accounts live in the catalogue (the folder's catalog.sqlite, or its server), so on a fleet one account
works at every station. Roles: operator (the session dashboard), reviewer (the review page), admin
(every page, and the fleet page). Passwords are never taken on the command line: a prompt, or the first
line of --password-file; only their scrypt hash is stored. `add` on a folder that does not exist yet
creates the dataset's catalogue there, so accounts can be made before the first session.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from collector.errors import ConfigError


def _catalog(target: str, create: bool):
    """The catalogue of a dataset folder or URL; `create`: a folder not made yet gets its catalogue now (so
    accounts can exist before the first session there)."""
    from collector.session.catalog import Catalog
    from collector.session.catalog_engine import is_catalog_url
    from collector.session.layout import DatasetLayout

    if is_catalog_url(target):
        return Catalog(target)
    layout = DatasetLayout(target)
    if not layout.exists() and not (create and not layout.root.exists()):
        raise ConfigError(f"{layout.root}: not a dataset (no {layout.catalog_path.name}); give a dataset folder "
                          "or a postgresql:// catalogue URL")
    return Catalog(layout.catalog_location)


def _password(args) -> str:
    from collector.accounts.passwords import check_password

    if args.password_file:
        path = Path(args.password_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--password-file {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        if not lines or not lines[0]:
            raise ConfigError(f"--password-file {path}: the first line (the password) is empty")
        return _checked(check_password, lines[0], f"--password-file {path}")
    try:
        first = getpass.getpass(f"password for {args.name}: ")
        _checked(check_password, first, "password")
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passwords differ; nothing changed")
    except EOFError:
        raise ConfigError("no password given (no terminal to ask on: use --password-file)") from None
    return first


def _checked(check, password: str, where: str) -> str:
    try:
        return check(password)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def run(args) -> int:
    from collector.accounts.store import AccountStore, check_name
    from collector.accounts.roles import check_role

    if args.action == "add":  # name and role checked before a password is asked for
        check_name(args.name)
        check_role(args.role)
    store = AccountStore(_catalog(args.dataset, create=args.action == "add"))
    if args.action == "list":
        accounts = store.accounts()
        for account in accounts:
            print(f"{account.name:<24} {account.role}")
        print(f"{len(accounts)} account(s) in {store.catalog.path}")
    elif args.action == "add":
        if store.role_of(args.name) is not None:
            raise ConfigError(f"account {args.name!r} already exists in {store.catalog.path} "
                              "(change its password with `passwd`)")
        account = store.add(args.name, args.role, _password(args))
        print(f"added {account.name} ({account.role}) to {store.catalog.path}")
    elif args.action == "passwd":
        if store.role_of(args.name) is None:
            raise ConfigError(f"no account {args.name!r} in {store.catalog.path}")
        store.set_password(args.name, _password(args))
        print(f"changed the password of {args.name}; their open sessions have ended")
    else:
        store.remove(args.name)
        print(f"removed {args.name} from {store.catalog.path}; their open sessions have ended")
    sys.stdout.flush()
    return 0


def register(subparsers):
    from collector.accounts.roles import ROLES

    parser = subparsers.add_parser("accounts", help="people who may log in to pages served beyond loopback",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", metavar="DATASET_OR_URL", help="dataset folder or postgresql:// catalogue URL")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add an account (asks for its password)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    passwd = actions.add_parser("passwd", help="set a new password (ends the account's sessions)")
    passwd.add_argument("name")
    for sub in (add, passwd):
        sub.add_argument("--password-file", metavar="FILE", help="read the password from the first line of FILE")
    remove = actions.add_parser("remove", help="remove an account (ends its sessions)")
    remove.add_argument("name")
    actions.add_parser("list", help="list the accounts and their roles")
    parser.set_defaults(func=run)
