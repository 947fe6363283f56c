# One active-learning round: queries -> answers -> labels -> model (evaluation, inference) -> metrics.
# Round r's queries are chosen with round r-1's labels and inference dump. Every rule asks the
# experiment's query unit (alseg.units) what its step reads, through alseg.plan: named inputs
# (unpack) and the settings in its params.

localrules:
    answer_queries,
    update_labels,
    metrics,


# One selection rule per set of side files that units write beside queries.csv (the superpixel unit's
# regions.npz): Snakemake needs a rule's outputs before it knows the experiment. The rules are the same.
for side, side_experiments in plan.side_file_groups(CFG).items():

    rule:
        name:
            "select_queries" + "".join(f"_with_{name}" for name, _ in side)
        localrule: True
        input:
            unpack(kept_if_answered(from_plan(plan.select_inputs))),
        output:
            queries=round_output("queries.csv"),
            **{name: round_output(file) for name, file in side},
        wildcard_constraints:
            exp=wildcard_pattern(side_experiments),
        params:
            settings=from_plan(plan.select_settings),
            version=query_version,
        log:
            round_log("select_queries"),
        conda:
            "../envs/alseg.yaml"
        script:
            "../scripts/select_queries.py"


rule answer_queries:
    """The answers: the simulated annotator's (from ground truth), or in a human experiment a person's
    human_answers.csv, validated and copied (alseg.human)."""
    input:
        unpack(answer_inputs),
    output:
        round_output("answers.csv"),
    params:
        settings=from_plan(plan.answer_settings),
        version=CODE_VERSION,
    log:
        round_log("answer_queries"),
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/answer_queries.py"


rule update_labels:
    input:
        unpack(from_plan(plan.update_inputs)),
    output:
        round_output("labels.npz"),
    params:
        # the estimate paid for answers without measured seconds
        costs=lambda wc: plan.asked_costs(EXPERIMENTS[wc.exp], wc_round(wc)),
        version=CODE_VERSION,
    log:
        round_log("update_labels"),
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/update_labels.py"


rule train:
    """Train round r's model on the cumulative labels (checkpoint chosen on val), evaluate it on the
    test split, and run it over the pool for the next round's acquisition. One job, so that torch is
    imported and the data loaded once per round rather than three times (benchmarks/default_run.py).
    Round 0 of an experiment with a round-0 twin (config share_round0) copies the twin's model when
    the training inputs are identical. With training.gpus k > 1 the job trains in k processes, one per
    GPU, and asks for k GPUs (its threads are shared among them)."""
    input:
        unpack(from_plan(plan.train_inputs)),
    output:
        model=round_output("model.pt"),
        log=round_output("train_log.json"),
        evaluation=round_output("evaluation.json"),
        inference=round_output("inference.h5"),
    params:
        settings=from_plan(plan.train_settings),
        version=CODE_VERSION,
    threads: MODEL_THREADS
    resources:
        gpu=lambda wc: plan.training_gpus(CFG, wc.exp),
    log:
        round_log("train"),
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/train.py"


rule infer_shard:
    """Shard k >= 1 of round r's inference dump (config inference.shards > 1): round r's model over its
    part of the pool, a GPU job of its own beside the train job, which writes shard 0 (inference.h5)."""
    input:
        unpack(from_plan(plan.infer_inputs)),
    output:
        round_output("inference_shard{k}.h5"),
    params:
        settings=from_plan(plan.train_settings),
        version=CODE_VERSION,
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        round_log("infer_shard{k}"),
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/infer_shard.py"


rule metrics:
    """metrics.json: the model's test scores, what its labels cost, and the experiment's unit and strategy
    (a step of its own: relabelling an experiment does not retrain it)."""
    input:
        evaluation=round_output("evaluation.json"),
        labels=round_output("labels.npz"),
    output:
        round_output("metrics.json"),
    params:
        description=lambda wc: plan.metrics_description(CFG, wc.exp),
        version=CODE_VERSION,
    log:
        round_log("metrics"),
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/metrics.py"
