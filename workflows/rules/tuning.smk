# Equal tuning budget (tuning.lr_factors; off by default): for every pretrained method, one trial per
# learning-rate factor — pretraining on each pretraining dataset at the tuning seed, then every task that
# dataset serves fine-tuned and validated — and tune_select picks the factor on val (benchmark/train/tuning.py).
# The method's pretrain and finetune jobs then take its choice.json as an input.

TUNING_FACTORS = tuning_factors(config)


def factor_label(factor):
    """A factor as it appears in paths: 0.5 → 0.5, 1.0 → 1, 2.0 → 2."""
    return f"{factor:g}"


def trial_factor(wildcards):
    return next(f for f in TUNING_FACTORS if factor_label(f) == wildcards.factor)


def trial_json(stage):
    """A params function: the JSON spec of one trial job, shell-quoted."""

    def fn(w):
        task = getattr(w, "task", None)
        spec = trial_spec(config, stage, trial_factor(w), dataset=w.dataset, method=w.method, task=task)
        return shlex.quote(json.dumps(spec, sort_keys=True))

    return fn


def tuning_choice(wildcards):
    """The choice.json a tuned method's pretrain or finetune job trains with; none when it is not tuned."""
    if not is_tuned(config, wildcards.method):
        return []
    return f"{OUT}/{pretrained_on(wildcards)}/tuning/{wildcards.method}/choice.json"


def trial_results(wildcards):
    """Every trial's fine-tuning result of one (pretraining dataset, method): factors × the dataset's tasks."""
    return [
        f"{OUT}/{wildcards.dataset}/tuning/{wildcards.method}/lr{factor_label(f)}/finetune/{task}/result.json"
        for f in TUNING_FACTORS
        for task in dataset_tasks(config, wildcards.dataset)
    ]


rule tune_pretrain:
    input:
        data=rules.dataset.output.result,
        tokenizer=pretrain_tokenizer,
        method=f"{BASELINES}/{{method}}.py",
        weights=tower_weights,
    output:
        model=f"{OUT}/{{dataset}}/tuning/{{method}}/lr{{factor}}/pretrain/model.safetensors",
        result=f"{OUT}/{{dataset}}/tuning/{{method}}/lr{{factor}}/pretrain/result.json",
    params:
        spec=trial_json("pretrain"),
        data=data_dir,
        folder=lambda w, output: os.path.dirname(output.model),
    threads: threads_for_jobs()
    resources:
        gpu=GPU,
    log:
        f"{OUT}/logs/{{dataset}}/tuning/{{method}}/lr{{factor}}/pretrain.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v pretrain --spec {params.spec} --threads {threads} --data {params.data}"
        " --tokenizer {input.tokenizer} --out {params.folder} 2> {log}"


rule tune_finetune:
    input:
        task_file=task_file,
        data=rules.dataset.output.result,
        tokenizer=pretrain_tokenizer,
        init=rules.tune_pretrain.output.model,
        method=f"{BASELINES}/{{method}}.py",
    output:
        model=f"{OUT}/{{dataset}}/tuning/{{method}}/lr{{factor}}/finetune/{{task}}/model.safetensors",
        result=f"{OUT}/{{dataset}}/tuning/{{method}}/lr{{factor}}/finetune/{{task}}/result.json",
    params:
        spec=trial_json("finetune"),
        data=data_dir,
        folder=lambda w, output: os.path.dirname(output.model),
    threads: threads_for_jobs()
    resources:
        gpu=GPU,
    log:
        f"{OUT}/logs/{{dataset}}/tuning/{{method}}/lr{{factor}}/finetune_{{task}}.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v finetune --spec {params.spec} --threads {threads} --data {params.data}"
        " --tokenizer {input.tokenizer} --init {input.init} --out {params.folder} 2> {log}"


rule tune_select:
    input:
        trials=trial_results,
    output:
        f"{OUT}/{{dataset}}/tuning/{{method}}/choice.json",
    log:
        f"{OUT}/logs/{{dataset}}/tuning/{{method}}/select.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v tune-select {input.trials} --out {output} 2> {log}"
