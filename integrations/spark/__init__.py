"""EmotionAware on Apache Spark: :func:`score` a DataFrame's texts, through the service or in the
executors, with the same answers (``pip install "emotionaware[spark]"``; see docs/spark.md)."""

from integrations.spark.frame import DEFAULT_PREFIX, RESULT_COLUMNS, result_schema, score

__all__ = ["DEFAULT_PREFIX", "RESULT_COLUMNS", "result_schema", "score"]
