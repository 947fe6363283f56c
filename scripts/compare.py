from alseg.atomic import write_text_atomic
from alseg.joblog import logged_step
from alseg.report import (
    comparison_rows,
    markdown_summary,
    per_class_table,
    plot_axis,
    plot_comparison,
    read_rows,
    round_table,
    write_rows,
)

with logged_step(snakemake.log[0]):
    params = snakemake.params
    curves = {name: read_rows(path) for name, path in zip(params.experiments, snakemake.input)}
    write_rows(snakemake.output.table, comparison_rows(curves))
    plot_comparison(curves, snakemake.output.plot, params.groups, params.references)
    rounds = round_table(curves, params.groups, params.references)
    classes = per_class_table(curves, params.groups)
    write_rows(snakemake.output.rounds, rounds)
    write_rows(snakemake.output.classes, classes)
    write_text_atomic(snakemake.output.summary, markdown_summary(rounds, classes))
    for axis, out in zip(params.axes, snakemake.output.axes):
        plot_axis(curves, axis, out, params.groups, params.references)
