"""A pipeline as a graph of steps: who waits for whom, what a finished step hands on, and what
the job says while steps run.

A step waits for the step declared before it (a line) unless it names the steps it waits for
(`after=`). A finished step hands off to every step that waits only on it (fan-out); a step
waiting on several (a join) starts once all of them are finished, done or skipped. The choice
is made by `finish_step` and `claim_step`, pure functions of the job document that every
JobStore applies inside its transaction: of two branches finishing at once, exactly one sees
the other finished and publishes the join, whose message merges every branch's handoff.

Progress: each step declares what the job shows once it is done; the job keeps the highest
figure so far (`schemas.apply_update`), so branches may finish in any order and progress still
never decreases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from common.schemas import (
    Claim,
    Job,
    JobStatus,
    JobUpdate,
    StageMessage,
    apply_claim,
    apply_update,
)

# Between the activities of steps that run side by side ("Making the backdrop · Writing...").
ACTIVITY_SEPARATOR = " · "


@dataclass(frozen=True)
class Step:
    """One stage of one pipeline."""

    stage: str
    progress: int
    """Progress when this step is done (the last step's is 100)."""
    activity: str
    """What the frontend shows while the step runs."""
    optional: bool = False
    """A step the job can do without: when its backend keeps failing transiently, the last
    delivery records it as skipped (with the reason) and the job goes on."""
    after: tuple[str, ...] | None = None
    """The steps this one waits for; None: the step declared just before it."""


@dataclass(frozen=True)
class Pipeline:
    kind: str
    path: str
    """Uploads under `users/{uid}/<path>` start a job of this kind (the longest match wins)."""
    steps: tuple[Step, ...]
    describes: str

    def __post_init__(self) -> None:
        seen: dict[str, Step] = {}
        for index, step in enumerate(self.steps):
            if step.stage in seen:
                raise ValueError(f"{self.kind}: {step.stage} is declared twice")
            waits = self._waits(index)
            if index and not waits:
                raise ValueError(f"{self.kind}: {step.stage} waits for nothing")
            for before in waits:
                # Declaration order is an order of execution: a step waits only on earlier ones.
                if before not in seen:
                    raise ValueError(
                        f"{self.kind}: {step.stage} waits for {before}, not declared before it"
                    )
                if seen[before].progress >= step.progress:
                    raise ValueError(f"{self.kind}: {step.stage}'s progress must exceed {before}'s")
            seen[step.stage] = step
        ends = [s.stage for s in self.steps if not self.following(s.stage)]
        if ends != [self.steps[-1].stage]:
            raise ValueError(f"{self.kind}: only the last step may lead nowhere, not {ends}")

    def _waits(self, index: int) -> tuple[str, ...]:
        step = self.steps[index]
        if step.after is not None:
            return step.after
        return (self.steps[index - 1].stage,) if index else ()

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(step.stage for step in self.steps)

    @property
    def first(self) -> str:
        return self.steps[0].stage

    def step(self, stage: str) -> Step:
        for step in self.steps:
            if step.stage == stage:
                return step
        raise KeyError(f"the {self.kind} pipeline has no stage {stage!r}")

    def after(self, stage: str) -> tuple[str, ...]:
        """The steps `stage` waits for (none for the first)."""
        return self._waits(self.stages.index(stage))

    def following(self, stage: str) -> tuple[str, ...]:
        """The steps that wait for `stage`, in declaration order."""
        return tuple(s for s in self.stages if stage in self.after(s))

    def pending(self, job: Job) -> tuple[str, ...]:
        """The steps the job waits on now: not finished, and everything they wait for is."""
        return tuple(
            stage
            for stage in self.stages
            if not _finished(job, stage) and all(_finished(job, s) for s in self.after(stage))
        )

    def activity(self, job: Job, *also: str) -> str:
        """What the job says: the activity of every pending step (and of `also`)."""
        under_way = {*self.pending(job), *also}
        return ACTIVITY_SEPARATOR.join(
            step.activity for step in self.steps if step.stage in under_way
        )

    def message_to(self, job: Job, stage: str) -> StageMessage | None:
        """The message `stage` starts from: the handoffs of the steps it waits for, merged
        (refs in declaration order; a step degrading the result makes it uncacheable); None
        when one of them recorded no handoff."""
        handoffs = []
        for before in self.after(stage):
            record = job.stages.get(before)
            if record is None or record.handoff is None:
                return None
            handoffs.append(record.handoff)
        if not handoffs:
            return None
        refs: dict[str, str] = {}
        for handoff in handoffs:
            refs.update(handoff.refs)
        return StageMessage(
            job_id=job.id,
            stage=stage,
            kind=job.kind,
            refs=refs,
            cache_key=next((h.cache_key for h in handoffs if h.cache_key), None),
            cacheable=all(h.cacheable for h in handoffs),
        )


def _finished(job: Job, stage: str) -> bool:
    record = job.stages.get(stage)
    return record is not None and record.status.finished


def claim_step(
    job: Job,
    flow: Pipeline,
    stage: str,
    owner: str,
    lease_s: float,
    now: datetime | None = None,
) -> tuple[Job | None, Claim]:
    """`schemas.apply_claim`, saying what every step under way does (branches side by side)."""
    return apply_claim(job, stage, owner, lease_s, flow.activity(job, stage), now)


def finish_step(
    job: Job, flow: Pipeline, stage: str, update: JobUpdate, now: datetime | None = None
) -> tuple[Job | None, list[StageMessage] | None]:
    """Record `stage` finished with `update` (whose record of `stage` holds the step's handoff)
    and decide which steps it starts: the job after, and the messages to publish.

    Returns (None, None) when nothing changes: the job is closed, or another delivery recorded
    the step first. A step starts another when every other step that one waits for is finished
    and no other has started it: so a join is started once, by the last branch to finish.
    The stages started are kept on the record (`handedTo`): only they are ever republished.
    """
    if job.status.terminal or _finished(job, stage):
        return None, None
    record = update.stages[stage]
    starts: list[str] = []
    if record.handoff is not None and update.status is not JobStatus.DONE:
        for target in flow.following(stage):
            others = [s for s in flow.after(target) if s != stage]
            if target in job.stages or not all(_finished(job, s) for s in others):
                continue
            if any(target in job.stages[s].published for s in others):
                continue
            starts.append(target)
    recorded = record.model_copy(update={"handed_to": starts})
    changed = apply_update(
        job, update.model_copy(update={"stages": {**update.stages, stage: recorded}}), now
    )
    if changed is None:
        return None, None
    if changed.status is not JobStatus.DONE and (pending := flow.pending(changed)):
        changed.stage = update.stage or pending[0]
        changed.message = update.message or flow.activity(changed)
    messages = [flow.message_to(changed, target) for target in starts]
    return changed, [message for message in messages if message is not None]
