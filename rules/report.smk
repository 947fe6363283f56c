localrules:
    learning_curve,
    compare,


rule learning_curve:
    input:
        lambda wc: [f"{RESULTS}/{wc.exp}/round_{r}/metrics.json" for r in range(LAST_ROUND + 1)],
    output:
        report(
            f"{RESULTS}/{{exp}}/learning_curve.csv",
            caption="../workflow/report/learning_curve.rst",
            category="Learning curves",
        ),
    params:
        version=CODE_VERSION,
    log:
        f"{RESULTS}/{{exp}}/logs/learning_curve.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/learning_curve.py"


rule compare:
    input:
        expand(f"{RESULTS}/{{exp}}/learning_curve.csv", exp=CFG["compare"]),
    output:
        table=report(
            f"{RESULTS}/comparison.csv",
            caption="../workflow/report/comparison_table.rst",
            category="Comparison",
        ),
        plot=report(
            f"{RESULTS}/comparison.png",
            caption="../workflow/report/comparison_plot.rst",
            category="Comparison",
        ),
    params:
        experiments=CFG["compare"],
        version=CODE_VERSION,
    log:
        f"{RESULTS}/logs/compare.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/compare.py"
