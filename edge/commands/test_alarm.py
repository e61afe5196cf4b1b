"""`towerwatch test-alarm`: a test alarm along the full path to the hub (state `test`).

The running daemon sends it exactly as the hub's own `test-alarm` command would: built by
the alarm book, queued in the outbox, published over the uplink. Without a daemon there
is no path to test, so the command refuses.
"""

from __future__ import annotations

from pathlib import Path

import click

from edge.cli_support import echo_json, json_option
from edge.commands.status import call_or_exit, client_for, runtime_dir_option


@click.command("test-alarm")
@json_option
@runtime_dir_option
@click.option("--request-id", default=None, help="Echoed in the reply to the hub.")
def command(as_json: bool, runtime_dir: Path | None, request_id: str | None) -> None:
    """Send a test alarm through the running daemon; the hub shows it as a test."""
    payload = {} if request_id is None else {"request_id": request_id}
    reply = call_or_exit(client_for(runtime_dir), "command", verb="test-alarm", payload=payload)
    if as_json:
        echo_json(reply)
    else:
        click.echo("test alarm queued: the hub receives an alarm with state `test`")
