# Equal tuning budget (tuning.lr_factors; off by default): for every pretrained method, one trial per
# learning-rate factor — pretraining on each pretraining dataset at the tuning seed, then every task that
# dataset serves fine-tuned and validated — and tune_select picks the factor on val (benchmark/train/tuning.py).
# The method's pretrain and finetune jobs then take its choice.json as an input.

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
        gpu=TRAIN_GPU,
        processes=GPUS_PER_JOB,
    log:
        f"{OUT}/logs/{{dataset}}/tuning/{{method}}/lr{{factor}}/pretrain.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v pretrain --spec {params.spec} --threads {threads} --processes {resources.processes}"
        " --data {params.data}"
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
        gpu=TRAIN_GPU,
        processes=GPUS_PER_JOB,
    log:
        f"{OUT}/logs/{{dataset}}/tuning/{{method}}/lr{{factor}}/finetune_{{task}}.log",
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v finetune --spec {params.spec} --threads {threads} --processes {resources.processes}"
        " --data {params.data}"
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
