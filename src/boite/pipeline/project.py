"""The Project: the one object a notebook or the CLI needs.

project = boite.open_project("my-product")
project.run()
project.status()
project.dataset("customer_daily").to_pandas()
project.lineage("customer_activity", direction="upstream")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from boite.core.artifacts import ArtifactStore
from boite.core.clock import Clock
from boite.core.config import CONFIG_FILE, STATE_DIR, ProjectConfig, load_config
from boite.core.datasets import DATASET, Dataset
from boite.core.engine import DuckDBEngine
from boite.core.ledger import FAILED, INTERRUPTED, SUCCEEDED, Ledger, RunRecord
from boite.core.lock import ProjectLock
from boite.core.suggest import did_you_mean
from boite.errors import FeatureError, NotFoundError, ProjectError, UserError
from boite.features.materialize import Materialized
from boite.features.reader import OnlineFeatures
from boite.features.views import FeatureView
from boite.lineage.graph import LineageGraph, lineage_graph
from boite.pipeline.featurestore import TRAINING_SET, FeatureStore, PushResult, history_hash
from boite.pipeline.modeling import Comparison, Models, TrainResult
from boite.pipeline.plan import MATERIALIZE, ParseCache, Plan, Step, build_plan
from boite.pipeline.runner import ProgressHook, Runner, RunReport, Workspace
from boite.pipeline.state import fingerprint, freshness
from boite.registry.registry import AliasEvent, ModelVersion
from boite.sources.files import HashCache, resolve_files

if TYPE_CHECKING:
    import pandas as pd


def find_root(start: Path) -> Path:
    """The folder holding boite.yaml: ``start`` or the nearest parent that has one."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ProjectError(
        f"no {CONFIG_FILE} in {start} or any folder above it",
        hint="Run this inside a boite project, pass --project PATH, "
        "or create one with `boite init NAME`.",
    )


def open_project(path: str | Path = ".", *, clock: Clock | None = None) -> Project:
    """Open the project at ``path`` (or the nearest folder above it with a boite.yaml)."""
    return Project(find_root(Path(path)), clock=clock)


@dataclass(frozen=True)
class StepStatus:
    name: str
    kind: str
    state: str  # 'up to date', 'stale', 'failed', 'never built'
    reason: str
    version: int | None
    last_run: RunRecord | None


class Project:
    """A boite project: its configuration, its plan, and the stores under .boite/."""

    def __init__(self, root: Path, *, clock: Clock | None = None) -> None:
        self.root = Path(root).resolve()
        self.config_path = self.root / CONFIG_FILE
        self.config: ProjectConfig = load_config(self.config_path)
        self.clock = clock or Clock(self.config.now)
        self.state_dir = self.root / STATE_DIR

    def __repr__(self) -> str:
        return f"<Project {self.config.name!r} at {self.root}>"

    @property
    def name(self) -> str:
        return self.config.name

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.config.stores.ledger, root=self.root)

    @cached_property
    def store(self) -> ArtifactStore:
        return ArtifactStore(
            self.config.stores.artifacts, root=self.root, scratch=self.state_dir / "tmp"
        )

    @cached_property
    def engine(self) -> DuckDBEngine:
        return DuckDBEngine(temp_dir=self.state_dir / "spill")

    def plan(self) -> Plan:
        """Every step with its inputs, checked (missing tables, cycles) without running anything."""
        cache = ParseCache(self.state_dir / "cache" / "sql-tables.json")
        return build_plan(self.root, self.config, config_file=str(self.config_path), cache=cache)

    def run(
        self,
        steps: list[str] | None = None,
        *,
        wait: bool = False,
        workers: int | None = None,
        on_progress: ProgressHook | None = None,
    ) -> RunReport:
        """Run the stale steps (of ``steps`` and what they need, or of all)."""
        plan = self.plan()
        selection = plan.select(steps)
        with ProjectLock(self.state_dir / "run.lock", wait=wait):
            # We hold the lock: anything still marked running was killed.
            self.ledger.interrupt_stale_runs()
            self.store.clear_scratch()
            runner = Runner(
                self._workspace(),
                plan,
                workers=workers or self.config.run.workers,
                features=self.features,
            )
            try:
                return runner.run(selection, on_progress=on_progress)
            finally:
                self.hashes.save()

    @cached_property
    def _ws(self) -> Workspace:
        return Workspace(
            root=self.root,
            ledger=self.ledger,
            store=self.store,
            engine=self.engine,
            clock=self.clock,
            hashes=self.hashes,
        )

    @cached_property
    def hashes(self) -> HashCache:
        return HashCache(self.state_dir / "cache" / "file-hashes.json")

    def _workspace(self) -> Workspace:
        return self._ws

    @cached_property
    def features(self) -> FeatureStore:
        """The feature store: views, training sets, online reads, pushes, the library."""
        return FeatureStore(self._ws, self.config)

    @cached_property
    def models(self) -> Models:
        """Training, the registry and its aliases."""
        return Models(self._ws, dict(self.config.models), self.features)

    def train(self, name: str, *, trials: int | None = None) -> TrainResult:
        """Train (and tune) a model spec, register NAME@N and judge its gates."""
        with ProjectLock(self.state_dir / "train.lock", wait=True):
            return self.models.train(name, trials=trials)

    def model(self, ref: str) -> ModelVersion:
        """A model version: 'name@3', or 'name' for the newest."""
        return self.models.registry.get(ref)

    def trials(self, model: str) -> pd.DataFrame:
        """The search trials of a model as a DataFrame (parameters, value, state, time)."""
        return self.models.trials(model)

    def compare(self, *refs: str) -> Comparison:
        """Versions side by side: ``.to_pandas()``, or ``.plot()`` for a figure."""
        return self.models.compare(list(refs))

    def promote(self, ref: str, *, to: str, reason: str, force: bool = False) -> AliasEvent:
        """Point an alias (staging, production, challenger) at a version, if its gates allow."""
        return self.models.promote(ref, to=to, reason=reason, force=force)

    def rollback(self, name: str, *, alias: str = "production", reason: str = "") -> AliasEvent:
        """Move an alias back to the version it pointed at before."""
        return self.models.rollback(name, alias=alias, reason=reason)

    def feature_views(self) -> dict[str, FeatureView]:
        """Every feature view, resolved on the current version of its dataset."""
        return self.features.views()

    def training_set(
        self,
        labels: Any,
        features: Sequence[str],
        *,
        timestamp: str | None = None,
        name: str | None = None,
        full_names: bool = False,
    ) -> Dataset:
        """Labels joined point-in-time-correctly to features, recorded as an artifact.

        ``labels`` is a dataset name (``"repurchase_labels"`` or ``"name@3"``), a
        :class:`Dataset`, a pandas DataFrame, a pyarrow Table or a list of dicts; it
        needs the entity columns of every view asked for and a time column
        (``timestamp``, found by itself when there is exactly one).
        """
        return self.features.training_set(
            labels, features, timestamp=timestamp, name=name, full_names=full_names
        )

    def online_features(
        self, features: Sequence[str], entities: Sequence[Mapping[str, Any]]
    ) -> OnlineFeatures:
        """The newest values of ``features`` for each entity, from the online store."""
        return self.features.online_features(features, entities)

    def push(self, view: str, rows: Any) -> PushResult:
        """Add rows to a feature view: online at once, and to its offline history."""
        return self.features.push(view, rows)

    def materialize(
        self, views: Sequence[str] | None = None, *, full: bool = False
    ) -> list[Materialized]:
        """Bring the online store up to date now (``full`` rebuilds from all history)."""
        online = [n for n, c in self.config.feature_views.items() if c.online]
        names = list(views) if views else online
        for name in names:
            if name not in self.config.feature_views:
                known = list(self.config.feature_views)
                raise NotFoundError(
                    "feature view", name, suggestion=did_you_mean(name, known), known=known
                )
            if name not in online:
                raise FeatureError(
                    f"feature view '{name}' is offline only (online: false): there is nothing "
                    "to materialize",
                    view=name,
                    hint="Set 'online: true' on it to serve its features online.",
                )
        plan = self.plan()
        out = []
        with ProjectLock(self.state_dir / "run.lock", wait=True):
            for name in names:
                # recorded as the pipeline's own step, so `boite run` sees it done
                step = plan.steps[MATERIALIZE + name]
                records = self.features.history_records(
                    name, self.config.feature_views[name].source
                )
                fp, parts = fingerprint(
                    step, {r.kind + ":" + r.ref: r.content_hash for r in records}
                )
                result, _ = self.features.materialize_on_record(
                    name,
                    full=full,
                    step=step.name,
                    fingerprint=fp,
                    params={"fingerprint_parts": parts},
                    code_fingerprint=step.code_fingerprint,
                )
                out.append(result)
        return out

    def status(self) -> list[StepStatus]:
        """What is up to date, stale or failed, and why, without running anything."""
        plan = self.plan()
        current = self.ledger.latest_artifacts(DATASET)
        last_ok = self.ledger.latest_runs(status=SUCCEEDED)
        last_any = self.ledger.latest_runs()
        out: dict[str, StepStatus] = {}
        for name in plan.order:
            step = plan.steps[name]
            latest = last_any.get(name)
            cur = current.get(name)
            version = cur.version if cur else None
            waiting = [t for t in step.inputs if out[t].state != "up to date"]
            if waiting:
                out[name] = StepStatus(
                    name, step.kind, "stale", f"waits on {', '.join(waiting)}", version, latest
                )
                continue
            if step.kind == "materialize" and step.view and step.view_config:
                out[name] = self._materialize_status(step, last_ok.get(name), latest)
                continue
            files = None
            if step.kind == "source" and step.source is not None:
                if step.source.path is None:
                    state = "up to date" if cur else "never built"
                    reason = "a database: re-read on every run" if cur else "never built"
                    out[name] = StepStatus(name, step.kind, state, reason, version, latest)
                    continue
                try:
                    found = resolve_files(name, step.source, self.root, cache=self.hashes)
                    files = {f.relpath: f.sha256 for f in found}
                except ProjectError:
                    raise
                except Exception as exc:  # shown as the step's state, not raised
                    out[name] = StepStatus(
                        name, step.kind, "failed", str(exc).splitlines()[0], version, latest
                    )
                    continue
            inputs = {t: current[t].content_hash for t in step.inputs if t in current}
            fp, parts = fingerprint(step, inputs, files)
            fresh = freshness(
                step,
                fp,
                parts,
                last_ok.get(name),
                cur,
                output_exists=cur is not None and self.store.exists(cur.uri),
                versions=current,
            )
            failed_here = (
                latest is not None
                and latest.status in (FAILED, INTERRUPTED)
                and latest.fingerprint == fp
            )
            if fresh.up_to_date:
                state = "up to date"
            elif failed_here and latest is not None:
                reason = (latest.error or latest.status).strip().splitlines()[0]
                out[name] = StepStatus(name, step.kind, "failed", reason, version, latest)
                continue
            elif cur is None:
                state = "never built"
            else:
                state = "stale"
            out[name] = StepStatus(name, step.kind, state, fresh.reason, version, latest)
        self.hashes.save()
        return list(out.values())

    def _materialize_status(
        self, step: Step, last_ok: RunRecord | None, latest: RunRecord | None
    ) -> StepStatus:
        assert step.view is not None and step.view_config is not None
        records = self.features.history_records(step.view, step.view_config.source)
        fp, _ = fingerprint(step, {r.kind + ":" + r.ref: r.content_hash for r in records})
        state = self.features.online.state(step.view)
        if state is None or last_ok is None:
            if latest is not None and latest.status == FAILED and latest.fingerprint == fp:
                reason = (latest.error or "").strip().splitlines()[0]
                return StepStatus(step.name, step.kind, "failed", reason, None, latest)
            return StepStatus(
                step.name, step.kind, "never built", "never materialized", None, latest
            )
        if last_ok.fingerprint == fp and state.source_hash == history_hash(records):
            return StepStatus(step.name, step.kind, "up to date", "", None, latest)
        if latest is not None and latest.status == FAILED and latest.fingerprint == fp:
            reason = (latest.error or "").strip().splitlines()[0]
            return StepStatus(step.name, step.kind, "failed", reason, None, latest)
        return StepStatus(
            step.name, step.kind, "stale", "new offline data or view settings", None, latest
        )

    def dataset(self, name: str, version: int | None = None, *, kind: str | None = None) -> Dataset:
        """A dataset version (the newest when ``version`` is None).

        ``kind`` is 'dataset' (tables of the pipeline), 'training_set' or 'labels';
        when it is not given, a name that is no dataset is looked up as a training set.
        """
        if version is None and "@" in name:
            name, _, text = name.partition("@")
            if not text.isdigit():
                raise UserError(
                    f"'{name}@{text}' is not a dataset version",
                    hint="Write NAME for the newest version or NAME@N (N a number) for one.",
                )
            version = int(text)
        if (
            kind is None
            and name not in self.ledger.latest_artifacts(DATASET)
            and name in self.ledger.latest_artifacts(TRAINING_SET)
        ):
            kind = TRAINING_SET
        record = self.ledger.artifact(kind or DATASET, name, version)
        return Dataset(record, self.store, self.ledger)

    def training_sets(self) -> list[Dataset]:
        """The newest version of every training set on record."""
        return [
            Dataset(r, self.store, self.ledger)
            for _, r in sorted(self.ledger.latest_artifacts(TRAINING_SET).items())
        ]

    def datasets(self) -> list[Dataset]:
        return [
            Dataset(r, self.store, self.ledger)
            for _, r in sorted(self.ledger.latest_artifacts(DATASET).items())
        ]

    def runs(self, step: str | None = None, *, limit: int | None = None) -> pd.DataFrame:
        """The runs on record, newest first, as a DataFrame."""
        import pandas as pd

        rows = [r.__dict__ for r in self.ledger.runs(step=step, limit=limit)]
        return pd.DataFrame(rows)

    def lineage(
        self, name: str, *, direction: Literal["upstream", "downstream"] = "upstream"
    ) -> LineageGraph:
        """The chain of runs and artifact versions behind (or built from) a dataset."""
        dataset = self.dataset(name)
        return lineage_graph(self.ledger, dataset.record, direction=direction)

    def close(self) -> None:
        if "features" in self.__dict__ and "online" in self.features.__dict__:
            self.features.online.close()
        if "ledger" in self.__dict__:
            self.ledger.close()
