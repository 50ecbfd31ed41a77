"""``ds01 token create|list|revoke``: a user's personal API tokens for the REST API."""

from __future__ import annotations

import click

from ds01_core.api import CliState, json_option, pass_state, print_json, print_table


@click.group("token")
def token() -> None:
    """Personal API tokens for the REST API (/api/v1) of ds01-web."""


@token.command("create")
@click.option("--name", required=True, help="What the token is for (e.g. ci-nightly).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["read", "write"]),
    default=("read",),
    show_default=True,
    help="read: GET only; write: everything you may do. Repeat for both.",
)
@click.option(
    "--expires", required=True, help="Lifetime, e.g. 30d or 12h (at most the server's limit)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_state
def create(
    state: CliState, name: str, scopes: tuple[str, ...], expires: str, as_json: bool
) -> None:
    """Make a token; it is shown this once (ds01 keeps only its hash)."""
    data = state.call("web.token_create", name=name, scope=list(scopes), expires=expires)
    if as_json:
        print_json(data)
        return
    click.echo(data["token"])
    click.echo(
        f"token {data['id']} ({data['name']}, {', '.join(data['scopes'])}) expires "
        f"{data['expires']}. It is shown only now: keep it secret and send it as "
        "'Authorization: Bearer <token>'.",
        err=True,
    )


@token.command("list")
@json_option
@pass_state
def list_(state: CliState, as_json: bool) -> None:
    """Your tokens: active, expired and revoked (never their secrets)."""
    data = state.call("web.token_list")
    if as_json:
        print_json(data)
        return
    print_table(
        [
            [
                t["id"],
                t["name"],
                ",".join(t["scopes"]),
                t["state"],
                t["expires"],
                t["last_used"] or "-",
            ]
            for t in data
        ],
        ["ID", "NAME", "SCOPES", "STATE", "EXPIRES", "LAST USED"],
    )


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@json_option
@pass_state
def revoke(state: CliState, token_id: str, as_json: bool) -> None:
    """Revoke one of your tokens at once (its id from ds01 token list)."""
    data = state.call("web.token_revoke", id=token_id)
    if as_json:
        print_json(data)
    else:
        click.echo(f"revoked token {data['id']} ({data['name']})")
