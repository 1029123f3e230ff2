"""The errors FuseBench reports to users, in a module with no heavy imports, and their exit codes.

Each message names the file, key or value at fault. :data:`EXIT_CODES` is the one table of the
CLI's exit codes: ``fusebench`` ends a known failure with one line on stderr,
``fusebench: <label>: <message>``, and its exit code (the traceback only with ``fusebench -v``);
anything else is a crash, exit 1, with its traceback.
"""


class ConfigError(ValueError):
    """An invalid configuration; the message names the file, key and allowed values (exit 2)."""


class MethodError(ValueError):
    """A method is mis-declared or mis-configured; the message names the method and key (exit 2)."""


class DataFileError(RuntimeError):
    """A dataset, checkpoint or result file is missing, unreadable or malformed; names it (exit 3)."""


class InputMismatchError(DataFileError):
    """An input belongs to another job: a checkpoint of another method, seed, task, stage or dataset,
    or trained with another tokenizer or data build. Names the file and both values (exit 4)."""


class MissingModalityError(MethodError):
    """A method was asked to run without a modality it cannot do without; reported, not hidden."""


EXIT_CRASH = 1
"""Anything not in :data:`EXIT_CODES`: a bug or a crash inside a method, reported with its traceback."""

EXIT_CODES: tuple[tuple[type[BaseException], int, str], ...] = (
    (ConfigError, 2, "configuration error"),
    (MethodError, 2, "method error"),
    (InputMismatchError, 4, "input mismatch"),
    (DataFileError, 3, "input error"),
    (FloatingPointError, 5, "training diverged"),  # a non-finite loss (benchmark/train/loop.py)
)
"""(error class, exit code, label), most specific class first; argparse's own usage errors also exit 2."""


def one_line(exc: BaseException | str) -> str:
    """A library's error message on one line (``"; "`` between its lines): torch's state-dict errors and
    others span several lines, and the workflow's failure summary keeps only the first line of an error."""
    lines = [line.strip() for line in str(exc).splitlines()]
    return "; ".join(line for line in lines if line)


def exit_code(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and label of a known failure kind; ``None`` for a crash (exit :data:`EXIT_CRASH`)."""
    for kind, code, label in EXIT_CODES:
        if isinstance(exc, kind):
            return code, label
    return None


def exit_code_summary() -> str:
    """One line for ``--help`` and docs: every exit code and what it means."""
    codes: dict[int, list[str]] = {0: ["success"], EXIT_CRASH: ["a crash (with its traceback)"]}
    for _, code, label in EXIT_CODES:
        if label not in codes.setdefault(code, []):
            codes[code].append(label)
    codes[2].append("invalid arguments")
    return "exit codes: " + "; ".join(f"{code} {', '.join(labels)}" for code, labels in sorted(codes.items()))
