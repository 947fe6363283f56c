# One active-learning round: queries -> answers -> labels -> model -> metrics and inference.
# Round r's queries are chosen with round r-1's labels and inference dump.

localrules:
    select_queries,
    answer_queries,
    update_labels,


rule select_queries:
    input:
        dataset=kept_if_answered(dataset_file),
        labels=kept_if_answered(previous_round_file("labels.npz")),
        inference=kept_if_answered(
            lambda wc: (
                previous_round_file("inference.h5")(wc)
                if EXPERIMENTS[wc.exp]["strategy"] != "random"
                else []
            )
        ),
    output:
        f"{RESULTS}/{{exp}}/round_{{r}}/queries.csv",
    params:
        settings=query_settings,
        version=query_version,
    log:
        f"{RESULTS}/{{exp}}/round_{{r}}/logs/select_queries.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/select_queries.py"


rule answer_queries:
    """The answers: the simulated annotator's (from ground truth), or in a human experiment a person's
    human_answers.csv, validated and copied (alseg.human)."""
    input:
        dataset=dataset_file,
        queries=round_file("queries.csv"),
        superpixels=superpixel_file,
        regions=superpixel_regions_file,
        human=human_answers_file,
    output:
        f"{RESULTS}/{{exp}}/round_{{r}}/answers.csv",
    params:
        settings=answer_settings,
        version=CODE_VERSION,
    log:
        f"{RESULTS}/{{exp}}/round_{{r}}/logs/answer_queries.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/answer_queries.py"


rule update_labels:
    input:
        dataset=dataset_file,
        queries=round_file("queries.csv"),
        answers=round_file("answers.csv"),
        previous=previous_round_file("labels.npz"),
        regions=superpixel_regions_file,
    output:
        f"{RESULTS}/{{exp}}/round_{{r}}/labels.npz",
    params:
        costs=lambda wc: EXPERIMENTS[wc.exp]["costs"],  # the estimate of answers without measured seconds
        version=CODE_VERSION,
    log:
        f"{RESULTS}/{{exp}}/round_{{r}}/logs/update_labels.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/update_labels.py"


rule train:
    """Train round r's model on the cumulative labels (checkpoint chosen on val), evaluate it on the
    test split, and run it over the pool for the next round's acquisition. One job, so that torch is
    imported and the data loaded once per round rather than three times (benchmarks/default_run.py).
    Round 0 of an experiment with a round-0 twin (config share_round0) copies the twin's model when
    the training inputs are identical."""
    input:
        dataset=dataset_file,
        labels=round_file("labels.npz"),
        init_model=warm_start_model,
        superpixels=superpixel_file,
        sieve_model=sieve_model_file,
        twin_model=round0_twin_file("model.pt"),
        twin_log=round0_twin_file("train_log.json"),
    output:
        model=f"{RESULTS}/{{exp}}/round_{{r}}/model.pt",
        log=f"{RESULTS}/{{exp}}/round_{{r}}/train_log.json",
        metrics=f"{RESULTS}/{{exp}}/round_{{r}}/metrics.json",
        inference=f"{RESULTS}/{{exp}}/round_{{r}}/inference.h5",
    params:
        settings=model_settings,
        version=CODE_VERSION,
    threads: MODEL_THREADS
    resources:
        gpu=1,
    log:
        f"{RESULTS}/{{exp}}/round_{{r}}/logs/train.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/train.py"
