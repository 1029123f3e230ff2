# After a failed run (the Snakefile's onerror, e.g. once --keep-going has run every job it could): the
# tables and plots of everything that finished, each missing result marked failed with its error and
# log, and a summary of the failed jobs. The failed jobs stay failed: their outputs are missing.
# The tables and plots written here are dated 1970 and dropped from Snakemake's records, so the next
# run retries the failed jobs and rebuilds the tables, and a partial table is never taken for a
# finished one (why: benchmark/workflow/partial.py; the expected-results file: benchmark/workflow/expected.py).

from benchmark.workflow.expected import expected_results
from benchmark.workflow.partial import date_outdated, partial_message, run_fusebench


def mark_outdated(files):
    """Date `files` to 1970 and drop Snakemake's records of them: the next run rebuilds them."""
    for path in date_outdated(files):
        # Snakemake's own metadata (.snakemake/metadata) must forget the partial output too: else inputs
        # whose checksums match those recorded for the older tables would not count as updated, and the
        # 1970 date alone would not make the next run rebuild them. No public API does this.
        workflow.persistence.cleanup_metadata(path)


def partial_report():
    """onerror: the tables and plots of what finished, and a summary of the failed jobs (logged last)."""
    from snakemake.logging import logger

    folder, tables, plots = RUN.partial_dir, RUN.tables_dir, RUN.plots_dir
    settings = json.dumps(stage_spec(config, "report"), sort_keys=True)
    try:
        os.makedirs(folder, exist_ok=True)
        expected = f"{folder}/expected.json"
        with open(expected, "w") as handle:
            json.dump(expected_results(config, RUN, GRID), handle, indent=1)
        summary = run_fusebench(
            ["aggregate", "--expected", expected, "--report", settings, "--out-dir", tables, "--config-hash", CONFIG_HASH],
            log=f"{folder}/aggregate.log",
            checkout=workflow.basedir,
        )
        if summary is None:
            logger.error(f"FuseBench: the tables of what finished could not be written: see {folder}/aggregate.log")
            return
        drawn = run_fusebench(
            ["plots", "--tables", tables, "--out-dir", plots, "--report", settings],
            log=f"{folder}/plots.log",
            checkout=workflow.basedir,
        )
        mark_outdated([*rules.aggregate.output, *rules.plots.output])
    except Exception as error:  # never hide the run's own failure behind this one
        logger.error(f"FuseBench: the tables of what finished could not be written: {type(error).__name__}: {error}")
        return
    logger.error(partial_message(summary, plots, drawn is not None, folder))
