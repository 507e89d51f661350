"""`kcloud gateway`: serve the vendor push API (the gateway stage) with the program managers' report
endpoints (the reports stage) mounted on it: the application is where stages are put together.

    kcloud gateway [--host H] [--port P]                   serve until SIGTERM / Ctrl-C
"""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from fastapi import FastAPI

from kcloud.cli_context import current_settings
from kcloud.settings import Settings

__all__ = ["full_app", "gateway_app"]

gateway_app = typer.Typer(
    help="Serve the authenticated HTTP endpoint where vendors push telemetry (POST /v1/telemetry).",
    invoke_without_command=True,
)


def full_app(settings: Settings) -> FastAPI:
    """The gateway app with every reader router (the reports) mounted, as `kcloud gateway` serves it."""
    from gateway.app import create_app
    from reports.http import report_router

    return create_app(settings, reader_routers=[report_router])


def _settings() -> Settings:
    return current_settings()


def _check_port(host: str, port: int) -> None:
    """Fail with one line when the address cannot be listened on (taken, or not ours)."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        _fail(
            f"gateway: cannot listen on {host}:{port}: {exc.strerror or exc}; is another gateway running there? "
            "choose another address with --host/--port (or KCLOUD_GATEWAY_HOST/KCLOUD_GATEWAY_PORT)"
        )


def _fail(message: str) -> NoReturn:
    typer.echo(f"kcloud: {message}", err=True)
    raise typer.Exit(1)


@gateway_app.callback()
def gateway(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: KCLOUD_GATEWAY_HOST, 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port to listen on [default: KCLOUD_GATEWAY_PORT, 8470].")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level: debug, info, warning, error.")] = "info",
) -> None:
    """Serve the vendor push API until SIGTERM or Ctrl-C.

    Limits come from the settings: KCLOUD_GATEWAY_MAX_BODY_BYTES, KCLOUD_GATEWAY_MAX_SNAPSHOTS,
    KCLOUD_GATEWAY_RATE_PER_S and KCLOUD_GATEWAY_BURST (`kcloud config show` lists them).
    X-Forwarded-For is believed only from KCLOUD_GATEWAY_TRUSTED_PROXIES (addresses or CIDR networks,
    comma-separated; default none): otherwise the connecting address is the client's, in the audit
    trail and for the failed-authentication limit.
    """
    if ctx.invoked_subcommand is not None:
        return
    import logging

    import uvicorn

    s = _settings()
    s = s.model_copy(update={k: v for k, v in {"gateway_host": host, "gateway_port": port}.items() if v is not None})
    _check_port(s.gateway_host, s.gateway_port)
    logging.basicConfig(level=log_level.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    if log_level.lower() != "debug":  # kafka-python narrates every connection at INFO
        logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    typer.echo(f"kcloud gateway: serving http://{s.gateway_host}:{s.gateway_port}/v1/telemetry", err=True)
    proxies = s.gateway_trusted_proxy_list
    if proxies:
        typer.echo(f"kcloud gateway: believing X-Forwarded-For from {', '.join(proxies)} only", err=True)
    uvicorn.run(
        full_app(s),
        host=s.gateway_host,
        port=s.gateway_port,
        log_level=log_level.lower(),
        access_log=True,
        # uvicorn believes X-Forwarded-* from 127.0.0.1 unless told otherwise: only configured proxies here
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or [],
    )
