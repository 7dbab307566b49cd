"""Procedural visual questions with exact answers, one module per family (see `registry`)."""
from syngrpo_jax.data.qa.registry import (DIFFICULTIES, FAMILIES, QA_CATEGORIES, Family, QAExample, family,
                                          generate_qa, render_scene, sample_scene)

__all__ = ["DIFFICULTIES", "FAMILIES", "QA_CATEGORIES", "Family", "QAExample", "family", "generate_qa",
           "render_scene", "sample_scene"]
