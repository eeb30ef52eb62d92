"""`authgate` command line: serve, users, db, keys (and kb, doctor, idp, audit, clients in their modules).

Each command imports what it runs, inside its function: `authgate --version` loads no other
authgate module, and `authgate users list` no server, gateway or doctor.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from authgate._version import __version__

if TYPE_CHECKING:
    from authgate.config.settings import Settings
    from authgate.store.bundle import Stores
    from authgate.store.protocols import UserStore


def _settings(args: argparse.Namespace) -> Settings:
    from authgate.cli.settings_flags import setting_overrides
    from authgate.config.settings import load_settings

    return load_settings(args.config, **setting_overrides(args))


async def _preflight(settings: Settings) -> None:
    from authgate.server.runtime import open_runtime

    if settings.strict and settings.upstream:  # refused before the store is opened: exit 2
        from authgate.gateway.http.settings import check_upstream_at_start

        check_upstream_at_start(settings)
    if settings.auth_mode == "external":  # no store or keys: the IdP issues the tokens
        if settings.strict:  # the IdP's keys and scopes checked before listening: a refusal exits 2
            from authgate.idp.backend import open_external

            async with open_external(settings):
                pass
        return
    if settings.migrate == "auto":  # Alembic never enters the server (store/sql/upgrade_child.py)
        from authgate.server.runtime import prepare_sqlite
        from authgate.store.sql.upgrade_child import upgrade_sqlite_apart

        prepare_sqlite(settings)
        upgrade_sqlite_apart(settings.effective_database_url)
    runtime = await open_runtime(settings)
    await runtime.close()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from authgate.cli.banner import start_banner
    from authgate.cli.listen_socket import bind_listener
    from authgate.cli.settings_flags import setting_overrides
    from authgate.config.settings import load_settings
    from authgate.server.app import build_app
    from authgate.server.http_protocol import bounded_protocol
    from authgate.server.logs import configure_logging
    from authgate.server.shutdown import GracefulServer

    settings = (
        _settings(args)
        if not args.stdio_command
        else load_settings(
            args.config, **{**setting_overrides(args), "upstream_command": _stdio_command(args.stdio_command)}
        )
    )
    configure_logging(settings.log_level, settings.log_format)  # before anything may warn
    listener = bind_listener(settings.host, settings.port)  # a taken port fails now, not after start-up
    asyncio.run(_preflight(settings))  # a wrong secret or database fails here, readably
    app = build_app(settings)
    print(start_banner(settings), file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        # authgate reads the forwarded address itself (trusted_proxies, forwarded_header)
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        # no WebSocket protocol: authgate serves none (Starlette would refuse the scope), and
        # uvicorn's "auto" imports the websockets package into every server (~0.5 MB RSS); an
        # Upgrade: websocket request is answered as the plain HTTP request it also is
        ws="none",
        timeout_graceful_shutdown=settings.shutdown_timeout,
        # 431 for an oversized request head, 408 for a slow one, max_connections (server/http_protocol.py)
        http=bounded_protocol(
            header_read_timeout=settings.header_read_timeout, max_connections=settings.max_connections
        ),
    )
    # a stop drains the requests in flight and exits 0 (server/shutdown.py)
    server = GracefulServer(config, drain=app.drain, drain_seconds=settings.shutdown_drain_seconds)
    server.run(sockets=[listener])
    return 0 if server.started else 3  # 3: uvicorn's start-up failure (the app's lifespan, …)


def _stdio_command(argv: list[str]) -> list[str]:
    """`authgate serve [flags] -- CMD ARGS…`: the stdio MCP server to run (upstream_command)."""
    from authgate.errors import ConfigError

    if argv[0] != "--" or len(argv) < 2:
        raise ConfigError(
            "upstream_command",
            f"unexpected arguments {' '.join(argv)!r}",
            "put the stdio server's command after `--`: authgate serve -- CMD ARGS…",
        )
    return argv[1:]


def cmd_users(args: argparse.Namespace) -> int:
    from authgate.cli.password_prompt import no_password_source, read_password
    from authgate.oauth.passwords import hash_password
    from authgate.server.runtime import FIRST_PASSWORD_FILE, discard_first_password, with_store

    settings = _settings(args)

    async def run(stores: Stores) -> int:
        store = stores.users
        if args.users_command == "list":
            from authgate.cli.listings import list_users

            await list_users(store, limit=args.limit, as_json=args.json)
            return 0
        found = await store.get_user_by_name(args.name)  # checked before a password is asked
        if (found is None) != (args.users_command == "add"):
            why = "exists (`users set-password` changes its password)" if found else "does not exist"
            print(f"authgate: a user named {args.name!r} {why}", file=sys.stderr)
            return 1
        if args.users_command in ("add", "set-password") and (problem := no_password_source(args)):
            print(problem, file=sys.stderr)
            return 2
        if found is None:  # add
            return await _add_user(settings, store, args.name, args.role, read_password(args))
        if args.users_command == "remove":
            from authgate.connections.upstream import connections_wanted

            if connections_wanted(settings):  # their provider tokens revoked at the providers too
                from authgate.cli.connections_cmd import connection_broker

                broker = connection_broker(settings, stores)
                try:
                    await broker.revoke_all(found.user_id)
                finally:
                    await broker.aclose()
            await store.remove_user(found.user_id, time.time())
            discard_first_password(settings, found)
            print(f"removed user {args.name}; their grants and sign-in sessions are revoked")
        elif args.users_command == "roles":
            await store.set_roles(found.user_id, args.roles)
            _print_roles(settings, args.name, args.roles)
        else:
            await store.set_password(found.user_id, hash_password(read_password(args)), time.time())
            if discard_first_password(settings, found):  # its password was the one in the file
                print(f"removed {settings.data_dir / FIRST_PASSWORD_FILE}: the first password no longer works")
            print(f"password of {args.name} changed; their grants and sign-in sessions are revoked")
        return 0

    return asyncio.run(with_store(settings, run))


async def _add_user(settings: Settings, store: UserStore, name: str, roles: list[str] | None, password: str) -> int:
    from authgate.oauth.passwords import hash_password
    from authgate.oauth.roles import ADMIN_ROLE
    from authgate.store.models import User

    # the first user is the deployment's owner: admin unless told otherwise (as `serve` does)
    if roles is None:
        roles = [ADMIN_ROLE] if await store.count_users() == 0 else []
    await store.add_user(User(str(uuid.uuid4()), name, hash_password(password), time.time(), roles=tuple(roles)))
    print(f"added user {name}")
    _print_roles(settings, name, roles)
    return 0


def _print_roles(settings: Settings, name: str, roles: list[str]) -> None:
    from authgate.oauth.config import CoreConfig
    from authgate.oauth.roles import may_grant

    unknown = [r for r in roles if r not in settings.user_role_scopes]
    granted = may_grant(CoreConfig.from_settings(settings), roles)
    print(f"roles of {name}: {', '.join(roles) or '(none)'}; may grant: {' '.join(granted)}")
    if unknown:
        print(f"authgate: note: {', '.join(unknown)} not in user_role_scopes (they add no scope)", file=sys.stderr)


def _role(value: str) -> str:
    from authgate.oauth.roles import ROLE_NAME

    if not ROLE_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a role name (letters, digits, . _ : -)")
    return value


def cmd_db(args: argparse.Namespace) -> int:
    from authgate.server.runtime import prepare_sqlite
    from authgate.store.sql import upgrade

    settings = _settings(args)
    prepare_sqlite(settings)
    revision = asyncio.run(upgrade(settings.effective_database_url))
    print(f"database schema at revision {revision}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from authgate.oauth.keys import SigningKeys
    from authgate.server.runtime import load_secret, with_store

    settings = _settings(args)

    async def run(stores: Stores) -> int:
        keys = SigningKeys(
            stores.keys,
            load_secret(settings),
            retire_after=settings.access_token_ttl + 300,
            alg=settings.token_signing_alg,
        )
        await keys.load()
        if args.keys_command == "rotate":
            print(f"active signing key is now {await keys.rotate()}")
        from authgate.cli.listings import print_keys

        print_keys(await stores.keys.list_keys(), as_json=getattr(args, "json", False))
        return 0

    return asyncio.run(with_store(settings, run))


def build_parser() -> argparse.ArgumentParser:
    from authgate.cli.output import add_json_flag, add_limit_flag
    from authgate.cli.settings_flags import ALL_SETTINGS, add_setting_flags

    parser = argparse.ArgumentParser(prog="authgate", description="OAuth 2.1 in front of MCP servers.")
    parser.add_argument("--version", action="version", version=f"authgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the authorization server, guard and MCP endpoint")
    add_setting_flags(serve, shown=ALL_SETTINGS)
    serve.add_argument(
        "stdio_command",
        nargs=argparse.REMAINDER,
        metavar="-- CMD ARGS",
        help="run this stdio MCP server and protect it (sets upstream_command)",
    )
    serve.set_defaults(func=cmd_serve)

    users = sub.add_parser("users", help="manage local users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    for name, text in (
        ("add", "add a user"),
        ("remove", "remove a user and revoke their grants"),
        ("set-password", "change a user's password (revokes their grants and sessions)"),
        ("roles", "set a user's roles (user_role_scopes says what each may grant)"),
        ("list", "list users and their roles"),
    ):
        p = users_sub.add_parser(name, help=text)
        if name != "list":
            p.add_argument("name")
        if name in ("add", "set-password"):
            p.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from stdin, one line (without a terminal, the only way)",
            )
        if name == "add":
            p.add_argument(
                "--role",
                action="append",
                type=_role,
                metavar="ROLE",
                help="a role (repeatable); default: admin for the first user, none after",
            )
        if name == "roles":
            p.add_argument("roles", nargs="*", type=_role, metavar="ROLE", help="the roles (none: clear them)")
        if name == "list":
            add_json_flag(p)
            add_limit_flag(p, "users")
        add_setting_flags(p)
        p.set_defaults(func=cmd_users)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="migrate the schema to the current version")
    add_setting_flags(up)
    up.set_defaults(func=cmd_db)

    keys = sub.add_parser("keys", help="signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    for name, text in (
        ("list", "list the signing keys: active, next (published, signs after a rotation), retired"),
        ("rotate", "promote the next key, retire the active one"),
    ):
        p = keys_sub.add_parser(name, help=text)
        if name == "list":
            add_json_flag(p)
        add_setting_flags(p, shown=("data_dir", "database_url", "secret_key"))
        p.set_defaults(func=cmd_keys)
    from authgate.cli.kb_cmd import add_parser as add_kb

    add_kb(sub)
    from authgate.cli.doctor_cmd import add_parser as add_doctor

    add_doctor(sub)
    from authgate.cli.idp_cmd import add_parser as add_idp

    add_idp(sub)
    from authgate.cli.audit_cmd import add_parser as add_audit

    add_audit(sub)
    from authgate.cli.attempts_cmd import add_parser as add_attempts

    add_attempts(sub)
    from authgate.cli.clients_cmd import add_parser as add_clients

    add_clients(sub)
    from authgate.cli.grants_cmd import add_parser as add_grants

    add_grants(sub)
    from authgate.cli.connections_cmd import add_parser as add_connections

    add_connections(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--version"]:  # answered before the parser, whose flags come from the settings model
        print(f"authgate {__version__}")
        return 0
    args = build_parser().parse_args(argv)
    from authgate.errors import AuthgateError, ConfigError, StoreError
    from authgate.masking import masked_urls  # a database URL's password never reaches the terminal

    try:
        result: Any = args.func(args)
    except ConfigError as exc:
        print(f"authgate: configuration error: {masked_urls(str(exc))}", file=sys.stderr)
        return 2
    except (StoreError, AuthgateError) as exc:
        print(f"authgate: {masked_urls(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result)
