"""GitReader reads a branch's loose ref and a commit's author and subject without starting git: the
answers must be the ones git itself gives."""

import subprocess

from reconciler.source.git import GitReader, git


def _repo(tmp_path, message: str) -> str:
    repo = str(tmp_path / "repo")
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    (tmp_path / "repo" / "a.txt").write_text("a\n")
    env = ["-c", "user.name=Ann Example", "-c", "user.email=ann@example.com"]
    subprocess.run(["git", "-C", repo, "add", "-A"], check=True)
    subprocess.run(["git", "-C", repo, *env, "commit", "-q", "--cleanup=verbatim", "-m", message], check=True)
    return repo


def _git_revision(repo: str, sha: str) -> tuple[str, str, str, float, str]:
    out = git(repo, "show", "-s", "--format=%H%x00%an%x00%ae%x00%at%x00%s", sha).decode().rstrip("\n")
    h, an, ae, at, s = out.split("\x00", 4)
    return h, an, ae, float(at), s


def test_revision_and_message_match_git(tmp_path):
    message = "\n\n  first line\n\tstill the subject  \n\nbody line\n\nGitship-Allow-Prune: true\n"
    repo = _repo(tmp_path, message)
    reader = GitReader(repo)
    try:
        sha = reader.resolve("refs/heads/main")
        assert sha == git(repo, "rev-parse", "HEAD").decode().strip()
        r = reader.revision(sha)
        assert (r.sha, r.author, r.email, r.time, r.subject) == _git_revision(repo, sha)
        assert reader.message(sha).strip() == git(repo, "show", "-s", "--format=%B", sha).decode().strip()
    finally:
        reader.close()


def test_packed_and_missing_refs_fall_back_to_git(tmp_path):
    repo = _repo(tmp_path, "one")
    subprocess.run(["git", "-C", repo, "pack-refs", "--all"], check=True)  # no loose ref file left
    reader = GitReader(repo)
    try:
        assert reader.resolve("refs/heads/main") == git(repo, "rev-parse", "HEAD").decode().strip()
        assert reader.resolve("refs/heads/nope") is None
        assert reader.resolve("HEAD") == reader.resolve("refs/heads/main")
        assert reader.revision("HEAD").subject == "one"  # a name, not a sha: git formats it
    finally:
        reader.close()
