from alseg.report import comparison_files, compared_datasets

# experiment -> dataset of the compared experiments; per-class tables are per dataset (README, "Your data")
COMPARED_DATASETS = {name: EXPERIMENTS[name]["dataset"] for name in CFG["compare"]}
COMPARISON = comparison_files(RESULTS, compared_datasets(CFG["compare"], COMPARED_DATASETS))


localrules:
    learning_curve,
    compare,


rule learning_curve:
    input:
        lambda wc: [f"{RESULTS}/{wc.exp}/round_{r}/metrics.json" for r in experiment_rounds(wc.exp)],
    output:
        report(
            f"{RESULTS}/{{exp}}/learning_curve.csv",
            caption="../workflow/report/learning_curve.rst",
            category="Learning curves",
        ),
    params:
        oracle=lambda wc: EXPERIMENTS[wc.exp]["oracle"]["kind"],  # for the caption
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
        table=report(COMPARISON["table"], caption="../workflow/report/comparison_table.rst", category="Comparison"),
        plot=report(COMPARISON["plot"], caption="../workflow/report/comparison_plot.rst", category="Comparison"),
        rounds=report(COMPARISON["rounds"], caption="../workflow/report/comparison_rounds.rst", category="Comparison"),
        classes=report(COMPARISON["classes"], caption="../workflow/report/per_class_iou.rst", category="Comparison"),
        summary=COMPARISON["summary"],
        axes=report(COMPARISON["axes"], caption="../workflow/report/comparison_axis.rst", category="Comparison"),
    params:
        experiments=CFG["compare"],
        groups={name: EXPERIMENTS[name]["group"] for name in CFG["compare"]},
        references=CFG["references"],
        datasets=COMPARED_DATASETS,
        files=COMPARISON,
        # for the caption: the experiments answered by people (their hours are measured)
        people=", ".join(e for e in CFG["compare"] if EXPERIMENTS[e]["oracle"]["kind"] == "human"),
        version=CODE_VERSION,
    log:
        f"{RESULTS}/logs/compare.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/compare.py"
