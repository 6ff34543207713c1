"""A cached workflow must not keep its first activation alive.

The SDK keeps protobuf objects of the workflow's first activation for the run's life
(``WorkflowInstanceDetails.last_completion_result`` and ``last_failure``, the start's
headers and memo, and ``ExecuteWorkflowInput.headers``). With the upb protobuf runtime a
part of a message keeps the whole message's memory, so every cached customer held its
first activation: the start's input (the catalog a new customer's start carries, ~11 KB,
both encrypted and decoded) and the first events. Copies of those small parts, each a
message of its own, let the activation go as soon as it was applied (``bench/
ingest_bench.py``: worker memory per cached customer). Nothing a workflow decides depends
on this: the copies are equal to what they replace."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from temporalio.worker import WorkflowInstanceDetails

log = logging.getLogger(__name__)
M = TypeVar("M")


def own(message: M) -> M:
    """A copy of a protobuf ``message`` with memory of its own."""
    if message is None:
        return message
    copy = type(message)()
    copy.CopyFrom(message)  # type: ignore[attr-defined]
    return copy


def _owned(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: own(v) for k, v in values.items()}


def detached(det: WorkflowInstanceDetails) -> WorkflowInstanceDetails:
    """``det`` without references into the activation it was made from."""
    info = dataclasses.replace(
        det.info, headers=_owned(det.info.headers), raw_memo=_owned(det.info.raw_memo)
    )
    return dataclasses.replace(
        det,
        info=info,
        last_completion_result=own(det.last_completion_result),
        last_failure=own(det.last_failure),
    )


def install() -> None:
    """Make the SDK copy the start's headers when it builds the workflow's input (once
    per process). If a later SDK no longer has the function, nothing is changed and a
    warning says memory per cached workflow may grow (correctness does not depend on it)."""
    from temporalio.worker import _workflow_instance as impl

    cls: Any = impl._WorkflowInstanceImpl
    make = getattr(cls, "_make_workflow_input", None)
    if make is None:
        log.warning("temporalio changed: a cached workflow may keep its first activation")
        return
    if getattr(make, "_journeys_owned", False):
        return

    def make_owned(self: Any, init_job: Any) -> Any:
        made = make(self, init_job)
        return dataclasses.replace(made, headers=_owned(made.headers))

    make_owned._journeys_owned = True  # type: ignore[attr-defined]
    cls._make_workflow_input = make_owned
