"""Stage 4, labels (``workflow/rules/labels.smk``): stick figures drawn from the
pose table, and the window that follows the person.

``render``: drawing. ``label_store``: ``labels.npy`` and ``index.csv``.
``person_window``: the window. ``preview``: comparison figures.
"""
