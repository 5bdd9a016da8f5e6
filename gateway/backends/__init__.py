"""Inference backends behind one interface (base.py)."""
