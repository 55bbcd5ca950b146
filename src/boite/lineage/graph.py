"""Lineage graphs from the ledger: which runs and artifact versions led to an artifact.

The graph follows data flow (input -> run -> output) whichever way it was walked,
and renders as text, JSON or Graphviz dot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from boite.core.ledger import SUCCEEDED, ArtifactRecord, Ledger, RunRecord

Direction = Literal["upstream", "downstream"]


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # an artifact kind ('dataset', 'file', ...) or 'run'
    label: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class LineageGraph:
    root: str
    direction: Direction
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "direction": self.direction,
            "nodes": [
                {"id": n.id, "kind": n.kind, "label": n.label, **n.detail}
                for n in self.nodes.values()
            ],
            "edges": [{"from": a, "to": b} for a, b in self.edges],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_dot(self) -> str:
        shapes = {"run": "box", "file": "note", "dataset": "cylinder"}
        lines = ["digraph lineage {", "  rankdir=LR;"]
        for node in self.nodes.values():
            shape = shapes.get(node.kind, "ellipse")
            label = node.label.replace('"', '\\"')
            lines.append(f'  "{node.id}" [label="{label}", shape={shape}];')
        for a, b in self.edges:
            lines.append(f'  "{a}" -> "{b}";')
        lines.append("}")
        return "\n".join(lines)

    def to_text(self) -> str:
        """A tree from the root: upstream lists what each node came from, downstream what it fed."""
        children: dict[str, list[str]] = {}
        for a, b in self.edges:
            parent, child = (b, a) if self.direction == "upstream" else (a, b)
            children.setdefault(parent, []).append(child)
        lines = [self._line(self.root)]
        seen: set[str] = {self.root}

        def walk(node_id: str, prefix: str) -> None:
            kids = children.get(node_id, [])
            for i, kid in enumerate(kids):
                last = i == len(kids) - 1
                branch = "└── " if last else "├── "
                again = kid in seen
                lines.append(
                    prefix + branch + self._line(kid) + ("  (shown above)" if again else "")
                )
                if not again:
                    seen.add(kid)
                    walk(kid, prefix + ("    " if last else "│   "))

        walk(self.root, "")
        return "\n".join(lines)

    def _line(self, node_id: str) -> str:
        node = self.nodes[node_id]
        if node.kind == "run":
            when = node.detail.get("started_at", "")
            return f"run {node.label} [{node.detail.get('run_kind')}] {when}"
        extra = ""
        if node.detail.get("rows") is not None:
            extra = f", {node.detail['rows']:,} rows"
        return f"{node.kind} {node.label} (sha256 {node.detail.get('hash', '')[:12]}{extra})"


def _artifact_node(a: ArtifactRecord) -> Node:
    return Node(
        id=a.id,
        kind=a.kind,
        label=a.ref,
        detail={"name": a.name, "version": a.version, "hash": a.content_hash, "rows": a.rows},
    )


def _run_node(r: RunRecord) -> Node:
    return Node(
        id=r.id,
        kind="run",
        label=f"{r.step} {r.id[:8]}",
        detail={
            "step": r.step,
            "run_kind": r.kind,
            "status": r.status,
            "started_at": r.started_at.isoformat(timespec="seconds"),
            "code_fingerprint": r.code_fingerprint,
        },
    )


def lineage_graph(
    ledger: Ledger, artifact: ArtifactRecord, *, direction: Direction, max_depth: int = 100
) -> LineageGraph:
    graph = LineageGraph(root=artifact.id, direction=direction)
    graph.nodes[artifact.id] = _artifact_node(artifact)
    frontier = [(artifact, 0)]
    visited = {artifact.id}
    while frontier:
        current, depth = frontier.pop()
        if depth >= max_depth:
            continue
        if direction == "upstream":
            producers = [r for r in ledger.producers_of(current.id) if r.status == SUCCEEDED]
            if not producers:
                continue
            run = producers[0]  # the run that made the current state of this version
            graph.nodes.setdefault(run.id, _run_node(run))
            graph.edges.append((run.id, current.id))
            for source in ledger.inputs_of(run.id):
                graph.nodes.setdefault(source.id, _artifact_node(source))
                graph.edges.append((source.id, run.id))
                if source.id not in visited:
                    visited.add(source.id)
                    frontier.append((source, depth + 1))
        else:
            consumers = [r for r in ledger.consumers_of(current.id) if r.status == SUCCEEDED]
            for run in consumers:
                graph.nodes.setdefault(run.id, _run_node(run))
                graph.edges.append((current.id, run.id))
                for out in ledger.outputs_of(run.id):
                    graph.nodes.setdefault(out.id, _artifact_node(out))
                    graph.edges.append((run.id, out.id))
                    if out.id not in visited:
                        visited.add(out.id)
                        frontier.append((out, depth + 1))
    graph.edges = list(dict.fromkeys(graph.edges))
    return graph
