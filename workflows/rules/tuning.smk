# Equal tuning budget (tuning.lr_factors; off by default): for every pretrained method, one trial per
# learning-rate factor — pretraining on each pretraining dataset at the tuning seed, then every task that
# dataset serves fine-tuned and validated — and tune_select picks the factor on val (benchmark/train/tuning.py).
# The method's pretrain and finetune jobs then take its choice.json as an input.

rule tune_pretrain:
    input:
        data=rules.dataset.output.result,
        tokenizer=pretrain_tokenizer,
        method=method_file,
        weights=tower_weights,
    output:
        model=RUN.trial_pretrain.model,
        result=RUN.trial_pretrain.result,
    params:
        spec=trial_json("pretrain"),
        data=data_dir,
        folder=lambda w, output: os.path.dirname(output.model),
    threads: threads_for_jobs()
    resources:
        gpu=TRAIN_GPU,
        processes=GPUS_PER_JOB,
    log:
        RUN.trial_pretrain.log,
    conda:
        CONDA_ENV
    shell:
        training_command("pretrain", trial=True)


rule tune_finetune:
    input:
        task_file=task_file,
        data=rules.dataset.output.result,
        tokenizer=pretrain_tokenizer,
        init=rules.tune_pretrain.output.model,
        method=method_file,
    output:
        model=RUN.trial_finetune.model,
        result=RUN.trial_finetune.result,
    params:
        spec=trial_json("finetune"),
        data=data_dir,
        folder=lambda w, output: os.path.dirname(output.model),
    threads: threads_for_jobs()
    resources:
        gpu=TRAIN_GPU,
        processes=GPUS_PER_JOB,
    log:
        RUN.trial_finetune.log,
    conda:
        CONDA_ENV
    shell:
        training_command("finetune", trial=True)


rule tune_select:
    input:
        trials=trial_results,
    output:
        RUN.tuning_choice.output,
    log:
        RUN.tuning_choice.log,
    conda:
        CONDA_ENV
    shell:
        "python -m benchmark -v tune-select {input.trials} --out {output} 2> {log}"
