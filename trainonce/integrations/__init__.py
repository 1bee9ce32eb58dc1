"""Training-framework integrations: ``huggingface`` (``transformers.Trainer``) and ``lightning``.

Nothing is imported here: each module needs its framework, an optional dependency, so import
the one you use (``from trainonce.integrations.huggingface import PruningCallback``).
"""
