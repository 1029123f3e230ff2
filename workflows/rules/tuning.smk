# Equal tuning budget (tuning.lr_factors), for every pretrained method, in two steps (benchmark/train/tuning.py):
# 1. the pretraining learning rate: one pretraining trial per factor on each pretraining dataset at the tuning seed,
#    each fine-tuned at the configured fine-tuning rate and validated on every (dataset, task) fine-tuned from that
#    pretraining (tuning_measures: the dataset itself, or those whose pretrain_from names it);
#    tune_select_pretrain picks the factor on val and copies that trial's checkpoint;
# 2. the fine-tuning learning rate, per (fine-tuning dataset, task): one fine-tuning trial per factor from that
#    checkpoint; tune_select_finetune picks the factor on val.
# The method's pretrain jobs then take its pretraining choice, its finetune jobs their task's choice.

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
        spec=trial_json("pretrain", "pretrain"),
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


rule tune_pretrain_finetune:
    input:
        task_file=task_file,
        data=rules.dataset.output.result,
        tokenizer=tokenizer_file,
        init=pretrain_trial_model,
        method=method_file,
    output:
        model=RUN.trial_pretrain_finetune.model,
        result=RUN.trial_pretrain_finetune.result,
    params:
        spec=trial_json("finetune", "pretrain"),
        data=data_dir,
        folder=lambda w, output: os.path.dirname(output.model),
    threads: threads_for_jobs()
    resources:
        gpu=TRAIN_GPU,
        processes=GPUS_PER_JOB,
    log:
        RUN.trial_pretrain_finetune.log,
    conda:
        CONDA_ENV
    shell:
        training_command("finetune", trial=True)


rule tune_select_pretrain:
    input:
        trials=pretrain_trial_results,
        pretrained=pretrain_trial_models,
    output:
        choice=RUN.pretrain_choice.output,
        model=RUN.pretrain_chosen,
    log:
        RUN.pretrain_choice.log,
    conda:
        CONDA_ENV
    shell:
        tune_select_command("pretrain")


rule tune_finetune:
    input:
        task_file=task_file,
        data=rules.dataset.output.result,
        tokenizer=tokenizer_file,
        init=chosen_pretrain_trial,
        method=method_file,
    output:
        model=RUN.trial_finetune.model,
        result=RUN.trial_finetune.result,
    params:
        spec=trial_json("finetune", "finetune"),
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


rule tune_select_finetune:
    input:
        trials=finetune_trial_results,
    output:
        choice=RUN.finetune_choice.output,
    log:
        RUN.finetune_choice.log,
    conda:
        CONDA_ENV
    shell:
        tune_select_command("finetune")
