"""`boite serve`: the model server of one environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

ProjectOption = Annotated[
    Path,
    typer.Option("--project", "-p", help="The project folder (or any folder inside it)."),
]


def serve_command(
    env: Annotated[
        str, typer.Option("--env", "-e", help="The environment of boite.yaml to serve.")
    ] = "production",
    host: Annotated[
        str | None, typer.Option(help="Address to bind (boite.yaml: host; 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (boite.yaml: port; 8080).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker processes (boite.yaml: workers).")
    ] = None,
    access_log: Annotated[
        bool, typer.Option(help="One JSON line per request on standard error.")
    ] = True,
    project: ProjectOption = Path("."),
) -> None:
    """Serve the models an environment names (Open Inference Protocol v2 and JSON)."""
    from boite.cli.main import handles_errors

    handles_errors(_serve)(env, host, port, workers, access_log, project)


def _serve(
    env_name: str,
    host: str | None,
    port: int | None,
    workers: int | None,
    access_log: bool,
    project: Path,
) -> None:
    from boite.cli.main import _console, _open
    from boite.pipeline.serving import (
        ACCESS_LOG_VARIABLE,
        ENV_VARIABLE,
        ROOT_VARIABLE,
        build_service,
        create_app,
        environment,
    )
    from boite.serving.server import run

    proj = _open(project)
    env = environment(proj, env_name)
    # fail here, in the terminal, rather than in each worker: the models load and verify
    service = build_service(proj, env_name)
    host = host or env.host
    port = env.port if port is None else port
    workers = workers or env.workers
    console = _console(stderr=True)
    console.print(
        f"serving {env_name} on http://{host}:{port} ({workers} worker"
        f"{'s' if workers > 1 else ''}): {service.summary()}",
        markup=False,
        highlight=False,
    )
    if host not in ("127.0.0.1", "localhost", "::1") and not env.token_env:
        console.print(
            f"warning: {host} is reachable from other machines and no token_env is set, so "
            "anyone who can reach it can call the models",
            markup=False,
        )
    if workers == 1:
        # one process: serve the models loaded above rather than load them again
        app = create_app(proj, env_name, service=service)
        try:
            run(app, host=host, port=port, workers=1, access_log=access_log)
        finally:
            proj.close()
        return
    os.environ[ROOT_VARIABLE] = str(proj.root)
    os.environ[ENV_VARIABLE] = env_name
    os.environ[ACCESS_LOG_VARIABLE] = "1" if access_log else "0"
    if service.log is not None:
        # the workers log; this process only checked the models (and must not hold a
        # log session that readers would wait on)
        service.log.close()
    proj.close()
    run(
        "boite.pipeline.serving:app_from_environment",
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
