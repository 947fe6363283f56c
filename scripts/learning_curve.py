from alseg.report import curve_rows, read_metrics, write_rows
from alseg.steps import logged_step

with logged_step(snakemake.log[0]):
    write_rows(snakemake.output[0], curve_rows(read_metrics(snakemake.input)))
