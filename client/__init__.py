"""The EmotionAware client: the ``emotionaware-client`` command line (client/cli.py)."""
