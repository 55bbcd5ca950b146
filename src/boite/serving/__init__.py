"""Serving: the REST server (Open Inference Protocol v2 and a simple JSON endpoint),
champion/challenger routing and shadow scoring, the prediction log, batch scoring
and feedback.

This package loads no model itself: a ``Loader`` (given by the pipeline, which
knows the training code) turns a registered model version into a
:class:`~boite.serving.model.ServedModel`, so that serving depends only on the
core, the feature store and the registry.
"""
