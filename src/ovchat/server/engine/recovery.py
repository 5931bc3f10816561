"""Who a failed step is blamed on, and how every other answer continues after the rebuild.

A step that throws leaves GenAI's pipeline unusable for good (every later step fails with
"already in scheduling phase"), so the engine rebuilds it. The culprit is the job admitted just
before the failure; when several went in together they all become suspects and are re-admitted
one at a time until the step fails again. Every other answer continues where it stopped: its
prompt plus the tokens already streamed become the new prompt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ovchat.errors import GenerationError, OvchatError, RequestRejected, Unavailable
from ovchat.prompt.request import GenerationRequest
from ovchat.server.engine.jobs import Job

log = logging.getLogger("ovchat.server")
MAX_FAILED_STEPS = 5  # failed steps in a row (no step succeeding between them) before giving up


@dataclass
class Triage:
    """The batch of a failed step, sorted: jobs that fail (with their error), and jobs to continue."""

    failed: list[tuple[Job, OvchatError]] = field(default_factory=list)
    retry: list[Job] = field(default_factory=list)


def triage(running: list[Job], message: str) -> Triage:
    """Sort the batch of a step that failed with `message`; their pipeline handles are let go."""
    fresh = [job for job in running if job.fresh]
    suspects = fresh or list(running)  # nothing new went in: any running job may be at fault
    log.error(
        "generation step failed (%s); %d request(s) suspected; rebuilding the pipeline",
        message,
        len(suspects),
    )
    sorted_out = Triage()
    for job in running:
        job.handle = None
        if job in suspects and (len(suspects) == 1 or job.suspect):
            log.warning("request %d failed the engine step: %s", job.id, message)
            sorted_out.failed.append((job, culprit_error(job.request, message)))
        elif job.request.constrained and job.ids:
            # Its grammar would restart from the top: it cannot be continued, only retried.
            restart = Unavailable("the server restarted its engine: retry the request", "engine_restart")
            sorted_out.failed.append((job, restart))
        else:
            job.suspect = job.suspect or job in suspects
            sorted_out.retry.append(continuation(job))
    return sorted_out


def culprit_error(request: GenerationRequest, message: str) -> OvchatError:
    """What the job that broke the step is told: a schema GenAI's grammar cannot run is the client's."""
    if request.json_schema is not None:
        return RequestRejected(f"the json_schema schema cannot be used: {message}", param="json_schema")
    if request.calls:
        return RequestRejected(f"the tools' parameters schemas cannot be used: {message}", param="tools")
    return GenerationError(f"generation failed: {message}")


def continuation(job: Job) -> Job:
    """Set `job` up to resume: what it generated so far joins its prompt."""
    if job.ids and job.config is not None:
        job.prompt_ids = job.prompt_ids + job.ids[len(job.prompt_ids) - job.prompt_tokens :]
        job.config.max_new_tokens = max(1, job.budget - len(job.ids))
    job.fresh = False
    return job
