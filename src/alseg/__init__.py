"""alseg: active learning for semantic segmentation as a Snakemake workflow."""

__version__ = "0.2.0"
