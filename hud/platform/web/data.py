"""What the jobs, job and trace pages show, and the `ViewSource` that supplies it.

Two sources implement `ViewSource`: `hud.platform.web.local.LocalSource` (job records under a
``.hud/jobs`` directory, for ``hud view``) and the platform's (`hud.platform.web.mount`, one
team's jobs in the database, aggregates computed in SQL). The pages only see these shapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Bins of the reward histogram.
BINS = 10
#: Groups shown in the spread plot and table.
GROUPS_SHOWN = 60


@dataclass
class JobRow:
    """A job in a list (and the head of its page)."""

    id: str
    name: str = ""
    status: str = "unknown"
    created_at: str | None = None
    runs: int = 0
    total: int | None = None
    errors: int = 0
    reward: float | None = None


@dataclass
class JobsPage:
    items: list[JobRow]
    total: int
    offset: int = 0
    limit: int = 50


@dataclass
class Bin:
    """Rewards in ``[lo, hi)`` (the last bin includes ``hi``)."""

    lo: float
    hi: float
    count: int


@dataclass
class GroupStat:
    """The rollouts of one group (the same task run several times)."""

    key: str
    label: str
    n: int
    mean: float
    lo: float
    hi: float
    std: float


@dataclass
class JobDetail:
    job: JobRow
    status_counts: dict[str, int] = field(default_factory=dict)
    rewarded: int = 0
    mean_reward: float | None = None
    reward_std: float | None = None
    success_rate: float | None = None
    histogram: list[Bin] = field(default_factory=list)
    group_count: int = 0
    #: The pooled standard deviation within groups (sqrt of the mean within-group variance).
    within_group_std: float | None = None
    #: Up to `GROUPS_SHOWN` groups, the widest spread first.
    groups: list[GroupStat] = field(default_factory=list)
    #: Rollouts started but not finished yet (local records).
    in_flight: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.job.status == "running"


@dataclass
class RolloutRow:
    trace_id: str
    slug: str | None = None
    group: str | None = None
    group_index: int | None = None
    status: str | None = None
    reward: float | None = None
    duration_s: float | None = None
    error: str | None = None
    started_at: str | None = None


@dataclass
class RolloutsPage:
    items: list[RolloutRow]
    total: int
    offset: int = 0
    limit: int = 50


@dataclass
class TraceView:
    """One rollout: its outcome and its steps (step dicts in the ``hud.step.v1`` payload shape:
    ``source`` = task | user | agent | tool | system | subagent)."""

    id: str
    job_id: str | None = None
    job_name: str | None = None
    slug: str | None = None
    status: str | None = None
    reward: float | None = None
    error: str | None = None
    stop_reason: str | None = None
    model: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    grade: dict[str, Any] | None = None
    answer: Any = None
    args: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    #: Spans that are not steps (other schemas, ``@instrument`` spans), as uploaded.
    other_spans: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Calls the platform's inference gateway recorded for this trace (``calls``,
    #: ``input_tokens``, ``output_tokens``, ``latency_ms``, ``cost``), when any.
    gateway: dict[str, Any] | None = None

    @property
    def live(self) -> bool:
        return self.status in (None, "running", "queued")


class ViewSource(Protocol):
    """Where the pages read jobs and traces. ``None`` from `job`/`trace` is a 404 (missing, or
    another team's)."""

    @property
    def statuses(self) -> Sequence[str]:
        """Status values the jobs filter offers."""
        ...

    async def jobs(
        self, *, query: str = "", status: str = "", offset: int = 0, limit: int = 50
    ) -> JobsPage: ...

    async def job(self, job_id: str) -> JobDetail | None: ...

    async def rollouts(
        self,
        job_id: str,
        *,
        status: str = "",
        sort: str = "",
        offset: int = 0,
        limit: int = 50,
    ) -> RolloutsPage | None:
        """``sort``: "" (the order they ran or finished), ``reward`` (lowest first) or
        ``-reward`` (highest first); rollouts without a reward come last."""
        ...

    async def trace(self, trace_id: str) -> TraceView | None: ...


# -- figures from plain lists (the local source; the platform computes them in SQL) --------
def bin_edges(lo: float | None, hi: float | None, bins: int = BINS) -> list[float]:
    """Edges of the reward histogram: [0, 1] in ``bins`` steps when every reward is in it,
    else [lo, hi] (one bin when they are equal)."""
    if lo is None or hi is None:
        return []
    if lo >= 0 and hi <= 1:
        lo, hi = 0.0, 1.0
    if hi <= lo:
        return [lo, lo]
    step = (hi - lo) / bins
    return [lo + i * step for i in range(bins)] + [hi]


def bin_index(value: float, edges: Sequence[float]) -> int:
    last = len(edges) - 2
    for i in range(last):
        if value < edges[i + 1]:
            return i
    return last


def histogram(rewards: Sequence[float], bins: int = BINS) -> list[Bin]:
    if not rewards:
        return []
    edges = bin_edges(min(rewards), max(rewards), bins)
    counts = [0] * (len(edges) - 1)
    for value in rewards:
        counts[bin_index(value, edges)] += 1
    return [Bin(edges[i], edges[i + 1], c) for i, c in enumerate(counts)]


def group_stats(groups: Iterable[tuple[str, str, Sequence[float]]]) -> list[GroupStat]:
    """(key, label, rewards) per group -> stats, widest spread first."""
    out = []
    for key, label, values in groups:
        if not values:
            continue
        n = len(values)
        mean = sum(values) / n
        var = max(0.0, sum(v * v for v in values) / n - mean * mean)
        out.append(GroupStat(key, label, n, mean, min(values), max(values), math.sqrt(var)))
    out.sort(key=lambda g: (-(g.hi - g.lo), -g.std, g.label))
    return out


def pooled_std(stats: Sequence[GroupStat]) -> float | None:
    if not stats:
        return None
    return math.sqrt(sum(g.std * g.std for g in stats) / len(stats))
