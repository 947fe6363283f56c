from alseg.joblog import logged_step
from alseg.report import read_rows, write_comparison

# Per dataset: the per-round and per-class tables and the figures' rows (docstring of alseg.report).
with logged_step(snakemake.log[0]):
    params = snakemake.params
    curves = {name: read_rows(path) for name, path in zip(params.experiments, snakemake.input)}
    write_comparison(curves, params.files, params.groups, params.references, params.datasets)
