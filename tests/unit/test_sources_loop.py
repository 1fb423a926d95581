"""SourcesLoop's level-triggered parts on a fake daemon and local repositories: a `--sources FILE`
read again on each pass, a rejected revision tried again when the other sources' objects changed,
a source whose entry changed looked at again, and every source's image rules restored at start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from reconciler.log import get_logger
from reconciler.manifests.load import Limits
from reconciler.source.git import GitReader
from reconciler.source.revision import RevisionLoader
from reconciler.sources.runner import SourcesLoop, read_sources_file
from reconciler.sources.spec import DEFAULT
from reconciler.store import Store
from tests.conftest import commit_file, git

IMAGES = "images:\n  - image: {img}\n    command: [sleep, '1']\n"


def _repo(path: Path, images: str) -> str:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "T")
    git(path, "config", "user.email", "t@example.com")
    return commit_file(path, "gitship.yaml", IMAGES.format(img=images), "images")


class Runtime:
    def __init__(self) -> None:
        self.rules: list[Any] = []

    def set_image_rules(self, rules: Any, repo_dir: Any) -> None:
        self.rules = list(rules)


def _daemon(tmp_path: Path, sources_file: Path) -> Any:
    main = tmp_path / "main"
    _repo(main, "main-*")
    store = Store(str(tmp_path / "state"))
    reader = GitReader(str(main))
    opts = SimpleNamespace(
        source=str(main), path="", interval=30.0, sources_file=str(sources_file), prune_threshold=None,
        limits=Limits(), decryption_key_file=None,
    )  # fmt: skip
    return SimpleNamespace(
        store=store, opts=opts, branch="main", loader=RevisionLoader(reader, "", Limits()), repo_dir=str(main),
        reconciler=SimpleNamespace(desired={}), applier=SimpleNamespace(loader=None, prune=None), remote=False,
        reader=reader, log=get_logger(), runtime=Runtime(), state_dir=str(tmp_path / "state"),
    )  # fmt: skip


def test_the_sources_file_is_read_again_and_a_changed_entry_is_checked_again(tmp_path: Path) -> None:
    _repo(tmp_path / "a", "a-*")
    _repo(tmp_path / "b", "b-*")
    listing = tmp_path / "sources.yaml"
    listing.write_text(f"sources:\n  - name: a\n    url: {tmp_path / 'a'}\n")
    d = _daemon(tmp_path, listing)
    loop = SourcesLoop(d, read_sources_file(str(listing)))
    loop.file_state = (listing.read_bytes(), "")
    assert [s.name for s in loop.specs] == ["a"]
    assert d.store.get_meta("source/a/source")["repoDir"] == str(tmp_path / "a")  # for plan/diff --source
    loop.reread_sources_file()  # unchanged: nothing happens
    assert not loop.members["a"].recheck

    listing.write_text(
        f"sources:\n  - name: a\n    url: {tmp_path / 'a'}\n    path: deploy\n  - name: b\n    url: {tmp_path / 'b'}\n"
    )
    loop.reread_sources_file()
    assert [s.name for s in loop.specs] == ["a", "b"] and d.store.get_meta("sources") == [DEFAULT, "a", "b"]
    assert loop.members["a"].spec.path == "deploy" and loop.members["a"].recheck  # same commit, looked at again
    assert not loop.members["b"].recheck  # new: its commit is unattempted anyway

    listing.write_text("sources:\n  - name: Bad_Name\n")  # invalid: logged, the sources as they were keep going
    loop.reread_sources_file()
    assert [s.name for s in loop.specs] == ["a", "b"] and "Bad_Name" in loop.file_state[1]
    listing.write_text("sources: []\n")
    loop.reread_sources_file()
    assert loop.specs == [] and d.store.get_meta("sources") == [DEFAULT]


def test_a_rejected_revision_is_tried_again_when_the_other_sources_change(tmp_path: Path) -> None:
    _repo(tmp_path / "a", "a-*")
    listing = tmp_path / "sources.yaml"
    listing.write_text(f"sources:\n  - name: a\n    url: {tmp_path / 'a'}\n")
    d = _daemon(tmp_path, listing)
    loop = SourcesLoop(d, read_sources_file(str(listing)))
    m = loop.members["a"]
    d.store.set_meta(**{"source/a/lastAttemptedResult": {"result": "rejected"}})
    assert loop._context_changed(m)  # never loaded since start: once
    m.loader.seen = m.loader.others()
    assert not loop._context_changed(m)
    loop.inventory.set(DEFAULT, {("Namespace", "", "team"): ("ns.yaml", 1)})
    assert loop._context_changed(m)  # the Namespace it needed came
    m.loader.seen = m.loader.others()
    d.store.set_meta(**{"source/a/lastAttemptedResult": {"result": "applied"}})
    loop.inventory.set(DEFAULT, {})
    assert not loop._context_changed(m)  # an applied revision is not tried again for that


def test_every_sources_image_rules_come_back_at_start(tmp_path: Path) -> None:
    sha_a = _repo(tmp_path / "a", "a-*")
    listing = tmp_path / "sources.yaml"
    listing.write_text(f"sources:\n  - name: a\n    url: {tmp_path / 'a'}\n")
    d = _daemon(tmp_path, listing)
    main_sha = GitReader(d.repo_dir).resolve("refs/heads/main")
    d.store.set_meta(lastAppliedRevision=main_sha, **{"source/a/lastAppliedRevision": sha_a})
    loop = SourcesLoop(d, read_sources_file(str(listing)))
    asyncio.run(loop.restore_images())
    assert [r["image"] for r in d.runtime.rules] == ["main-*", "a-*"]
    assert d.runtime.rules[1]["workingDir"].startswith(str(tmp_path / "a"))  # in its own checkout
