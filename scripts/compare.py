from alseg.report import comparison_rows, plot_comparison, read_rows, write_rows
from alseg.steps import logged_step

with logged_step(snakemake.log[0]):
    curves = {name: read_rows(path) for name, path in zip(snakemake.params.experiments, snakemake.input)}
    write_rows(snakemake.output.table, comparison_rows(curves))
    plot_comparison(curves, snakemake.output.plot)
