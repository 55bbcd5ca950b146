"""The runner: executes the stale steps of a plan, in parallel where the graph allows.

Each executed step is a run in the ledger. Its output is written to a scratch
file, checked, moved into the artifact store under its hash, and only then
registered, in one transaction: a step killed at any point leaves the previous
version current, and the next run starts it again.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boite.core.artifacts import ArtifactStore
from boite.core.clock import Clock
from boite.core.datasets import DATASET, new_dataset
from boite.core.engine import DuckDBEngine, quote_literal
from boite.core.ledger import FAILED, SUCCEEDED, ArtifactRecord, Ledger, NewArtifact, Resources
from boite.core.metering import Meter
from boite.errors import BoiteError, CheckFailedError, InternalError
from boite.pipeline.featurestore import FeatureStore, history_hash
from boite.pipeline.plan import Plan, Step
from boite.pipeline.state import fingerprint, freshness
from boite.sources.files import HashCache, InputFile, resolve_files
from boite.sources.ingest import files_fingerprint, raw_file_artifacts

CHECK_REPORT = "check_report"

BUILT, UNCHANGED, UP_TO_DATE, FAILED_STATE, BLOCKED = (
    "built",
    "unchanged",
    "up to date",
    "failed",
    "blocked",
)


@dataclass
class StepOutcome:
    name: str
    kind: str
    state: str
    version: int | None = None
    rows: int | None = None
    wall_s: float | None = None
    run_id: str | None = None
    error: BoiteError | None = None
    detail: str = ""


@dataclass
class RunReport:
    outcomes: list[StepOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(o.state in (FAILED_STATE, BLOCKED) for o in self.outcomes)

    @property
    def executed(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.state in (BUILT, UNCHANGED, FAILED_STATE)]

    @property
    def failed(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.state == FAILED_STATE]

    def outcome(self, name: str) -> StepOutcome:
        return next(o for o in self.outcomes if o.name == name)


@dataclass
class Workspace:
    """What steps need from the project: where things are and the stores."""

    root: Path
    ledger: Ledger
    store: ArtifactStore
    engine: DuckDBEngine
    clock: Clock
    hashes: HashCache | None = None


ProgressHook = Callable[[str, StepOutcome | None], None]


class Runner:
    def __init__(
        self,
        ws: Workspace,
        plan: Plan,
        *,
        workers: int = 2,
        features: FeatureStore | None = None,
    ) -> None:
        self.ws = ws
        self.plan = plan
        self.workers = workers
        self.features = features

    def run(self, selection: list[str], *, on_progress: ProgressHook | None = None) -> RunReport:
        ledger = self.ws.ledger
        current = ledger.latest_artifacts(DATASET)
        last_ok = ledger.latest_runs(status=SUCCEEDED)
        outcomes: dict[str, StepOutcome] = {}
        pending = list(selection)
        running: dict[Future[StepOutcome], str] = {}
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="boite-step") as pool:
            while pending or running:
                for name in list(pending):
                    step = self.plan.steps[name]
                    deps = [d for d in step.inputs if d in selection]
                    bad = [
                        d
                        for d in deps
                        if outcomes.get(d) and outcomes[d].state in (FAILED_STATE, BLOCKED)
                    ]
                    if bad:
                        pending.remove(name)
                        outcomes[name] = StepOutcome(
                            name, step.kind, BLOCKED, detail=f"upstream {bad[0]} did not build"
                        )
                        if on_progress:
                            on_progress(name, outcomes[name])
                        continue
                    if all(d in outcomes for d in deps):
                        pending.remove(name)
                        inputs = {d: current[d] for d in step.inputs if d in current}
                        if on_progress:
                            on_progress(name, None)
                        future = pool.submit(
                            self._step, step, inputs, last_ok.get(name), current.get(name)
                        )
                        running[future] = name
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    outcome = future.result()
                    outcomes[name] = outcome
                    if outcome.state in (BUILT, UNCHANGED) and outcome.kind != "materialize":
                        current = {**current, name: ledger.artifact(DATASET, name)}
                    if on_progress:
                        on_progress(name, outcome)
        return RunReport([outcomes[n] for n in selection])

    # --- one step ----------------------------------------------------------

    def _step(
        self,
        step: Step,
        inputs: dict[str, ArtifactRecord],
        last_ok: Any,
        current: ArtifactRecord | None,
    ) -> StepOutcome:
        try:
            return self._step_inner(step, inputs, last_ok, current)
        except BoiteError as exc:
            return StepOutcome(step.name, step.kind, FAILED_STATE, error=exc, detail=exc.message)
        except Exception as exc:  # a fault of boite: keep the trace for the report
            error = InternalError(
                f"step '{step.name}' failed unexpectedly: {type(exc).__name__}: {exc}"
            )
            error.__cause__ = exc
            return StepOutcome(
                step.name, step.kind, FAILED_STATE, error=error, detail=error.message
            )

    def _step_inner(
        self,
        step: Step,
        inputs: dict[str, ArtifactRecord],
        last_ok: Any,
        current: ArtifactRecord | None,
    ) -> StepOutcome:
        ws = self.ws
        files: list[InputFile] = []
        file_hashes: dict[str, str] | None = None
        missing = [t for t in step.inputs if t not in inputs]
        if missing:
            return StepOutcome(
                step.name, step.kind, BLOCKED, detail=f"no version of {missing[0]} yet"
            )
        if step.kind == "materialize":
            return self._materialize(step, last_ok)
        if step.kind == "source" and step.source is not None and step.source.path is not None:
            files = resolve_files(step.name, step.source, ws.root, cache=ws.hashes)
            file_hashes = {f.relpath: f.sha256 for f in files}
        fp, parts = fingerprint(step, {t: a.content_hash for t, a in inputs.items()}, file_hashes)
        database_source = step.kind == "source" and file_hashes is None
        if not database_source:
            state = freshness(
                step,
                fp,
                parts,
                last_ok,
                current,
                output_exists=current is not None and ws.store.exists(current.uri),
            )
            if state.up_to_date and current is not None:
                return StepOutcome(
                    step.name, step.kind, UP_TO_DATE, version=current.version, rows=current.rows
                )

        params: dict[str, Any] = {"fingerprint_parts": parts}
        if files:
            params["files_fingerprint"] = files_fingerprint(step.code, files)
        run_id = ws.ledger.start_run(
            step.name,
            "ingest" if step.kind == "source" else "transform",
            params=params,
            code_fingerprint=step.code_fingerprint,
            fingerprint=fp,
        )
        out_path = ws.store.new_scratch_file(".parquet")
        meter = Meter()
        rows_in = sum(a.rows or 0 for a in inputs.values())
        bytes_in = sum(a.bytes or 0 for a in inputs.values()) + sum(f.size for f in files)
        try:
            with meter:
                new, report = self._build(step, inputs, files, out_path)
            resources = Resources(
                wall_s=meter.usage.wall_s,
                cpu_s=meter.usage.cpu_s,
                peak_rss_bytes=meter.usage.peak_rss_bytes,
                bytes_in=bytes_in,
                bytes_out=new.bytes if new else 0,
                rows_in=rows_in,
                rows_out=new.rows if new else 0,
            )
            if report is not None and not report.passed:
                stored_report = self._store_report(step, report)
                ws.ledger.finish_run(
                    run_id,
                    status=FAILED,
                    resources=resources,
                    error=report.summary(),
                    consumed=[a.id for a in inputs.values()],
                    produced=[stored_report],
                    params=params,
                )
                kept = (
                    f"the previous version {current.ref} stays current"
                    if current
                    else "no version is current yet"
                )
                n = len(report.failed)
                raise CheckFailedError(
                    step.name,
                    report,
                    f"{n} data check{'s' if n > 1 else ''} failed on '{step.name}'; {kept}, "
                    "and nothing downstream runs on this output",
                    hint=report.summary(),
                )
            assert new is not None
            params["output"] = new.content_hash
            if new.column_lineage:
                params["column_lineage"] = True
            records = ws.ledger.finish_run(
                run_id,
                status=SUCCEEDED,
                resources=resources,
                consumed=[a.id for a in inputs.values()],
                observed=raw_file_artifacts(files),
                produced=[new],
                params=params,
                metrics={"rows": float(new.rows or 0)},
            )
        except CheckFailedError:
            raise
        except BaseException as exc:
            message = (
                str(exc)
                if isinstance(exc, BoiteError)
                else "".join(traceback.format_exception_only(type(exc), exc)).strip()
            )
            ws.ledger.finish_run(
                run_id,
                status=FAILED,
                resources=Resources(wall_s=meter.usage.wall_s, cpu_s=meter.usage.cpu_s),
                error=message,
                params=params,
            )
            raise
        finally:
            out_path.unlink(missing_ok=True)
        record = records[0]
        unchanged = current is not None and record.id == current.id
        return StepOutcome(
            step.name,
            step.kind,
            UNCHANGED if unchanged else BUILT,
            version=record.version,
            rows=record.rows,
            wall_s=meter.usage.wall_s,
            run_id=run_id,
        )

    def _materialize(self, step: Step, last_ok: Any) -> StepOutcome:
        """Bring a view's online values up to date with its offline history."""
        assert self.features is not None and step.view is not None and step.view_config is not None
        fs = self.features
        records = fs.history_records(step.view, step.view_config.source)
        fp, parts = fingerprint(step, {r.kind + ":" + r.ref: r.content_hash for r in records})
        state = fs.online.state(step.view)
        done = history_hash(records)
        fresh = last_ok is not None and last_ok.fingerprint == fp
        if fresh and state is not None and state.source_hash == done:
            return StepOutcome(step.name, step.kind, UP_TO_DATE, rows=state.rows)
        meter = Meter()
        with meter:
            result, run_id = fs.materialize_on_record(
                step.view,
                step=step.name,
                fingerprint=fp,
                params={"fingerprint_parts": parts},
                code_fingerprint=step.code_fingerprint,
            )
        return StepOutcome(
            step.name,
            step.kind,
            BUILT,
            rows=result.rows_written,
            wall_s=meter.usage.wall_s,
            run_id=run_id,
            detail=f"{result.rows_written:,} entities updated",
        )

    def _build(
        self,
        step: Step,
        inputs: dict[str, ArtifactRecord],
        files: list[InputFile],
        out_path: Path,
    ) -> tuple[NewArtifact | None, Any]:
        # The engine, the readers and sqlglot load here, when a step really runs:
        # a no-op run never pays for them.
        from boite.sources.readers import read_source
        from boite.transforms.checks import run_checks
        from boite.transforms.execute import run_python, run_sql
        from boite.transforms.sql import column_lineage, parse_sql

        ws = self.ws
        con = ws.engine.connect()
        try:
            paths = {
                t: ws.store.local_path(a.uri, a.content_hash, what=f"dataset {a.ref}")
                for t, a in inputs.items()
            }
            meta: dict[str, Any] = {"step": step.kind}
            if step.kind == "source":
                assert step.source is not None
                snapshot = read_source(
                    con, step.name, step.source, ws.root, out_path, files or None
                )
                meta["origin"] = snapshot.origin
                schema = _parquet_schema(con, out_path)
            elif step.kind == "sql":
                assert step.sql is not None and step.file is not None
                schema = run_sql(con, step.code, file=step.file, inputs=paths, out_path=out_path)
            else:
                assert step.python is not None and step.file is not None
                schema = run_python(
                    con, ws.root / step.file, step.python, inputs=paths, out_path=out_path
                )
            report = None
            checks = step.transform.checks if step.transform is not None else []
            if checks:
                relation = f"read_parquet({quote_literal(str(out_path))})"
                report = run_checks(con, relation, checks, step=step.name, now=ws.clock.now())
                if not report.passed:
                    return None, report
        finally:
            con.close()
        lineage: dict[str, list[tuple[str, str]]] = {}
        if step.sql is not None and step.file is not None:
            schemas = {t: dict(a.schema or {}) for t, a in inputs.items()}
            parsed = (
                step.sql
                if step.sql.expression is not None
                else parse_sql(step.code, file=step.file)
            )
            traced = column_lineage(parsed, schemas)
            # sqlglot names unaliased expressions _col_N; the output's order is the
            # query's, so the real column names are taken by position.
            if len(traced) == len(schema):
                lineage = dict(zip(schema, traced.values(), strict=True))
            else:
                lineage = {k: v for k, v in traced.items() if k in schema}
        stored = ws.store.put_file(out_path, suffix=".parquet")
        path = ws.store.local_path(stored.uri, stored.sha256)
        new = new_dataset(
            step.name,
            stored,
            path,
            schema,
            as_of=ws.clock.fixed,
            column_lineage=lineage,
            meta=meta,
        )
        return new, report

    def _store_report(self, step: Step, report: Any) -> NewArtifact:
        path = self.ws.store.new_scratch_file(".json")
        path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
        stored = self.ws.store.put_file(path, suffix=".json")
        return NewArtifact(
            kind=CHECK_REPORT,
            name=step.name,
            content_hash=stored.sha256,
            uri=stored.uri,
            format="json",
            bytes=stored.size,
            meta={"failed": [r.kind for r in report.failed]},
        )


def _parquet_schema(con: Any, path: Path) -> dict[str, str]:
    rel = con.read_parquet(str(path))
    return {name: str(kind) for name, kind in zip(rel.columns, rel.types, strict=True)}
