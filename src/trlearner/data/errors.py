"""The one error type of data fetching: it always says which file, from where, and what to do."""

from __future__ import annotations


class DataFetchError(RuntimeError):
    """A dataset could not be fetched, verified, extracted or converted.

    The message names the file, the URL (or local path) it came from, the problem, and what the
    user should do about it.
    """

    def __init__(self, problem: str, *, file: str | None = None, url: str | None = None,
                 todo: str | None = None, dataset: str | None = None):
        self.problem, self.file, self.url, self.todo, self.dataset = problem, file, url, todo, dataset
        parts = []
        if dataset:
            parts.append(f"[{dataset}]")
        if file:
            parts.append(f"file {file!r}")
        if url:
            parts.append(f"from {url}")
        head = " ".join(parts)
        msg = f"{head}: {problem}" if head else problem
        self.headline = msg  # the message without its advice (for lists of attempts)
        if todo:
            msg += f"\n  What to do: {todo}"
        super().__init__(msg)
