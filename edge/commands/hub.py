"""`towerwatch hub`: the county hub (MQTT consumer, fusion, HTTP API and the officer's page)."""

from __future__ import annotations

import sys

import click

from edge.cli_support import EXIT_USAGE, fail
from edge.logs import setup_logging

DEFAULT_HUB_CONFIG = "config/county/hub.yaml"


@click.group("hub", invoke_without_command=True)
@click.option(
    "--config",
    "config",
    default=DEFAULT_HUB_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Hub config file (YAML).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set http.port=8091 (repeatable).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option("--check", is_flag=True, help="Only check the config and exit.")
@click.pass_context
def group(
    ctx: click.Context, config: str, sets: tuple[str, ...], log_level: str, check: bool
) -> None:
    """Run the county hub until SIGTERM or Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from hub.config import ConfigError, load_hub_config

    try:
        cfg = load_hub_config(config, sets)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        n = len(exc.problems)
        click.echo(f"towerwatch: {config}: {n} problem{'s' if n != 1 else ''}", err=True)
        sys.exit(EXIT_USAGE)
    if check:
        click.echo(f"{config}: ok")
        return
    setup_logging(log_level, "auto")
    try:
        from hub.app import run_hub
    except ModuleNotFoundError as exc:
        fail(
            f"hub: needs the hub's packages ({exc.name} is missing): pip install 'towerwatch[hub]'",
            EXIT_USAGE,
        )

    from hub.service import HubStartError

    try:
        code = run_hub(cfg)
    except HubStartError as exc:
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(f"store ({cfg.store.backend}): {exc}")
    except ImportError as exc:
        fail(f"store.backend={cfg.store.backend}: {exc}")
    except Exception as exc:
        # psycopg's connection errors name the server; report them as one line, no traceback.
        if type(exc).__module__.startswith("psycopg"):
            fail(f"store.postgresql_dsn: {exc}".strip())
        raise
    sys.exit(code)


@group.group("user")
def user_group() -> None:
    """Accounts for the duty officer's page."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "officer"]), required=True)
@click.option(
    "--config",
    "config",
    default=DEFAULT_HUB_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Hub config file (YAML): names the store the account goes to.",
)
def user_add(name: str, role: str, config: str) -> None:
    """Create an account; the password is read from standard input (never a default)."""
    import re
    import time

    from hub.auth import MIN_PASSWORD_CHARS, hash_password
    from hub.config import ConfigError, load_hub_config

    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", name):
        fail(f"user name {name!r}: letters, digits, '.', '_' or '-', at most 64", EXIT_USAGE)
    try:
        cfg = load_hub_config(config)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(EXIT_USAGE)
    if sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_CHARS:
        fail(f"password: at least {MIN_PASSWORD_CHARS} characters on standard input", EXIT_USAGE)
    from hub.store import open_store

    try:
        store = open_store(cfg.store)
    except OSError as exc:
        fail(f"store ({cfg.store.backend}): {exc}")
    try:
        if not store.add_user(name, role, hash_password(password), time.time()):
            fail(f"user {name!r} already exists in the store of {config}", EXIT_USAGE)
        store.audit("cli", "user_add", name, role, time.time())
    finally:
        store.close()
    click.echo(f"user {name} ({role}) added")
