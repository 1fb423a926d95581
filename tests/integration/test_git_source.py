"""Reading revisions from a real repository: blob batches, symlinks, the blob-id cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import RevisionRejected
from reconciler.manifests.load import Limits
from reconciler.source.git import GitReader
from reconciler.source.revision import RevisionLoader
from tests.conftest import git

POD = (
    "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\n"
    "spec: {{containers: [{{name: c, image: x, command: [sleep, '1']}}]}}\n"
)


def _repo(tmp_path: Path, n: int) -> Path:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(n):
        (repo / f"p{i}.yaml").write_text(POD.format(i=i))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "many")
    return repo


@pytest.mark.timeout(120)
def test_thousands_of_blobs_in_one_batch_do_not_deadlock(tmp_path: Path) -> None:
    repo = _repo(tmp_path, 3000)
    reader = GitReader(str(repo))
    entries = reader.tree("HEAD")
    blobs = reader.read_blobs([e.blob for e in entries])
    assert len(blobs) == 3000 and all(b.startswith(b"apiVersion") for b in blobs.values())
    manifests, _ = RevisionLoader(reader, "", Limits()).load(git(repo, "rev-parse", "HEAD"))
    assert len(manifests) == 3000
    reader.close()


def test_identical_copy_is_a_duplicate_named_by_its_own_path(tmp_path: Path) -> None:
    repo = _repo(tmp_path, 1)
    (repo / "copy.yaml").write_text(POD.format(i=0))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "copy")
    reader = GitReader(str(repo))
    loader = RevisionLoader(reader, "", Limits())
    with pytest.raises(RevisionRejected) as e:
        loader.load(git(repo, "rev-parse", "HEAD"))
    (err,) = e.value.errors
    assert err.file == "p0.yaml" or err.file == "copy.yaml"
    assert {err.file, err.message.split("declared in ")[1].split(":")[0]} == {"p0.yaml", "copy.yaml"}


def test_a_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    repo = _repo(tmp_path, 1)
    (repo / "evil.yaml").symlink_to("/etc/passwd")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "link")
    with pytest.raises(RevisionRejected) as e:
        RevisionLoader(GitReader(str(repo)), "", Limits()).load(git(repo, "rev-parse", "HEAD"))
    assert "symbolic link" in str(e.value) and "evil.yaml" in str(e.value)
