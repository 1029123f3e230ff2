"""Build the paper: pdflatex over ``paper/main.tex`` with the run's tables and plots on TEXINPUTS.

The source never contains a number: it ``\\input``s ``macros.tex`` and the generated tables
and includes the generated plots, found through ``TEXINPUTS`` (tables folder, plots folder,
the source's folder). Two passes resolve references; the PDF is moved into place atomically.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmark.errors import ConfigError
from benchmark.io import atomic_path

TEX_PACKAGES = "texlive-latex-base texlive-latex-recommended texlive-fonts-recommended lmodern"


def pdflatex() -> str:
    """The pdflatex executable, or a ConfigError that says how to install it."""
    path = shutil.which("pdflatex")
    if path is None:
        raise ConfigError(f"pdflatex not found; install it, e.g. `apt-get install {TEX_PACKAGES}` (Debian/Ubuntu)")
    return path


def compile_latex(source: Path, search: list[Path], out: Path, passes: int = 2) -> None:
    """Compile ``source`` with ``search`` folders on TEXINPUTS; raise with the log's tail on failure."""
    executable = pdflatex()
    env = {**os.environ, "TEXINPUTS": os.pathsep.join(str(p.resolve()) for p in search) + os.pathsep}
    with tempfile.TemporaryDirectory(prefix="fusebench-latex-") as build:
        for _ in range(passes):
            result = subprocess.run(
                [
                    executable,
                    "-interaction=nonstopmode",
                    "-halt-on-error",
                    f"-output-directory={build}",
                    str(source.resolve()),
                ],
                capture_output=True,
                text=True,
                env=env,
                cwd=build,
                timeout=300,
            )
            if result.returncode != 0:
                tail = "\n".join(result.stdout.splitlines()[-30:])
                raise RuntimeError(f"pdflatex failed on {source} (searching {', '.join(map(str, search))}):\n{tail}")
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            shutil.copyfile(Path(build) / f"{source.stem}.pdf", tmp)


MACRO = re.compile(r"\\fb[A-Za-z]+")
DEFINITION = re.compile(r"\\newcommand\{(\\fb[A-Za-z]+)\}")


def undefined_macros(source: str, macros: str) -> list[str]:
    """FuseBench macros (``\\fb…``) that ``source`` cites but neither it nor ``macros`` defines, sorted.

    Checked before pdflatex runs so that a paper citing a number the run did not produce
    (a method or metric missing from the config) fails with the macro's name, not a TeX log.
    """
    defined = set(DEFINITION.findall(source)) | set(DEFINITION.findall(macros))
    return sorted(set(MACRO.findall(source)) - defined)


def build_paper(source: Path, tables: Path, plots: Path, out: Path) -> None:
    for folder, what in ((tables, "tables"), (plots, "plots")):
        if not folder.is_dir():
            raise ConfigError(f"{what} folder {folder} does not exist; run the workflow first (snakemake --cores all)")
    macros = tables / "macros.tex"
    missing = undefined_macros(source.read_text(), macros.read_text() if macros.is_file() else "")
    if missing:
        raise ConfigError(
            f"{source} cites {len(missing)} number(s) that {macros} does not define: "
            f"{', '.join(missing)}; run the methods and metrics it cites, or edit the paper"
        )
    compile_latex(source, [tables, plots, source.parent], out)
