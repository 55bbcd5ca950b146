"""Serving a project's environment: the loader that turns a registered model version
into what the server calls, and the app built from a project and an environment.

This lives in the pipeline because a loader needs the training code (the
preprocessing recipe and the algorithms' predict), which the serving package
must not import.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from boite.core.config import EnvironmentConfig
from boite.core.ledger import SUCCEEDED, Resources
from boite.core.suggest import did_you_mean
from boite.errors import ConfigError
from boite.serving.model import Output, ServedModel

if TYPE_CHECKING:
    from boite.pipeline.project import Project
    from boite.serving.app import BoiteApp
    from boite.serving.service import Service

ROOT_VARIABLE, ENV_VARIABLE = "BOITE_SERVE_ROOT", "BOITE_SERVE_ENV"
ACCESS_LOG_VARIABLE = "BOITE_SERVE_ACCESS_LOG"


def environment(project: Project, name: str) -> EnvironmentConfig:
    envs = project.config.environments
    if name not in envs:
        guess = did_you_mean(name, envs)
        raise ConfigError(
            f"there is no environment '{name}'",
            file=str(project.config_path),
            key="environments",
            hint=(f"Did you mean '{guess}'? " if guess else "")
            + (
                "Environments: " + ", ".join(envs) + "."
                if envs
                else "Declare one: environments: {production: {serve: {MODEL: production}}}."
            ),
        )
    return envs[name]


class ProjectLoader:
    """Loads model versions of one project, verified against their hash."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def __call__(self, name: str, version: int) -> ServedModel:
        project = self.project
        mv = project.models.registry.get(f"{name}@{version}")
        record = mv.record
        model_file, predictor = project.models.load(mv)
        task = model_file.task
        common = {
            "name": name,
            "version": version,
            "task": task,
            "artifact_id": record.id,
            "platform": f"boite-{model_file.flavor}",
            "meta": {"algorithm": mv.meta.get("algorithm")},
        }
        if model_file.preprocessing.get("kind") == "recommender":
            user = str(model_file.preprocessing["user"])
            k = int(model_file.preprocessing.get("k", 10))
            recommender = predictor

            def recommend(rows: Sequence[Sequence[Any]]) -> list[Any]:
                return recommender.recommend([r[0] for r in rows], k)

            return ServedModel(
                inputs=(user,),
                kinds={user: "text"},
                predict=recommend,
                outputs=(Output("items", "BYTES", k),),
                entity_keys=(user,),
                **common,
            )
        inputs = tuple(predictor.features)
        refs = [r for r in mv.meta.get("feature_refs", []) if ":" in str(r)]
        reader = None
        online: list[str] = []
        views: list[str] = []
        keys: list[str] = []
        if refs:
            store = project.features
            found, wanted = store._views_for(refs)
            online = [f for fs in wanted.values() for f in fs if f in inputs]
            wanted = {v: [f for f in fs if f in inputs] for v, fs in wanted.items()}
            wanted = {v: fs for v, fs in wanted.items() if fs}
            if wanted:
                reader = store.reader([f"{v}:{f}" for v, fs in wanted.items() for f in fs])
                views = list(wanted)
                for view in views:
                    keys += [k for k in found[view].entities if k not in keys]
        return ServedModel(
            inputs=inputs,
            kinds=dict(predictor.preprocessor.kinds),
            predict=_predict_function(predictor, task),
            outputs=_outputs(task, predictor.classes),
            entity_keys=tuple(keys),
            online=reader,
            online_features=tuple(online),
            views=tuple(views),
            **common,
        )


def _outputs(task: str, classes: list[Any] | None) -> tuple[Output, ...]:
    if task == "binary_classification":
        return (Output("score", "FP64"),)
    if task == "multiclass":
        return (Output("label", "BYTES"), Output("probabilities", "FP64", len(classes or [])))
    if task == "clustering":
        return (Output("segment", "INT64"),)
    return (Output("prediction", "FP64"),)


def _predict_function(predictor: Any, task: str) -> Any:
    score_rows = predictor.score_rows
    if task == "multiclass":
        classes = [str(c) for c in predictor.classes]

        def multiclass(rows: Sequence[Sequence[Any]]) -> list[Any]:
            probabilities = np.atleast_2d(score_rows(rows))
            return [
                {
                    "label": classes[int(np.argmax(p))],
                    "probabilities": dict(zip(classes, p.tolist(), strict=True)),
                }
                for p in probabilities
            ]

        return multiclass
    if task == "clustering":

        def clustering(rows: Sequence[Sequence[Any]]) -> list[Any]:
            return [int(s) for s in score_rows(rows)]

        return clustering

    def values(rows: Sequence[Sequence[Any]]) -> list[Any]:
        return score_rows(rows).tolist()

    return values


def build_service(project: Project, env_name: str) -> Service:
    from boite.serving.logsink import LOG_DIR, LedgerSink
    from boite.serving.predlog import PredictionLog
    from boite.serving.service import Service

    env = environment(project, env_name)
    sink = LedgerSink(
        project.ledger,
        project.store,
        env=env_name,
        directory=project.state_dir / LOG_DIR,
        session=str(os.getpid()),
        publish_seconds=env.log.publish_seconds,
        publish_rows=env.log.publish_rows,
    )
    log = PredictionLog(sink, flush_rows=env.log.flush_rows, flush_seconds=env.log.flush_seconds)
    registry = project.models.registry
    service = Service(
        env_name, env, loader=ProjectLoader(project), aliases=registry.aliases, log=log
    )
    service.load()
    return service


def create_app(project: Project, env_name: str, *, service: Service | None = None) -> BoiteApp:
    """The app serving ``env_name`` (with ``service`` if it is already loaded); a ``serve``
    run records the session in the ledger."""
    from boite.serving.app import create_app as make_app
    from boite.serving.auth import Tokens

    env = environment(project, env_name)
    tokens = None
    if env.token_env:
        tokens = Tokens.parse(
            os.environ.get(env.token_env, ""), variable=env.token_env, now=project.clock.now
        )
    service = service or build_service(project, env_name)
    ledger = project.ledger
    started = time.perf_counter()
    cpu = time.process_time()
    run_id = ledger.start_run(
        f"serve:{env_name}",
        "serve",
        params={"env": env_name, "pid": os.getpid(), "serving": service.summary()},
    )
    finished = False

    def finish() -> None:
        nonlocal finished
        if finished:
            return
        finished = True
        log = service.log
        ledger.finish_run(
            run_id,
            status=SUCCEEDED,
            resources=Resources(
                wall_s=time.perf_counter() - started,
                cpu_s=time.process_time() - cpu,
                rows_out=None if log is None else log.written_rows,
            ),
            metrics={
                "logged_rows": float(0 if log is None else log.written_rows),
                "dropped_rows": float(0 if log is None else log.dropped_rows),
                "reloads": float(service.reloads),
            },
        )

    # a server stopped without its shutdown (a test's loop torn down) still closes its run
    atexit.register(finish)

    def feedback(
        model: str, labels: list[dict[str, Any]], label_column: str | None, timestamp: str | None
    ) -> dict[str, Any]:
        from boite.pipeline.scoring import record_feedback
        from boite.serving.logsink import LOG_DIR, ask_to_publish, wait_for_publish

        # Labels for the latest answers must find them: every worker publishes its log
        # first (this one at once, the others at their next flush).
        directory = project.state_dir / LOG_DIR
        token = ask_to_publish(directory)
        if service.log is not None:
            service.log.flush(publish=True)  # sees the request: this worker acknowledges it
        if token is not None:
            wait_for_publish(directory, token, wait_s=2 * env.log.flush_seconds + 2.0)
        summary = record_feedback(
            project,
            model,
            labels,
            label_column=label_column,
            timestamp=timestamp,
            publish_wait_s=0,
        )
        return summary.to_dict()

    return make_app(
        service,
        tokens=tokens,
        on_shutdown=[finish],
        reload_seconds=env.reload_seconds,
        feedback=feedback,
    )


def app_from_environment() -> BoiteApp:
    """The uvicorn factory each worker process calls (the project and the environment
    come in environment variables set by ``boite serve``)."""
    from boite.pipeline.project import open_project
    from boite.serving.server import configure_logging

    # worker processes start fresh: the parent's logging setup does not reach them
    configure_logging(access_log=os.environ.get(ACCESS_LOG_VARIABLE, "1") == "1")
    return create_app(open_project(os.environ[ROOT_VARIABLE]), os.environ[ENV_VARIABLE])
