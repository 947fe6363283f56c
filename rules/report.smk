from alseg.report import COST_AXES, compared_datasets, per_class_paths

COMPARISON_AXES = [column for column, _ in COST_AXES]
# experiment -> dataset of the compared experiments; per-class tables are per dataset (README, "Your data")
COMPARED_DATASETS = {name: EXPERIMENTS[name]["dataset"] for name in CFG["compare"]}


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
        rounds=report(
            f"{RESULTS}/comparison_rounds.csv",
            caption="../workflow/report/comparison_rounds.rst",
            category="Comparison",
        ),
        classes=report(
            per_class_paths(RESULTS, compared_datasets(CFG["compare"], COMPARED_DATASETS)),
            caption="../workflow/report/per_class_iou.rst",
            category="Comparison",
        ),
        summary=f"{RESULTS}/comparison.md",
        axes=report(
            expand(f"{RESULTS}/comparison_{{axis}}.png", axis=COMPARISON_AXES),
            caption="../workflow/report/comparison_axis.rst",
            category="Comparison",
        ),
    params:
        experiments=CFG["compare"],
        groups={name: EXPERIMENTS[name]["group"] for name in CFG["compare"]},
        references=CFG["references"],
        datasets=COMPARED_DATASETS,
        axes=COMPARISON_AXES,
        # for the caption: the experiments answered by people (their hours are measured)
        people=", ".join(e for e in CFG["compare"] if EXPERIMENTS[e]["oracle"]["kind"] == "human"),
        version=CODE_VERSION,
    log:
        f"{RESULTS}/logs/compare.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/compare.py"
