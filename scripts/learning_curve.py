from alseg.joblog import job_name, logged_step
from alseg.report import curve_rows, read_metrics, write_rows

with logged_step(snakemake.log[0], job_name(snakemake.wildcards)):
    write_rows(snakemake.output[0], curve_rows(read_metrics(snakemake.input)))
