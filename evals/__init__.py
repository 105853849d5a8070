"""FLAN evaluation: rank classification, generation, metrics, aggregation and reports.

Importing this package is cheap (no jax, no TensorFlow); import the modules you need:

    evals.metrics             compute_metrics(names, targets, predictions, options=None), primary_score
    evals.rank_classification RankExample, rank_examples (encode-once via model.score_options),
                              score_options_pairwise, load_rank_task
    evals.generation          GenExample, evaluate_generation (model.predict_batch), load_generation_task
    evals.aggregation         template mean / best template on validation / cluster average
    evals.report, evals.plots results.json, summary.md, PNGs
    evals.runner              evaluate(model, params, suite, cluster, ...) -> results dict
    python -m evals           evaluate a checkpoint on one cluster
"""
