"""The `chatbot` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from chatbot.client import APPROVE_MODES, FILES_DIR, ClientConfig
from chatbot.embedded.process import EmbeddedError
from shared.config import ConfigError, Settings, get_settings, load_settings_without_dev_stack
from shared.models import ON_BUSY_MODES


class UsageError(Exception):
    """The command cannot run as asked; the message says what to fix."""


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(f"error: {line}\n")


def _cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from chatbot.dev import run_dev

    # What an earlier `chatbot dev` here left in .chatbot/dev.env is not configuration.
    return run_dev(load_settings_without_dev_stack(), _out)


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from shared.logging import configure_logging

    configure_logging(settings.log_level, settings.pii_in_logs)
    uvicorn.run(
        "chatbot.app:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=None,
    )
    return 0


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.main import run_worker_until_signalled

    return run_worker_until_signalled(settings, promote=args.promote)


def _cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from shared.db import migrate
    from shared.db.engine import engine_from_settings

    if settings.database_url is None:
        raise UsageError(
            "DATABASE_URL is not set; point it at your Postgres (see .env.cloud.example)"
        )

    async def run() -> str | None:
        engine = engine_from_settings(settings)
        try:
            if args.action == "upgrade":
                await migrate.upgrade(engine, args.revision or "head")
            elif args.action == "downgrade":
                await migrate.downgrade(engine, args.revision or "-1")
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    _out(f"schema revision: {asyncio.run(run()) or 'none'} (head: {migrate.head_revision()})")
    return 0


def _cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from chatbot.auth import mint_token

    if settings.jwt_secret is None:
        raise UsageError("JWT_SECRET is not set; the gateway runs in dev mode and needs no token")
    if not args.user.strip() or len(args.user) > 256:
        raise UsageError("USER must be 1 to 256 characters")
    ttl = int(args.ttl_days * 86400)
    _out(
        mint_token(
            settings.jwt_secret.get_secret_value(), args.user, ttl_seconds=ttl, roles=args.role
        )
    )
    return 0


def _client_config(args: argparse.Namespace) -> ClientConfig:
    config = ClientConfig()
    return ClientConfig(url=args.url or config.url, token=args.token or config.token)


def _cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from chatbot.client import run_send

    if not args.text.strip():
        raise UsageError("TEXT must not be empty: it is the message to send")
    return run_send(
        _client_config(args),
        args.session,
        args.text,
        args.client_message_id,
        as_json=args.json,
        approve=args.approve,
        files_dir=_files_dir(args),
        on_busy=args.on_busy,
    )


def _cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from chatbot.client import run_chat

    return run_chat(_client_config(args), args.session, files_dir=_files_dir(args))


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from loadtest.bench.cli import run

    return run(args)


def _cmd_chaos(args: argparse.Namespace, settings: Settings) -> int:
    from loadtest.chaos.cli import run

    return run(args)


def _cmd_eval_answers(args: argparse.Namespace, settings: Settings) -> int:
    from loadtest.answers.cli import run

    return run(args)


def _cmd_route(args: argparse.Namespace, settings: Settings) -> int:
    from activities.intent.cli import run

    return run(args, settings)


def _cmd_companies(args: argparse.Namespace, settings: Settings) -> int:
    from chatbot.companies import run

    return run(args, settings)


def _cmd_ops(args: argparse.Namespace, settings: Settings) -> int:
    from chatbot.ops import run

    return run(args, settings)


def _cmd_feedback(args: argparse.Namespace, settings: Settings) -> int:
    from chatbot.feedback import run

    return run(args, settings)


APPROVAL_ANSWERS = (
    "A tool call that needs approval is shown with its arguments and asked about: "
    "`Approve <tool>? [y/N]`; y or yes approves, anything else (an empty line too) "
    "denies, and a note for the model may follow a colon, as in `n: not that one`."
)


def _positive_days(value: str) -> float:
    days = float(value)
    if days <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return days


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="gateway URL (default: CHATBOT_URL or http://127.0.0.1:8000)")
    parser.add_argument("--token", help="bearer token (default: CHATBOT_TOKEN)")
    files = parser.add_mutually_exclusive_group()
    files.add_argument(
        "--files-dir",
        type=Path,
        default=FILES_DIR,
        help="where the files a reply comes with (a data query's CSV and chart) are saved, "
        f"in a folder per session; their paths are printed on stderr (default: ./{FILES_DIR})",
    )
    files.add_argument(
        "--no-files", action="store_true", help="do not download the files a reply comes with"
    )


def _files_dir(args: argparse.Namespace) -> Path | None:
    return None if args.no_files else args.files_dir


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; with `only`, the options of that command alone are built: the
    others' come from modules that import the whole stack (seconds, for a `chatbot send`)."""

    def wanted(command: str) -> bool:
        return only is None or only == command

    parser = argparse.ArgumentParser(
        prog="chatbot", description="Temporal-orchestrated chat backend."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="run the whole stack locally on embedded defaults")
    dev.set_defaults(func=_cmd_dev)

    serve = sub.add_parser("serve", help="run the HTTP gateway")
    serve.add_argument("--host", help="bind address (default: API_HOST)")
    serve.add_argument("--port", type=int, help="port (default: API_PORT)")
    serve.set_defaults(func=_cmd_serve)

    worker = sub.add_parser(
        "worker",
        help="run a Temporal worker (a version of WORKER_DEPLOYMENT_NAME, build WORKER_BUILD_ID)",
        description="Run a worker as a Worker Deployment Version. The deployment's first "
        "build becomes current by itself; a later build serves new session runs once "
        "promoted, while runs started on the old build finish there (Pinned).",
    )
    worker.add_argument(
        "--promote",
        action="store_true",
        help="make this worker's build the deployment's current version once it polls",
    )
    worker.set_defaults(func=_cmd_worker)

    token = sub.add_parser("token", help="mint a bearer token for USER (needs JWT_SECRET)")
    token.add_argument("user")
    token.add_argument("--ttl-days", type=_positive_days, default=30.0)
    token.add_argument(
        "--role",
        action="append",
        choices=("agent", "admin"),
        default=[],
        help="a role the token grants beside user (agent: the handoff console; admin: "
        "everything an agent may, and the admin views); repeat for both",
    )
    token.set_defaults(func=_cmd_token)

    send = sub.add_parser(
        "send",
        help="send one message and print the reply as it streams",
        description="Send one message and print the reply as it streams; tool calls and "
        "approvals (TOOL_CALLING=on) are shown on stderr. " + APPROVAL_ANSWERS,
    )
    send.add_argument("session", help="session id (created on first use)")
    send.add_argument("text")
    send.add_argument("--client-message-id", help="idempotency key: a retry gets the same turn")
    send.add_argument(
        "--on-busy",
        choices=ON_BUSY_MODES,
        help="while the session answers another message: enqueue (wait), reject (fail "
        "with the running turn's id), interrupt (stop it, keeping its partial reply) or "
        "rollback (stop it and drop it); default: the session's setting",
    )
    send.add_argument(
        "--json", action="store_true", help="print only the turn's result as JSON (for scripts)"
    )
    send.add_argument(
        "--approve",
        choices=APPROVE_MODES,
        default="ask",
        help="tool calls that need approval: ask (the default) asks when stdin is a terminal; "
        "otherwise the request is printed with how to decide it elsewhere (the page, the "
        "API), and the turn waits for that decision or its timeout. all / none: approve / "
        "deny every call without asking",
    )
    _add_client_options(send)
    send.set_defaults(func=_cmd_send, needs_server_settings=False)

    chat = sub.add_parser(
        "chat",
        help="an interactive chat in the terminal",
        description="An interactive chat: each line is a message, /quit or Ctrl-D leaves. "
        + APPROVAL_ANSWERS,
    )
    chat.add_argument("session", nargs="?", help="session id (default: a new one)")
    _add_client_options(chat)
    chat.set_defaults(func=_cmd_chat, needs_server_settings=False)

    bench = sub.add_parser("bench", help="benchmark the service against the raw Temporal floor")
    if wanted("bench"):
        from loadtest.bench.cli import add_arguments as add_bench_arguments

        add_bench_arguments(bench)
    bench.set_defaults(func=_cmd_bench)

    chaos = sub.add_parser(
        "chaos", help="the fault suite: kill and slow each piece under load, check every turn"
    )
    if wanted("chaos"):
        from loadtest.chaos.cli import add_arguments as add_chaos_arguments

        add_chaos_arguments(chaos)
    chaos.set_defaults(func=_cmd_chaos, needs_server_settings=False)

    answers = sub.add_parser(
        "eval-answers", help="score the local models' replies on fixed prompts, with speed"
    )
    if wanted("eval-answers"):
        from loadtest.answers.cli import add_arguments as add_answers_arguments

        add_answers_arguments(answers)
    answers.set_defaults(func=_cmd_eval_answers, needs_server_settings=False)

    route = sub.add_parser(
        "route", help="route messages to intents (JSON lines), or --eval a labelled set"
    )
    if wanted("route"):
        from activities.intent.cli import add_arguments as add_route_arguments

        add_route_arguments(route)
    route.set_defaults(func=_cmd_route)

    companies = sub.add_parser("companies", help="company data for company search")
    if wanted("companies"):
        from chatbot.companies import add_arguments as add_companies_arguments

        add_companies_arguments(companies)
    companies.set_defaults(func=_cmd_companies)

    ops = sub.add_parser(
        "ops", help="operate sessions (list, show, end), deployments, usage and budgets"
    )
    if wanted("ops"):
        from chatbot.ops import add_arguments as add_ops_arguments

        add_ops_arguments(ops)
    ops.set_defaults(func=_cmd_ops)

    feedback = sub.add_parser(
        "feedback", help="users' ratings of replies: export them for evaluation (JSON lines)"
    )
    if wanted("feedback"):
        from chatbot.feedback import add_arguments as add_feedback_arguments

        add_feedback_arguments(feedback)
    feedback.set_defaults(func=_cmd_feedback)

    db = sub.add_parser("db", help="database schema migrations")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?", help="target revision (default: head / one step down)")
    db.set_defaults(func=_cmd_db)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    given = list(sys.argv[1:] if argv is None else argv)
    # `chatbot --help` lists the commands: none of their options are needed.
    command = given[0] if given and not given[0].startswith("-") else ""
    args = build_parser(only=command).parse_args(given)
    try:
        # Client commands run against a remote gateway: the server's settings do not apply.
        needs = getattr(args, "needs_server_settings", True)
        settings = get_settings() if needs else Settings.model_construct()
        code = args.func(args, settings)
    except (ConfigError, UsageError) as err:
        _err(str(err))
        code = 2
    except EmbeddedError as err:
        _err(str(err))
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
