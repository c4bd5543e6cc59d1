"""The built-in architectures: one module per network family.

Every module here is an architecture module: it defines ``ARCHITECTURE = Architecture(...)`` (or a
list ``ARCHITECTURES``) and ``MODELS = [ModelEntry(...), ...]``, and the registry finds it by
scanning this folder. CONTRIBUTING.md has the checklist for adding one.
"""
