"""`kaizen users create` and `kaizen users list`: dashboard users on the command line.

The password is never an argument (arguments show up in `ps` and shell history): it is asked
twice on a terminal, or read from the first line of standard input otherwise, so scripts can
pipe it in.
"""

from __future__ import annotations

import getpass
import sys


def _read_password() -> str | None:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            print("error: the two passwords differ; run the command again", file=sys.stderr)
            return None
        return password

    return sys.stdin.readline().rstrip("\r\n")


def cmd_users_create(args) -> int:
    from kaizen_server.cli import _open_store
    from kaizen_server.dashboard import accounts
    from kaizen_server.store import run_write

    store = _open_store(args)
    password = _read_password()
    if password is None:
        return 1

    try:
        user = run_write(store.engine, lambda c: accounts.create_user(c, args.project, args.username, password))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    print(f"created user {user.username!r} (id {user.id}) in project {user.project!r}; sign in at the dashboard's /login")
    return 0


def cmd_users_list(args) -> int:
    from kaizen_server.cli import _open_store
    from kaizen_server.dashboard import accounts
    from kaizen_server.store import read

    store = _open_store(args)
    with read(store.engine) as connection:
        users = accounts.list_users(connection)
    print("id\tusername\tproject\tcreated\tstatus")
    for user in users:
        status = "disabled" if user.disabled_at else "active"
        print(f"{user.id}\t{user.username}\t{user.project}\t{user.created_at.isoformat()}Z\t{status}")
    return 0


def add_users_commands(commands, common) -> None:
    """Add `users create` and `users list` to the `kaizen` argument parser."""
    users = commands.add_parser("users", help="create and list dashboard users")
    user_commands = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    create = user_commands.add_parser(
        "create", parents=[common], help="create a dashboard user; the password is asked on the terminal or read from stdin"
    )
    create.add_argument("username", help="user name: letters, digits, '.', '_', '@' or '-'")
    create.add_argument("--project", default="default", help="project the user signs in to, created if missing (default: default)")
    create.set_defaults(handler=cmd_users_create)
    listing = user_commands.add_parser("list", parents=[common], help="list dashboard users")
    listing.set_defaults(handler=cmd_users_list)
