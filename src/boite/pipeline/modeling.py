"""Models of a project: train (with search), register, judge gates, promote, roll back.

Training reads a point-in-time-correct training set (or the columns of one
dataset), hands a frame to the trainer, and records everything that came out:
the run with its resources, each search trial (in one batch), the model file as
a content-addressed artifact with lineage to its training set, and the verdict
of the gates against the production model scored on the same test rows.

Promotion to a gated alias trusts that verdict only while production is still the
model it was judged against; once production has moved, the beat-production gate
is judged again on the version's test rows, rebuilt from its recorded training
data, and the fresh verdict decides and is kept on the alias move.
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
from boite.registry.gates import (
    GateReport,
    GateResult,
    beat_production,
    is_production_gate,
    judge,
    production_gate_name,
    rejudge,
)
from boite.registry.registry import MODEL, AliasEvent, ModelVersion, Registry

if TYPE_CHECKING:
    import pandas as pd

    from boite.pipeline.featurestore import FeatureStore
    from boite.pipeline.runner import Workspace
    from boite.registry.modelfile import ModelFile
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


class _NotRebuilt(Exception):
    """A version's test rows cannot be rebuilt exactly as they were when it was tested."""


@dataclass(frozen=True)
class Rejudged:
    """A verdict judged again at promotion, against the production model of that moment."""

    gates: GateReport
    against: str | None  # production now
    stale: str | None  # the production it was judged against when trained (None: none)
    production_metrics: dict[str, float] | None  # production now, on the candidate's test rows

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "gates": self.gates.to_dict(),
            "rejudged_against": self.against,
            "stale_baseline": self.stale,
        }
        if self.production_metrics is not None:
            out["production_metrics"] = _plain(self.production_metrics)
        return out

    def why(self) -> str:
        then = "there was none" if self.stale is None else f"it was {self.stale}"
        return f"judged again against production {self.against}; when it was trained, {then}"


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
        current = self.registry.alias(name, "production")
        if current is None or trained.task == "clustering":
            return None  # segments of two clusterings are not comparable by row
        rows = frame.iloc[trained.test_index]
        try:
            metrics = self._metrics_on(current, self.config(name), rows, trained.test_y)
        except TrainingError as exc:
            raise TrainingError(
                f"model '{name}': the production model {current.ref} cannot score the new test "
                f"rows ({exc.message})",
                model=name,
                hint="Its features changed; promote with --force and a reason if intended.",
            ) from None
        return current.ref, metrics

    def _metrics_on(
        self, version: ModelVersion, cfg: ModelConfig, rows: pd.DataFrame, y: np.ndarray
    ) -> dict[str, float]:
        """A registered version's metrics on ``rows`` (labels ``y``), measured as training
        measures a candidate's, so the two can be set side by side."""
        from boite.training.metrics import business_value, task_metrics

        scores = self.predictor(version).scores(rows)
        if cfg.task == "ranking":
            from boite.training.metrics import ranking_metrics
            from boite.training.trainer import _group_sizes

            sizes = _group_sizes(rows, cfg.group)
            metrics = ranking_metrics(y, scores, sizes, k=cfg.k)
        else:
            metrics = task_metrics(cfg.task, y, scores)
        if cfg.business is not None and cfg.task == "binary_classification":
            metrics["business_value"] = business_value(y, scores, cfg.business)["best_value"]
        return metrics

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
        return self.load(version)[1]

    def load(self, version: ModelVersion) -> tuple[ModelFile, Any]:
        """The version's model file, verified against its hash, and what scores with it
        (a Predictor, or a Recommender for recommendation models)."""
        from boite.registry.modelfile import read_model
        from boite.training.predictor import Predictor

        record = version.record
        path = self.ws.store.local_path(record.uri, record.content_hash, what=f"model {record.ref}")
        model_file = read_model(path, expected_sha256=record.content_hash)
        scorer = Predictor.from_parts(
            model_file.flavor,
            model_file.task,
            model_file.model,
            model_file.preprocessing,
            model_file.signature,
        )
        return model_file, scorer

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
        details: dict[str, Any] | None = None
        # A challenger is there to be measured against production on live traffic, so
        # it need not beat production first: only its thresholds and fairness limits
        # bar it (the beat-production verdict still goes on the record).
        fresh = self._rejudge(version) if to == "production" else None
        if fresh is not None:
            # the stored verdict was judged against a production that has gone: the
            # fresh one decides, and goes on the alias move (the version stays as it was)
            gates = fresh.gates
            details = fresh.details()
        elif to in GATED_ALIASES:
            details = {"gates": gates.to_dict()}
        blocking = [r for r in gates.failed if to == "production" or not is_production_gate(r)]
        if to in GATED_ALIASES and blocking:
            failed = "; ".join(r.message for r in blocking)
            if not force:
                moved = "" if fresh is None else f" ({fresh.why()})"
                raise RegistryError(
                    f"{version.ref} failed its gates, so it cannot become {to}: {failed}{moved}",
                    model_version=version.ref,
                    hint=(
                        "Train a better version"
                        if fresh is None
                        else f"Retrain {version.name} (it is then judged against "
                        f"{fresh.against}), train a better version"
                    )
                    + ", or pass --force with a --reason to overrule the gates (the override "
                    "is kept in the history).",
                )
            if not reason.strip():
                raise RegistryError("forcing past failed gates needs a reason", hint="--reason")
        return self.registry.move(
            version,
            to,
            actor=actor or _actor(),
            reason=reason,
            forced=force and to in GATED_ALIASES and bool(blocking),
            details=details,
        )

    def _rejudge(self, version: ModelVersion) -> Rejudged | None:
        """The version's gates judged again when production moved since it was trained;
        None when its stored verdict still holds (no beat-production gate, or the same
        production as then, or the version is production itself)."""
        from boite.training.metrics import DEFAULT_METRIC, DIRECTIONS

        stored = GateReport.from_dict(version.gates)
        meta = version.meta
        if not any(is_production_gate(r) for r in stored.results):
            return None
        if meta.get("task") == "clustering":
            return None  # segments of two clusterings are not comparable by row: never judged
        stale = (meta.get("production_baseline") or {}).get("version")
        current = self.registry.alias(version.name, "production")
        now = None if current is None else current.ref
        if now == stale or now == version.ref:
            return None
        name = version.name
        spec = self._recorded_spec(version)
        if spec is None or "beat_production_by" not in spec.gates:
            # the verdict names the gate, but the spec that set it is not on record
            unjudged = GateResult(
                next(r.gate for r in stored.results if is_production_gate(r)),
                False,
                f"production is now {now}, not {stale or 'none'} as when {version.ref} was "
                f"trained, and the spec {version.ref} was trained with is not on record, so "
                f"it cannot be judged again: retrain {name}",
            )
            return Rejudged(rejudge(stored, unjudged), now, stale, None)
        if spec.task == "recommendation":
            primary, higher = f"precision_at_{spec.k}", True  # as _train_recommender judges
        else:
            search = meta.get("search")
            primary = (search or {}).get("metric") or DEFAULT_METRIC[spec.task]
            higher = DIRECTIONS.get(primary, "maximize") == "maximize"
        gate = production_gate_name(spec, primary)
        assert gate is not None
        theirs: dict[str, float] | None = None
        result: GateResult | None
        if current is None:
            result = beat_production(spec, version.metrics, production=None, primary_metric=primary)
        elif spec.task == "recommendation":
            result = self._recommender_against(version, current, spec, gate, primary)
        else:
            result, theirs = self._against_on_test_rows(
                version, current, spec, gate, primary, higher
            )
        assert result is not None
        return Rejudged(rejudge(stored, result), now, stale, theirs)

    def _against_on_test_rows(
        self,
        version: ModelVersion,
        current: ModelVersion,
        spec: ModelConfig,
        gate: str,
        primary: str,
        higher: bool,
    ) -> tuple[GateResult, dict[str, float] | None]:
        """The beat-production gate with both models scored afresh on the version's own
        test rows; and production's metrics on them, when it could score them."""
        try:
            rows, y = self._test_rows(version, spec)
            mine = self._metrics_on(version, spec, rows, y)
            recorded = version.metrics.get(primary)
            again = mine.get(primary, np.nan)
            # the same rows give the same scores: a drift here means other rows
            if recorded is not None and not np.isclose(
                again, recorded, rtol=1e-6, atol=1e-9, equal_nan=True
            ):
                raise _NotRebuilt(
                    f"scored again on them, {version.ref} has {primary} {again:.6f}, not the "
                    f"{recorded:.6f} on record"
                )
        except _NotRebuilt as exc:
            return GateResult(
                gate,
                False,
                f"production is now {current.ref}, but the test rows of {version.ref} cannot "
                f"be rebuilt exactly from {version.meta.get('training_data')} ({exc}), so it "
                f"cannot be compared with {current.ref} on them: retrain {version.name} to "
                f"judge it against {current.ref}",
            ), None
        try:
            theirs = self._metrics_on(current, spec, rows, y)
        except TrainingError as exc:
            return GateResult(
                gate,
                False,
                f"production {current.ref} cannot score the test rows of {version.ref} "
                f"({exc.message}), so {version.ref} cannot be shown to beat it",
            ), None
        result = beat_production(
            spec,
            mine,
            production=(current.ref, theirs),
            primary_metric=primary,
            higher_is_better=higher,
        )
        assert result is not None
        return result, theirs

    def _recorded_spec(self, version: ModelVersion) -> ModelConfig | None:
        """The spec the version was trained with (the project's may have changed since)."""
        run_id = version.record.run_id
        if run_id is None:
            return None
        try:
            spec = self.ws.ledger.run(run_id).params.get("spec")
        except NotFoundError:
            return None
        if not isinstance(spec, dict):
            return None
        try:
            return ModelConfig.model_validate(spec)
        except ValueError:  # a spec of an older schema
            return None

    def _test_rows(self, version: ModelVersion, spec: ModelConfig) -> tuple[pd.DataFrame, Any]:
        """The version's held-out rows and their labels, split again from its recorded
        training data; ``_NotRebuilt`` when they are not exactly the rows it was tested on."""
        from boite.training.trainer import hold_out

        meta = version.meta
        source, label, split = meta.get("training_data"), meta.get("label"), meta.get("split")
        run_id = version.record.run_id
        inputs = self.ws.ledger.inputs_of(run_id) if run_id else []
        record = next((a for a in inputs if a.ref == source), None)
        if record is None or not label or not isinstance(split, dict):
            raise _NotRebuilt(f"its training data {source} is not on record as an input")
        try:
            frame = Dataset(record, self.ws.store, self.ws.ledger).to_pandas()
            time_column = split.get("column") if split.get("by") == "time" else None
            held = hold_out(version.name, spec, frame, label=label, time_column=time_column)
        except BoiteError as exc:
            raise _NotRebuilt(exc.message) from None
        keys = ["train_rows", "test_rows", "unlabelled_rows_dropped", "test_rows_sha256"]
        differ = [k for k in keys if k in split and held.split.get(k) != split[k]]
        if differ:
            raise _NotRebuilt(
                "split again, "
                + ", ".join(f"{k} is {held.split.get(k)} instead of {split[k]}" for k in differ)
            )
        return frame.iloc[held.test_index], held.y[held.test_mask]

    def _recommender_against(
        self,
        version: ModelVersion,
        current: ModelVersion,
        spec: ModelConfig,
        gate: str,
        primary: str,
    ) -> GateResult:
        """A recommender against production on the same held-out interactions, or a failed
        gate that says why they cannot be compared.

        Scoring production afresh on the candidate's held-out interactions would not be
        fair: a recommender leaves out what each user bought in its own training part, and
        production's training part may hold the candidate's test purchases (it cannot
        recommend them, or it learnt them). Only when both were trained on the same data
        with the same split are production's own stored metrics measured on the same
        held-out interactions, which is what training compares too.
        """
        meta, theirs = version.meta, current.meta
        same = meta.get("training_data") == theirs.get("training_data") and meta.get(
            "split"
        ) == theirs.get("split")
        if not same:
            return GateResult(
                gate,
                False,
                f"production is now {current.ref}, which was trained on "
                f"{theirs.get('training_data')} with another split than {version.ref} "
                f"({meta.get('training_data')}), so their held-out interactions differ and "
                f"the two cannot be compared: retrain {version.name} to judge it against "
                f"{current.ref}",
            )
        result = beat_production(
            spec,
            version.metrics,
            production=(current.ref, current.metrics),
            primary_metric=primary,
        )
        assert result is not None
        return result

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
