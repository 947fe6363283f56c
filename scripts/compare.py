from alseg.atomic import write_text_atomic
from alseg.joblog import logged_step
from alseg.report import (
    comparison_round_rows,
    comparison_rows,
    dataset_tables,
    markdown_by_dataset,
    plot_axis,
    plot_comparison,
    read_rows,
    write_rows,
)

# Per dataset: the per-round and per-class tables and the figures' rows (docstring of alseg.report).
with logged_step(snakemake.log[0]):
    params = snakemake.params
    curves = {name: read_rows(path) for name, path in zip(params.experiments, snakemake.input)}
    write_rows(snakemake.output.table, comparison_rows(curves, params.datasets))
    plot_comparison(curves, snakemake.output.plot, params.groups, params.references, params.datasets)
    tables = dataset_tables(curves, params.groups, params.references, params.datasets)
    write_rows(snakemake.output.rounds, comparison_round_rows(tables))
    for (_, classes), out in zip(tables.values(), snakemake.output.classes):
        write_rows(out, classes)
    write_text_atomic(snakemake.output.summary, markdown_by_dataset(tables))
    for axis, out in zip(params.axes, snakemake.output.axes):
        plot_axis(curves, axis, out, params.groups, params.references, params.datasets)
