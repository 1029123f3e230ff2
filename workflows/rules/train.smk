# Training: pretrain per (dataset, method, seed); fine-tune per task from that checkpoint (or from the
# checkpoint of the dataset named by 'pretrain_from'; or from a published model's own weights when the
# method is trained only by fine-tuning). Zero-shot methods have no training job.
# A method's own file is an input, so editing baselines/<method>.py re-runs only its jobs. Under a learning-rate
# search (workflows/rules/tuning.smk) a method's pretrain job also takes its pretraining choice, a finetune job its
# task's fine-tuning choice.


rule pretrain:
    input:
        data=rules.dataset.output.result,
        tokenizer=pretrain_tokenizer,
        method=method_file,
        weights=tower_weights,
        tuned=pretrain_tuning_choice,
    output:
        model=RUN.pretrain.model,
        result=RUN.pretrain.result,
    params:
        spec=spec_json("pretrain"),
        data=data_dir,
        tuned=optional_input("--tuned", "tuned"),
        folder=lambda w, output: os.path.dirname(output.model),
    threads: threads_for_jobs()
    resources:
        gpu=TRAIN_GPU,
        processes=GPUS_PER_JOB,
    log:
        RUN.pretrain.log,
    conda:
        CONDA_ENV
    shell:
        training_command("pretrain")


rule finetune:
    input:
        task_file=task_file,
        data=rules.dataset.output.result,
        tokenizer=tokenizer_file,
        init=finetune_init,
        method=method_file,
        weights=published_weight_files,
        tuned=finetune_tuning_choice,
    output:
        model=RUN.finetune.model,
        result=RUN.finetune.result,
    params:
        spec=spec_json("finetune"),
        data=data_dir,
        init=optional_input("--init", "init"),
        tuned=optional_input("--tuned", "tuned"),
        folder=lambda w, output: os.path.dirname(output.model),
    threads: threads_for_jobs()
    resources:
        gpu=TRAIN_GPU,
        processes=GPUS_PER_JOB,
    log:
        RUN.finetune.log,
    conda:
        CONDA_ENV
    shell:
        training_command("finetune")
