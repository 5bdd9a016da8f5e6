"""Integrations of EmotionAware with data platforms (Spark)."""
