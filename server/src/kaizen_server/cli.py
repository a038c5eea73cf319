"""The `kaizen` command: run the server and manage its database, projects and keys.

Every subcommand takes `--db URL` (default: `KAIZEN_DATABASE_URL`, then sqlite:///./kaizen.db)
and first applies any pending migrations, so `kaizen keys create` on a fresh database works
before the server has ever started. Results go to stdout and diagnostics to stderr, so
`kaizen keys create` prints the new key alone on its last stdout line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import sys
from datetime import timedelta

from kaizen_server import __version__
from kaizen_server.config import DEFAULT_DATABASE_URL, resolve_database_url

logger = logging.getLogger("kaizen_server.cli")

_DURATION = re.compile(r"^\s*(\d+)\s*([dhw])\s*$")
_DURATION_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """Parse `30d`, `12h` or `2w` into a timedelta."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}; use a positive whole number with h, d or w, such as 30d")

    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}; use a positive whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}; use a positive whole number")

    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}; use a number from 0 to 65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}; use a number from 0 to 65535")

    return value


def _open_store(args):
    from kaizen_server.store import Store

    url = resolve_database_url(args.db)
    store = Store(url)
    store.upgrade()
    return store


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _port_bind_error(host: str, port: int) -> str | None:
    """Return why `host:port` cannot be bound, or None when a listening socket fits there.

    The probe sets SO_REUSEADDR as uvicorn 0.55 does in Config.bind_socket, so a port left in TIME_WAIT counts as free.
    NOTE: another process can still take the port between this probe and uvicorn's bind.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        return f"invalid host {host!r}: {exc.strerror}"

    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)

    return None


def cmd_serve(args) -> int:
    import uvicorn

    url = resolve_database_url(args.db)
    # Workers are separate processes that rebuild their settings from the environment.
    os.environ["KAIZEN_DATABASE_URL"] = url
    if args.retention_days is not None:
        os.environ["KAIZEN_RETENTION_DAYS"] = str(args.retention_days)

    store = _open_store(args)
    logger.info("database %s (%s) is at the latest migration", _shown_url(url), store.dialect)
    if store.dialect == "sqlite" and args.workers > 1:
        logger.warning("%d workers on SQLite share one write lock; use PostgreSQL to scale writes", args.workers)
    store.close()

    # Probe the port first so a busy port fails with one line instead of a "listening" log
    # followed by uvicorn's bind error.
    bind_error = _port_bind_error(args.host, args.port)
    if bind_error is not None:
        print(f"error: cannot listen on {args.host}:{args.port}: {bind_error.lower()}; pass --port N or stop the process using it", file=sys.stderr)
        return 1

    logger.info("listening on http://%s:%d (API docs at /docs, dashboard at /)", args.host, args.port)
    uvicorn.run(
        "kaizen_server.api:create_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers if args.workers > 1 else None,
        log_level=args.log_level.lower(),
        proxy_headers=False,
    )
    return 0


def cmd_db_upgrade(args) -> int:
    store = _open_store(args)
    print(f"database {_shown_url(store.url)} is at the latest migration")
    return 0


def cmd_projects_create(args) -> int:
    from kaizen_server.store import AlreadyExists

    store = _open_store(args)
    try:
        project = store.create_project(args.name)
    except (AlreadyExists, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    print(f"created project {project.name!r} (id {project.id})")
    return 0


def cmd_projects_list(args) -> int:
    store = _open_store(args)
    for project in store.list_projects():
        print(f"{project.id}\t{project.name}\tcreated {project.created_at.isoformat()}Z")
    return 0


def cmd_keys_create(args) -> int:
    store = _open_store(args)
    key, record = store.create_key(args.project, args.name)
    # The database is named because a server started with another --db or
    # KAIZEN_DATABASE_URL would not know this key.
    database = _shown_url(resolve_database_url(args.db))
    print(f"created API key id {record.id} in project {record.project!r} in database {database}; it is shown only this once:", file=sys.stderr)
    print(key)
    return 0


def cmd_keys_list(args) -> int:
    store = _open_store(args)
    print("id\tprefix\tproject\tname\tcreated\trevoked")
    for key in store.list_keys(args.project):
        revoked = key.revoked_at.isoformat() + "Z" if key.revoked_at else "-"
        print(f"{key.id}\t{key.prefix}...\t{key.project}\t{key.name or '-'}\t{key.created_at.isoformat()}Z\t{revoked}")
    return 0


def cmd_keys_revoke(args) -> int:
    from kaizen_server.store import NotFound

    store = _open_store(args)
    try:
        key = store.revoke_key(args.key)
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    print(f"revoked API key id {key.id} ({key.prefix}...) of project {key.project!r}")
    return 0


def cmd_prune(args) -> int:
    from kaizen_server.wire import utc_now

    store = _open_store(args)
    counts = store.prune(utc_now() - args.older_than)
    print(f"deleted {counts['traces']} traces, {counts['scores']} scores and {counts['rollups']} hourly rollup rows (hourly and daily)")
    return 0


def cmd_export(args) -> int:
    from kaizen_server.store import TraceFilter
    from kaizen_server.wire import to_utc_naive

    store = _open_store(args)
    project = next((item for item in store.list_projects() if item.name == args.project), None)
    if project is None:
        print(f"error: project {args.project!r} not found; see `kaizen projects list`", file=sys.stderr)
        return 1

    trace_filter = TraceFilter(
        task=args.task, prompt_version=args.prompt_version, model=args.model,
        min_score=args.min_score, max_score=args.max_score, scored=args.scored, has_error=args.has_error,
        since=to_utc_naive(args.since) if args.since else None, until=to_utc_naive(args.until) if args.until else None,
        text=args.q,
    )
    output = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    count = 0
    try:
        for trace in store.export_traces(project.id, trace_filter):
            output.write(json.dumps(trace, ensure_ascii=False) + "\n")
            count += 1
        output.flush()
    except BrokenPipeError:
        if output is not sys.stdout:
            raise

        # The reader closed stdout early, as `kaizen export | head` does. Point stdout at
        # /dev/null so the flush at interpreter exit cannot raise again, and exit with 141,
        # the status a shell reports for a writer stopped by SIGPIPE.
        logger.debug("stdout closed after %d exported traces", count)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        if output is not sys.stdout:
            output.close()

    print(f"exported {count} traces", file=sys.stderr)
    return 0


def _bool_option(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False

    raise argparse.ArgumentTypeError(f"invalid value {text!r}; use true or false")


def _iso_datetime(text: str):
    from datetime import datetime

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid timestamp {text!r}; use ISO 8601 such as 2026-01-31T12:00:00Z") from None


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help=f"database URL (default: $KAIZEN_DATABASE_URL, else {DEFAULT_DATABASE_URL}); e.g. sqlite:////var/lib/kaizen/kaizen.db or postgresql+psycopg://user@host:5432/kaizen",
    )

    parser = argparse.ArgumentParser(prog="kaizen", description="Kaizen CT server and administration.")
    parser.add_argument("--version", action="version", version=f"kaizen-server {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the CT server (applies migrations first)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--workers", type=_positive_int, default=1, help="server processes sharing the port (default 1); use PostgreSQL for more than one")
    serve.add_argument("--retention-days", type=_positive_int, default=None, help="prune traces older than this many days at start and every 24 hours (default: $KAIZEN_RETENTION_DAYS, else keep everything)")
    serve.set_defaults(handler=cmd_serve)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser("upgrade", parents=[common], help="apply pending migrations")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    projects = commands.add_parser("projects", help="create and list projects")
    project_commands = projects.add_subparsers(dest="projects_command", required=True, metavar="COMMAND")
    create_project = project_commands.add_parser("create", parents=[common], help="create a project")
    create_project.add_argument("name", help="project name, unique")
    create_project.set_defaults(handler=cmd_projects_create)
    list_projects = project_commands.add_parser("list", parents=[common], help="list projects")
    list_projects.set_defaults(handler=cmd_projects_list)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create_key = key_commands.add_parser("create", parents=[common], help="create an API key and print it once")
    create_key.add_argument("--name", default=None, help="label shown by `kaizen keys list`")
    create_key.add_argument("--project", default="default", help="project of the key, created if missing (default: default)")
    create_key.set_defaults(handler=cmd_keys_create)
    list_keys = key_commands.add_parser("list", parents=[common], help="list API keys (never the keys themselves)")
    list_keys.add_argument("--project", default=None, help="only keys of this project")
    list_keys.set_defaults(handler=cmd_keys_list)
    revoke_key = key_commands.add_parser("revoke", parents=[common], help="revoke an API key")
    revoke_key.add_argument("key", help="key id or the prefix shown by `kaizen keys list`")
    revoke_key.set_defaults(handler=cmd_keys_revoke)

    from kaizen_server.dashboard.cli_users import add_users_commands

    add_users_commands(commands, common)

    prune = commands.add_parser("prune", parents=[common], help="delete traces, scores and rollups older than a duration")
    prune.add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION", help="age such as 30d, 12h or 2w; the cutoff is rounded down to midnight UTC")
    prune.set_defaults(handler=cmd_prune)

    export = commands.add_parser("export", parents=[common], help="write traces with their scores as JSON Lines")
    export.add_argument("--project", default="default", help="project to export (default: default)")
    export.add_argument("--output", "-o", default=None, help="file to write (default stdout)")
    export.add_argument("--task", default=None)
    export.add_argument("--prompt-version", default=None, help="template SHA-256 or a prefix of it")
    export.add_argument("--model", default=None)
    export.add_argument("--min-score", type=float, default=None)
    export.add_argument("--max-score", type=float, default=None)
    export.add_argument("--scored", type=_bool_option, default=None, help="true or false")
    export.add_argument("--has-error", type=_bool_option, default=None, help="true or false")
    export.add_argument("--since", type=_iso_datetime, default=None, help="ISO 8601; naive means UTC")
    export.add_argument("--until", type=_iso_datetime, default=None, help="ISO 8601; naive means UTC")
    export.add_argument("--q", default=None, help="text in the prompt or the response")
    export.set_defaults(handler=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic logs every plugin and migration step at INFO; its warnings still show.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from sqlalchemy.exc import OperationalError

    try:
        return args.handler(args)
    except ValueError as exc:
        # Bad configuration, such as an unsupported database URL.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        # The driver's message names host and port but not the password; the URL is shown masked.
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        logger.debug("database connection failed", exc_info=True)
        print(f"error: cannot connect to the database {_shown_url(resolve_database_url(args.db))}: {reason}; check --db or KAIZEN_DATABASE_URL", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
