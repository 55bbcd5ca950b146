"""The BentoML peer of benchmarks/serving.py: a service predicting with the Booster.

It runs in benchmarks/.venv-bentoml (see BENTOML.md); the driver starts it as

    BENCH_MODEL=model.txt bentoml serve serving_bento:LightGBMService \
        --working-dir benchmarks --host 127.0.0.1 --port PORT

and POSTs {"inputs": [[20 floats]]} to /predict (the features inline). One
worker, like every other server of the benchmark. (No `from __future__ import
annotations`: BentoML reads the annotations to build the API's schema.)
"""

import os

import bentoml
import lightgbm as lgb
import numpy as np


@bentoml.service(workers=1, traffic={"timeout": 30})
class LightGBMService:
    def __init__(self) -> None:
        self.booster = lgb.Booster(model_file=os.environ["BENCH_MODEL"])

    @bentoml.api
    def predict(self, inputs: list[list[float]]) -> list[float]:
        rows = np.asarray(inputs, dtype=np.float64)
        return self.booster.predict(rows, num_threads=1).tolist()
