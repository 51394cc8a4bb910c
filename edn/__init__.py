"""edn: Everybody Dance Now (Chan et al., ICCV 2019) as a reproducible pipeline.

Every stage is a function here and a subcommand of the ``edn`` CLI; the Snakemake
workflow in ``workflow/`` only wires paths between them. Importing this package
has no side effects and imports no heavy dependency.
"""

__version__ = "0.1.0"
