"""The peer servers and peer-side helpers of benchmarks/serving.py (not a benchmark of its own).

It runs in whichever virtual environment the peer needs; the driver starts it:

    const        (project venv) uvicorn serving a bare ASGI app that answers every
                 request with a constant JSON body: the floor of any Python
                 HTTP endpoint (uvloop, httptools, no access log)
    const-fastapi
                 (project venv) the same constant as a FastAPI route taking the
                 body as a dict: the floor of a framework-based endpoint
    booster      (project venv) the bare ASGI app again, which parses
                 {"inputs": [[20 floats]]} with orjson and answers
                 {"predictions": [p]} from lightgbm.Booster.predict(num_threads=1)
    mlflow-save  (benchmarks/.venv-mlflow) mlflow.lightgbm.save_model of the Booster,
                 with a signature and an input example (the 20 feature columns)
    pyfunc-bench (benchmarks/.venv-mlflow) in-process timing of
                 mlflow.pyfunc.load_model(DIR).predict(one-row DataFrame)

MLflow's own server is `mlflow models serve` and BentoML's is
`bentoml serve serving_bento:LightGBMService` (benchmarks/serving_bento.py);
the driver starts both directly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

CONSTANT = b'{"predictions":[0.5]}'
JSON_HEADERS = [(b"content-type", b"application/json")]


async def read_body(receive) -> bytes:  # type: ignore[no-untyped-def]
    body = b""
    more = True
    while more:  # bounded by the request: ASGI sends more_body=False on its last chunk
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


def const_app():  # type: ignore[no-untyped-def]
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": CONSTANT})

    return app


def const_fastapi_app():  # type: ignore[no-untyped-def]
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict) -> dict:  # type: ignore[type-arg]
        return {"predictions": [0.5]}

    return app


def booster_app(model: Path):  # type: ignore[no-untyped-def]
    import lightgbm as lgb
    import numpy as np
    import orjson

    booster = lgb.Booster(model_file=str(model))
    width = booster.num_feature()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        try:
            rows = np.asarray(orjson.loads(body)["inputs"], dtype=np.float64)
            if rows.ndim != 2 or rows.shape[1] != width:
                raise ValueError(f"inputs must be rows of {width} numbers")
        except (ValueError, KeyError, TypeError) as exc:
            out = orjson.dumps({"error": str(exc)})
            await send({"type": "http.response.start", "status": 400, "headers": JSON_HEADERS})
            await send({"type": "http.response.body", "body": out})
            return
        scores = booster.predict(rows, num_threads=1)
        out = orjson.dumps({"predictions": scores.tolist()})
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": out})

    return app


def serve(app, port: int) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def mlflow_save(model: Path, out: Path, columns: list[str]) -> None:
    import lightgbm as lgb
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    booster = lgb.Booster(model_file=str(model))
    example = pd.DataFrame(np.zeros((1, len(columns))), columns=columns)
    signature = infer_signature(example, booster.predict(example))
    mlflow.lightgbm.save_model(booster, str(out), signature=signature, input_example=example)
    print(json.dumps({"saved": str(out), "mlflow": mlflow.__version__}))


def pyfunc_bench(model_dir: Path, row: list[float], columns: list[str], n: int) -> None:
    """Median µs of pyfunc predict on one row, as shipped and with OpenMP at one thread.

    MLflow's LightGBM flavour passes the DataFrame to Booster.predict with
    LightGBM's default threads; on a loaded machine its OpenMP region waits for
    a second thread to be scheduled (~13 ms here against 0.3 ms at one thread).
    """
    import lightgbm as lgb
    import mlflow
    import pandas as pd
    from threadpoolctl import threadpool_limits

    model = mlflow.pyfunc.load_model(str(model_dir))
    frame = pd.DataFrame([row], columns=columns)

    def timed() -> tuple[int, float]:
        model.predict(frame)  # the first call builds caches
        times = []
        deadline = time.perf_counter() + 8.0
        for _ in range(n):  # bounded by n and the deadline
            start = time.perf_counter()
            model.predict(frame)
            times.append(time.perf_counter() - start)
            if time.perf_counter() > deadline:
                break
        return len(times), statistics.median(times) * 1e6

    calls, median_us = timed()
    with threadpool_limits(limits=1, user_api="openmp"):
        calls_1, median_1 = timed()
    print(
        json.dumps(
            {
                "calls": calls,
                "median_us": median_us,
                "calls_omp1": calls_1,
                "median_us_omp1": median_1,
                "mlflow": mlflow.__version__,
                "lightgbm": lgb.__version__,
                "pandas": pd.__version__,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", choices=["const", "const-fastapi", "booster", "mlflow-save", "pyfunc-bench"]
    )
    parser.add_argument("--port", type=int)
    parser.add_argument("--model", type=Path, help="the LightGBM text model")
    parser.add_argument("--out", type=Path, help="mlflow-save: the model folder to write")
    parser.add_argument("--model-dir", type=Path, help="pyfunc-bench: the MLflow model folder")
    parser.add_argument("--columns", help="comma-separated feature names")
    parser.add_argument("--row", help="pyfunc-bench: the row, a JSON list")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    if args.what == "const":
        serve(const_app(), args.port)
    elif args.what == "const-fastapi":
        serve(const_fastapi_app(), args.port)
    elif args.what == "booster":
        serve(booster_app(args.model), args.port)
    elif args.what == "mlflow-save":
        mlflow_save(args.model, args.out, args.columns.split(","))
    else:
        pyfunc_bench(args.model_dir, json.loads(args.row), args.columns.split(","), args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
