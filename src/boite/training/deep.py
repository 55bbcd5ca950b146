"""Deep learning for tabular data: a PyTorch MLP (install the `deep` extra).

Inputs are the preprocessor's matrix, standardised with the training rows' mean
and scale (kept with the weights); categorical codes go through the same path.
The model file keeps only tensors (a state dict with the architecture beside
it), loaded with ``weights_only=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from boite.errors import TrainingError
from boite.training.algorithms import FitData, Progress

_DEFAULTS: dict[str, Any] = {
    "hidden": [64, 32],
    "dropout": 0.1,
    "epochs": 20,
    "batch_size": 512,
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "seed": 0,
}


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise TrainingError(
            "the torch_mlp algorithm needs PyTorch",
            hint="Install the extra: pip install 'boite[deep]' (or pip install torch).",
        ) from None
    return torch


def build_network(
    torch: Any, n_inputs: int, n_outputs: int, hidden: list[int], dropout: float
) -> Any:
    layers: list[Any] = []
    width = n_inputs
    for size in hidden:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
        width = size
    layers.append(torch.nn.Linear(width, n_outputs))
    return torch.nn.Sequential(*layers)


class TorchMLP:
    """An MLP fitted with Adam; the fitted value is a dict of tensors and settings."""

    name = "torch_mlp"
    flavor = "torch"
    handles_missing = False

    def fit(
        self,
        data: FitData,
        *,
        task: str,
        params: dict[str, Any],
        model: str,
        progress: Progress | None = None,
    ) -> Any:
        torch = _torch()
        unknown = set(params) - set(_DEFAULTS)
        if unknown:
            raise TrainingError(
                f"model '{model}': torch_mlp has no parameter(s) {', '.join(sorted(unknown))}",
                model=model,
                hint="It takes: " + ", ".join(_DEFAULTS) + ".",
            )
        if task not in ("binary_classification", "multiclass", "regression"):
            raise TrainingError(f"model '{model}': torch_mlp trains classifiers and regressors")
        settings = {**_DEFAULTS, **params}
        torch.manual_seed(int(settings["seed"]))
        mean = data.X.mean(axis=0)
        scale = data.X.std(axis=0)
        scale[scale == 0] = 1.0
        X = torch.tensor((data.X - mean) / scale, dtype=torch.float32)
        outputs = data.num_class if task == "multiclass" else 1
        net = build_network(
            torch,
            X.shape[1],
            int(outputs or 1),
            list(settings["hidden"]),
            float(settings["dropout"]),
        )
        if task == "multiclass":
            y = torch.tensor(data.y, dtype=torch.long)
            loss_fn = torch.nn.CrossEntropyLoss()
        elif task == "binary_classification":
            y = torch.tensor(data.y, dtype=torch.float32).unsqueeze(1)
            loss_fn = torch.nn.BCEWithLogitsLoss()
        else:
            y = torch.tensor(data.y, dtype=torch.float32).unsqueeze(1)
            loss_fn = torch.nn.MSELoss()
        optimiser = torch.optim.Adam(
            net.parameters(),
            lr=float(settings["learning_rate"]),
            weight_decay=float(settings["weight_decay"]),
        )
        generator = torch.Generator().manual_seed(int(settings["seed"]))
        batch = int(settings["batch_size"])
        net.train()
        for _ in range(int(settings["epochs"])):
            order = torch.randperm(len(X), generator=generator)
            for start in range(0, len(X), batch):
                index = order[start : start + batch]
                optimiser.zero_grad()
                loss = loss_fn(net(X[index]), y[index])
                loss.backward()
                optimiser.step()
        net.eval()
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        state["_mean"] = torch.tensor(mean, dtype=torch.float32)
        state["_scale"] = torch.tensor(scale, dtype=torch.float32)
        state["_hidden"] = torch.tensor(list(settings["hidden"]), dtype=torch.int64)
        state["_outputs"] = torch.tensor([int(outputs or 1)], dtype=torch.int64)
        return state

    def predict(self, fitted: Any, X: np.ndarray, *, task: str) -> np.ndarray:
        return predict_state(fitted, X, task=task)


def predict_state(state: dict[str, Any], X: np.ndarray, *, task: str) -> np.ndarray:
    """Scores from a saved state dict: the network is rebuilt from the shapes kept with it."""
    torch = _torch()
    hidden = [int(v) for v in state["_hidden"].tolist()]
    outputs = int(state["_outputs"][0])
    net = build_network(torch, X.shape[1], outputs, hidden, 0.0)
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("_")})
    net.eval()
    inputs = (X - state["_mean"].numpy()) / state["_scale"].numpy()
    with torch.no_grad():
        out = net(torch.tensor(np.nan_to_num(inputs), dtype=torch.float32))
    if task == "binary_classification":
        return torch.sigmoid(out).squeeze(1).numpy().astype(np.float64)
    if task == "multiclass":
        return torch.softmax(out, dim=1).numpy().astype(np.float64)
    return out.squeeze(1).numpy().astype(np.float64)
