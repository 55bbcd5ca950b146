"""Models of a project: train (with search), register, judge gates, promote, roll back.

Training reads a point-in-time-correct training set (or the columns of one
dataset), hands a frame to the trainer, and records everything that came out:
the run with its resources, each search trial (in one batch), the model file as
a content-addressed artifact with lineage to its training set, and the verdict
of the gates against the production model scored on the same test rows.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from boite.core.artifacts import StoredFile
from boite.core.config import ModelConfig
from boite.core.datasets import DATASET, Dataset
from boite.core.ledger import FAILED, SUCCEEDED, NewArtifact, Resources, RunEntry, utcnow
from boite.core.metering import Meter
from boite.core.suggest import did_you_mean
from boite.errors import BoiteError, NotFoundError, RegistryError, TrainingError
from boite.registry.gates import GateReport, judge
from boite.registry.registry import MODEL, AliasEvent, ModelVersion, Registry

if TYPE_CHECKING:
    import pandas as pd

    from boite.pipeline.featurestore import FeatureStore
    from boite.pipeline.runner import Workspace
    from boite.training.predictor import Predictor
    from boite.training.trainer import Trained

GATED_ALIASES = ("production", "challenger")


@dataclass(frozen=True)
class Comparison:
    """Model versions side by side (from ``Models.compare``), as a table or a figure."""

    versions: list[ModelVersion]

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        rows = {}
        for v in self.versions:
            row: dict[str, Any] = dict(v.metrics)
            row.update({f"param:{k}": val for k, val in v.meta.get("params", {}).items()})
            row["training_data"] = v.meta.get("training_data")
            row["gates_passed"] = v.gates.get("passed")
            rows[v.ref] = row
        return pd.DataFrame(rows)

    def plot(self, metrics: list[str] | None = None) -> Any:
        """A plotly bar chart of the metrics the versions share (or of ``metrics``)."""
        import plotly.graph_objects as go

        shared = set.intersection(*(set(v.metrics) for v in self.versions)) - {"rows"}
        names = metrics or sorted(k for k in shared if k != "business_value")
        figure = go.Figure(
            [
                go.Bar(name=v.ref, x=names, y=[v.metrics.get(k) for k in names])
                for v in self.versions
            ]
        )
        figure.update_layout(
            barmode="group",
            title="Model versions compared on their test rows",
            yaxis_title="value",
        )
        return figure


@dataclass(frozen=True)
class TrainResult:
    version: ModelVersion
    gates: GateReport
    run_id: str
    new: bool  # False when the model came out identical to an existing version


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _best(trained: Trained, cfg: ModelConfig) -> float | None:
    """The best trial value, in the direction the search optimised."""
    from boite.training.metrics import DIRECTIONS

    values = [t.value for t in trained.trials if t.value is not None]
    if not values:
        return None
    metric = trained.search_metric or ""
    direction = (cfg.search.direction if cfg.search else None) or DIRECTIONS.get(metric, "maximize")
    return min(values) if direction == "minimize" else max(values)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Models:
    def __init__(
        self, ws: Workspace, configs: dict[str, ModelConfig], features: FeatureStore
    ) -> None:
        self.ws = ws
        self.configs = configs
        self.features = features
        self.registry = Registry(ws.ledger)

    def config(self, name: str) -> ModelConfig:
        if name not in self.configs:
            guess = did_you_mean(name, self.configs)
            raise NotFoundError("model", name, suggestion=guess, known=list(self.configs))
        return self.configs[name]

    # --- the training frame -----------------------------------------------------

    def training_frame(
        self, name: str, cfg: ModelConfig
    ) -> tuple[pd.DataFrame, list[str], str | None, str | None, list[str], str]:
        """(frame, feature columns, label column, time column, consumed ids, source ref)."""
        assert cfg.label is not None
        ledger = self.ws.ledger
        try:
            record = ledger.artifact(DATASET, cfg.label.dataset)
        except NotFoundError as exc:
            raise TrainingError(
                f"model '{name}': its label dataset '{cfg.label.dataset}' does not exist",
                model=name,
                hint=exc.hint,
            ) from None
        labels = Dataset(record, self.ws.store, ledger)
        if cfg.label.column is not None and cfg.label.column not in labels.schema:
            guess = did_you_mean(cfg.label.column, labels.schema)
            raise TrainingError(
                f"model '{name}': the label column '{cfg.label.column}' is not in {labels.ref}",
                model=name,
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + "Columns: "
                + ", ".join(labels.schema)
                + ".",
            )
        refs = [f for f in cfg.features if ":" in f]
        plain = [f for f in cfg.features if ":" not in f]
        excluded = set(cfg.exclude) | ({cfg.label.column} if cfg.label.column else set())
        if cfg.group:
            excluded.add(cfg.group)
        time_column = cfg.label.timestamp
        if time_column is None:
            times = [c for c, t in labels.schema.items() if t.startswith(("DATE", "TIMESTAMP"))]
            time_column = times[0] if len(times) == 1 else None
        if refs:
            training = self.features.training_set(
                labels, refs, timestamp=time_column, name=f"{name}_training"
            )
            frame = training.to_pandas()
            added = [c for c in training.schema if c not in labels.schema]
            consumed, source = [training.record.id], training.ref
        else:
            frame = labels.to_pandas()
            added, consumed, source = [], [labels.record.id], labels.ref
        columns: list[str] = []
        for item in plain:
            if item == "*":
                skip = excluded | set(added) | ({time_column} if time_column else set())
                columns += [c for c in labels.schema if c not in skip]
            elif item not in labels.schema:
                guess = did_you_mean(item, labels.schema)
                raise TrainingError(
                    f"model '{name}': the feature column '{item}' is not in {labels.ref}",
                    model=name,
                    hint=(f"Did you mean '{guess}'? " if guess else "")
                    + "Use 'view:feature' for features of a feature view.",
                )
            else:
                columns.append(item)
        for column in cfg.exclude:
            if column not in labels.schema and column not in added:
                guess = did_you_mean(column, [*labels.schema, *added])
                raise TrainingError(
                    f"model '{name}': 'exclude' names '{column}', which is not a column "
                    "of its data",
                    model=name,
                    hint=(f"Did you mean '{guess}'? " if guess else "")
                    + "A misspelt exclusion would silently keep the column.",
                )
        features = [c for c in dict.fromkeys([*added, *columns]) if c not in excluded]
        if not features:
            raise TrainingError(
                f"model '{name}': its feature list {cfg.features} resolves to no column",
                model=name,
                hint="List feature references ('view:*') or columns of the label dataset "
                "(or '*'), and check 'exclude'.",
            )
        return frame, features, cfg.label.column, time_column, consumed, source

    # --- training ------------------------------------------------------------------

    def train(self, name: str, *, trials: int | None = None) -> TrainResult:
        from boite.fairness import check_limits, fairness_report
        from boite.training.metrics import DEFAULT_METRIC, DIRECTIONS
        from boite.training.trainer import train_model

        cfg = self.config(name)
        ledger = self.ws.ledger
        spec = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
        run_id = ledger.start_run(
            f"train:{name}",
            "train",
            params={"spec": json.loads(spec), "trials": trials},
            code_fingerprint=hashlib.sha256(spec.encode()).hexdigest(),
        )
        meter = Meter()
        trial_log: list[RunEntry] = []
        logged = False
        try:
            with meter:
                if cfg.task == "recommendation":
                    version, gates = self._train_recommender(name, cfg, run_id, meter)
                    return TrainResult(version, gates, run_id, new=version.record.run_id == run_id)
                frame, features, label, time_column, consumed, source = self.training_frame(
                    name, cfg
                )

                def on_trial(trial: Any) -> None:
                    # called as each trial ends: it began its own duration ago
                    started = utcnow() - timedelta(seconds=trial.seconds)
                    metrics = {} if trial.value is None else {"value": trial.value}
                    trial_log.append(
                        RunEntry(
                            step=f"train:{name}",
                            kind="trial",
                            status=trial.state,
                            params={"number": trial.number, **_plain(trial.params)},
                            started_at=started,
                            wall_s=trial.seconds,
                            metrics=metrics,
                            parent=run_id,
                        )
                    )

                trained = train_model(
                    name,
                    cfg,
                    frame,
                    label=label,
                    features=features,
                    time_column=time_column,
                    trials=trials,
                    on_trial=on_trial,
                )
                ledger.log_runs(trial_log)
                logged = True
                primary = trained.search_metric or DEFAULT_METRIC[cfg.task]
                production = self._production_on(name, trained, frame)
                limits = None
                fairness = None
                if cfg.fairness is not None and cfg.task == "binary_classification":
                    test_rows = frame.iloc[trained.test_index]
                    missing = [c for c in cfg.fairness.sensitive if c not in test_rows]
                    if missing:
                        raise TrainingError(
                            f"model '{name}': the sensitive column(s) {', '.join(missing)} are "
                            "not in its training data",
                            model=name,
                        )
                    threshold = (trained.business or {}).get("best_threshold", 0.5)
                    decisions = (trained.test_scores >= threshold).astype(int)
                    report = fairness_report(
                        trained.test_y,
                        decisions,
                        test_rows,
                        attributes=cfg.fairness.sensitive,
                        min_group_size=cfg.fairness.min_group_size,
                        intersections=cfg.fairness.intersections,
                    )
                    fairness = report.to_dict()
                    limits = check_limits(report, cfg.fairness.limits)
                gates = judge(
                    cfg,
                    trained.metrics,
                    production=production,
                    primary_metric=primary,
                    higher_is_better=DIRECTIONS.get(primary, "maximize") == "maximize",
                    fairness=limits,
                )
                new = self._model_artifact(
                    name, cfg, trained, features, source, gates, production, fairness
                )
                extra = [self._segments(name, trained, frame)] if cfg.task == "clustering" else []
            record, *_ = ledger.finish_run(
                run_id,
                status=SUCCEEDED,
                resources=Resources(
                    wall_s=meter.usage.wall_s,
                    cpu_s=meter.usage.cpu_s,
                    peak_rss_bytes=meter.usage.peak_rss_bytes,
                    rows_in=len(frame),
                ),
                consumed=consumed,
                produced=[new, *extra],
                metrics={k: v for k, v in trained.metrics.items() if np.isfinite(v)},
            )
        except BaseException as exc:
            if not logged:
                ledger.log_runs(trial_log)
            ledger.finish_run(
                run_id,
                status=FAILED,
                error=str(exc) if isinstance(exc, BoiteError) else repr(exc),
                resources=Resources(wall_s=meter.usage.wall_s, cpu_s=meter.usage.cpu_s),
            )
            raise
        version = ModelVersion(record)
        return TrainResult(version, gates, run_id, new=record.run_id == run_id)

    def _train_recommender(
        self, name: str, cfg: ModelConfig, run_id: str, meter: Meter
    ) -> tuple[ModelVersion, GateReport]:
        """Matrix factorization (or popularity) on the interactions of one dataset."""
        from boite.training.recommend import train_recommendation

        assert cfg.label is not None
        ledger, store = self.ws.ledger, self.ws.store
        record = ledger.artifact(DATASET, cfg.label.dataset)
        data = Dataset(record, store, ledger)
        time_column = cfg.label.timestamp
        state, metrics, split, fit_seconds = train_recommendation(
            name, cfg, data.to_pandas(), weight=cfg.label.column, time_column=time_column
        )
        primary = f"precision_at_{cfg.k}"
        current = self.registry.alias(name, "production")
        production = None
        if current is not None:
            # scored on the same held-out interactions: its own stored metrics are
            # from another split, so they would not be a fair comparison
            production = (
                (current.ref, dict(current.metrics)) if current.meta.get("split") == split else None
            )
        gates = judge(cfg, metrics, production=production, primary_metric=primary)
        signature = {
            "inputs": [{"name": cfg.user, "type": "text"}],
            "outputs": [{"name": "items", "type": "list[text]"}],
        }
        stored = self._store_model(
            name,
            cfg,
            gates,
            flavor="arrays",
            model=state,
            signature=signature,
            preprocessing={"kind": "recommender", "user": cfg.user, "item": cfg.item, "k": cfg.k},
        )
        meta = _plain(
            {
                "task": cfg.task,
                "algorithm": cfg.algorithm,
                "params": cfg.params,
                "features": [cfg.user, cfg.item],
                "feature_refs": cfg.features,
                "label": cfg.label.column,
                "training_data": data.ref,
                "split": split,
                "metrics": metrics,
                "gates": gates.to_dict(),
                "fit_seconds": fit_seconds,
                "signature": signature,
                "description": cfg.description,
                "intended_use": cfg.intended_use,
                "owner": cfg.owner,
                "production_baseline": None
                if production is None
                else {"version": production[0], "metrics": production[1]},
            }
        )
        new = NewArtifact(
            kind=MODEL,
            name=name,
            content_hash=stored.sha256,
            uri=stored.uri,
            format="boite-model",
            bytes=stored.size,
            meta=meta,
        )
        (model_record,) = ledger.finish_run(
            run_id,
            status=SUCCEEDED,
            resources=Resources(
                wall_s=meter.usage.wall_s, cpu_s=meter.usage.cpu_s, rows_in=data.rows
            ),
            consumed=[record.id],
            produced=[new],
            metrics={k: v for k, v in metrics.items() if np.isfinite(v)},
        )
        return ModelVersion(model_record), gates

    def _store_model(
        self,
        name: str,
        cfg: ModelConfig,
        gates: GateReport,
        *,
        flavor: str,
        model: Any,
        signature: dict[str, Any],
        preprocessing: dict[str, Any],
    ) -> StoredFile:
        """Write the model file and move it into the artifact store under its hash."""
        from boite.registry.modelfile import MODEL_FILE_SUFFIX, write_model

        store = self.ws.store
        scratch = store.new_scratch_file(MODEL_FILE_SUFFIX)
        digest = write_model(
            scratch,
            flavor=flavor,
            task=cfg.task,
            model=model,
            signature=signature,
            preprocessing=preprocessing,
            # the spec and the verdict belong to the version: retraining to the same
            # weights under new gates (or a new production) is a new version
            metadata={
                "name": name,
                "algorithm": cfg.algorithm,
                "spec_sha256": hashlib.sha256(
                    json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
                ).hexdigest(),
                "verdict": [[r.gate, r.passed] for r in gates.results],
            },
        )
        return store.put_file(scratch, suffix=MODEL_FILE_SUFFIX, sha256=digest)

    def _segments(self, name: str, trained: Trained, frame: pd.DataFrame) -> NewArtifact:
        """Every row of the training data with its segment: the clustering's output."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from boite.core.datasets import new_dataset

        rows = frame.assign(
            segment=trained.algorithm.predict(
                trained.fitted, trained.preprocessor.transform(frame), task="clustering"
            ).astype("int64")
        )
        table = pa.Table.from_pandas(rows, preserve_index=False)
        scratch = self.ws.store.new_scratch_file(".parquet")
        pq.write_table(table, scratch, compression="zstd")
        stored = self.ws.store.put_file(scratch, suffix=".parquet")
        path = self.ws.store.local_path(stored.uri, stored.sha256)
        schema = {f.name: str(f.type) for f in table.schema}
        new = new_dataset(f"{name}_segments", stored, path, schema)
        new.kind = "segments"
        return new

    def _production_on(
        self, name: str, trained: Trained, frame: pd.DataFrame
    ) -> tuple[str, dict[str, float]] | None:
        """The production model's metrics on the candidate's own test rows."""
        from boite.training.metrics import business_value, task_metrics

        current = self.registry.alias(name, "production")
        if current is None or trained.task == "clustering":
            return None  # segments of two clusterings are not comparable by row
        predictor = self.predictor(current)
        rows = frame.iloc[trained.test_index]
        try:
            scores = predictor.scores(rows)
        except TrainingError as exc:
            raise TrainingError(
                f"model '{name}': the production model {current.ref} cannot score the new test "
                f"rows ({exc.message})",
                model=name,
                hint="Its features changed; promote with --force and a reason if intended.",
            ) from None
        cfg = self.config(name)
        if trained.task == "ranking":
            from boite.training.metrics import ranking_metrics
            from boite.training.trainer import _group_sizes

            sizes = _group_sizes(rows, cfg.group)
            metrics = ranking_metrics(trained.test_y, scores, sizes, k=cfg.k)
        else:
            metrics = task_metrics(trained.task, trained.test_y, scores)
        if cfg.business is not None and trained.task == "binary_classification":
            metrics["business_value"] = business_value(trained.test_y, scores, cfg.business)[
                "best_value"
            ]
        return current.ref, metrics

    def _model_artifact(
        self,
        name: str,
        cfg: ModelConfig,
        trained: Trained,
        features: list[str],
        source: str,
        gates: GateReport,
        production: tuple[str, dict[str, float]] | None,
        fairness: dict[str, Any] | None,
    ) -> NewArtifact:

        pre = trained.preprocessor
        signature = {
            "inputs": [{"name": f, "type": pre.kinds[f]} for f in features],
            "outputs": [{"name": "score", "type": "float"}],
        }
        stored = self._store_model(
            name,
            cfg,
            gates,
            flavor=trained.algorithm.flavor,
            model=trained.fitted,
            signature=signature,
            preprocessing={"features": pre.to_dict(), "classes": _plain(trained.classes)},
        )
        meta = _plain(
            {
                "task": cfg.task,
                "algorithm": cfg.algorithm,
                "params": trained.params,
                "features": features,
                "feature_refs": cfg.features,
                "label": trained.label,
                "classes": trained.classes,
                "training_data": source,
                "split": trained.split,
                "metrics": trained.metrics,
                "calibration": trained.calibration,
                "business": trained.business,
                "slices": trained.slices,
                "fairness": fairness,
                "gates": gates.to_dict(),
                "production_baseline": None
                if production is None
                else {"version": production[0], "metrics": production[1]},
                "search": None
                if not trained.trials
                else {
                    "metric": trained.search_metric,
                    "trials": len(trained.trials),
                    "complete": sum(t.state == "complete" for t in trained.trials),
                    "best": _best(trained, cfg),
                },
                "fit_seconds": trained.fit_seconds,
                "signature": signature,
                "description": cfg.description,
                "intended_use": cfg.intended_use,
                "owner": cfg.owner,
            }
        )
        return NewArtifact(
            kind=MODEL,
            name=name,
            content_hash=stored.sha256,
            uri=stored.uri,
            format="boite-model",
            bytes=stored.size,
            meta=meta,
        )

    # --- loading -----------------------------------------------------------------------

    def predictor(self, version: ModelVersion) -> Predictor:
        from boite.registry.modelfile import read_model
        from boite.training.predictor import Predictor

        record = version.record
        path = self.ws.store.local_path(record.uri, record.content_hash, what=f"model {record.ref}")
        model_file = read_model(path, expected_sha256=record.content_hash)
        return Predictor.from_parts(
            model_file.flavor,
            model_file.task,
            model_file.model,
            model_file.preprocessing,
            model_file.signature,
        )

    # --- experiments -------------------------------------------------------------------

    def compare(self, refs: list[str]) -> Comparison:
        return Comparison([self.registry.get(r) for r in refs])

    def trials(self, name: str) -> pd.DataFrame:
        """Every search trial of a model, newest first: parameters, value, state, time."""
        import pandas as pd

        self.config(name)
        ledger = self.ws.ledger
        rows = []
        for run in ledger.runs(step=f"train:{name}"):
            if run.kind != "trial":
                continue
            metrics = ledger.metrics(run.id)
            rows.append(
                {
                    "run": run.id,
                    "training_run": run.params.get("parent_run"),
                    "trial": run.params.get("number"),
                    "state": run.status,
                    "value": metrics.get("value"),
                    "seconds": run.wall_s,
                    **{k: v for k, v in run.params.items() if k not in ("number", "parent_run")},
                }
            )
        return pd.DataFrame(rows)

    # --- aliases -------------------------------------------------------------------------

    def promote(
        self, ref: str, *, to: str, reason: str, force: bool = False, actor: str | None = None
    ) -> AliasEvent:
        version = self.registry.get(ref)
        if "@" not in ref:
            raise RegistryError(
                f"promote names one version: '{ref}@{version.version}', not '{ref}'",
                model_version=ref,
            )
        gates = GateReport.from_dict(version.gates)
        if to in GATED_ALIASES and not gates.passed:
            failed = "; ".join(r.message for r in gates.failed)
            if not force:
                raise RegistryError(
                    f"{version.ref} failed its gates, so it cannot become {to}: {failed}",
                    model_version=version.ref,
                    hint="Train a better version, or pass --force with a --reason to overrule "
                    "the gates (the override is kept in the history).",
                )
            if not reason.strip():
                raise RegistryError("forcing past failed gates needs a reason", hint="--reason")
        details = {"gates": gates.to_dict()} if to in GATED_ALIASES else None
        return self.registry.move(
            version,
            to,
            actor=actor or _actor(),
            reason=reason,
            forced=force and not gates.passed,
            details=details,
        )

    def rollback(
        self, name: str, *, alias: str = "production", reason: str = "", actor: str | None = None
    ) -> AliasEvent:
        self.registry.get(name)
        events = self.registry.history(name, alias=alias)
        if not events:
            raise RegistryError(f"'{name}' has never had a {alias} version; nothing to roll back")
        # the alias's path forward, with each rolled-back version taken off it, so that
        # rolling back twice goes two steps back rather than forth again
        path: list[int] = []
        for event in events:
            if event.details and event.details.get("rollback_from") is not None:
                if path:
                    path.pop()
            elif event.version is not None:
                path.append(event.version)
        current = events[-1].version
        earlier = [v for v in path[:-1] if v != current]
        if not earlier:
            raise RegistryError(
                f"{name}@{current} is the only version {name} has had in {alias}; there is "
                "nothing to roll back to",
                model_version=f"{name}@{current}",
            )
        target = self.registry.get(f"{name}@{earlier[-1]}")
        return self.registry.move(
            target,
            alias,
            actor=actor or _actor(),
            reason=reason or f"rollback from {name}@{current}",
            details={"rollback_from": current},
        )
