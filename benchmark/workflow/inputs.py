"""The files a job reads outside the run: a local weights path, as inputs of the jobs built from it.

One rule for what a weights folder's files are, shared with the provenance digests
(:func:`benchmark.sources.folder_files`): the regular files under the folder, links followed, outside hidden
folders (``.git``, a download tool's ``.cache``, which no loader reads and which change without the weights
changing). Hidden files (``.gitattributes``) are inputs: a published checkpoint's and a sentence model's
provenance hashes them, so editing one re-runs the jobs that record it (a pretrained tower's provenance
leaves them out; an edited hidden file re-runs its jobs too, which is the safe side).
"""

from __future__ import annotations

from pathlib import Path

from benchmark.sources import folder_files


def local_weight_files(source: str | Path) -> list[str]:
    """The files of a local weights path (editing one re-runs the jobs built from it), sorted: the file itself,
    or the files of a folder (:mod:`above <benchmark.workflow.inputs>`); none for a hub name."""
    path = Path(str(source)).expanduser()
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        return sorted(str(p) for p in folder_files(path, hidden_files=True))
    return []
