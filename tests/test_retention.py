"""A cached workflow keeps none of its first activation (``orchestration._retention``):
with upb, any part of a protobuf message kept alive keeps the whole message, and the SDK
kept parts of the first activation (the start's input, the first events) for the run's
life. Measured in process memory: each activation here carries 1 MB."""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import gc
from types import SimpleNamespace
from typing import Any

import psutil
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.worker import _workflow_instance as impl

from orchestration import _retention

MB = 1 << 20
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None)


def _return_free_memory() -> None:
    """Hand the allocator's free pages back to the system (glibc), so that what the
    measurement allocates shows in RSS instead of reusing pages earlier tests freed."""
    gc.collect()
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _activation() -> WorkflowActivation:
    act = WorkflowActivation()
    init = act.jobs.add().initialize_workflow
    init.arguments.add().data = b"x" * MB  # the start's input
    init.headers["h"].data = b"header"
    init.last_completion_result.payloads.add().data = b"last"
    return act


def _grown_by(keep: object) -> float:
    """MB of process memory still held after making 40 activations and keeping ``keep``
    of each (a function of the activation)."""
    proc = psutil.Process()
    _return_free_memory()
    before = proc.memory_info().rss
    kept = []
    for _ in range(40):
        kept.append(keep(_activation()))  # type: ignore[operator]
    gc.collect()
    return (proc.memory_info().rss - before) / MB


def test_a_part_of_an_activation_keeps_it_all_and_a_copy_does_not():
    def init(act: WorkflowActivation) -> Any:
        return act.jobs[0].initialize_workflow

    # RSS also moves with what other threads free or take meanwhile (an earlier test's
    # runtime winding down): a measurement is repeated up to 3 times before it counts
    assert any(_grown_by(lambda a: init(a).headers) > 30 for _ in range(3))  # the SDK's
    assert any(
        _grown_by(lambda a: _retention.own(init(a).last_completion_result)) < 10 for _ in range(3)
    )
    owned = _retention.own(_activation().jobs[0].initialize_workflow.last_completion_result)
    assert [p.data for p in owned.payloads] == [b"last"]  # equal to what it replaces


def test_the_details_and_the_input_keep_copies():
    from temporalio.worker import WorkflowInstanceDetails
    from temporalio.workflow import Info

    act = _activation()
    init = act.jobs[0].initialize_workflow
    fields = {f.name: None for f in dataclasses.fields(Info)}
    info = Info(**{**fields, "headers": dict(init.headers), "raw_memo": {}})  # type: ignore[arg-type]
    det = WorkflowInstanceDetails(
        **{f.name: None for f in dataclasses.fields(WorkflowInstanceDetails)}  # type: ignore[arg-type]
        | {"info": info, "last_completion_result": init.last_completion_result}
    )
    free = _retention.detached(det)
    assert free.last_completion_result == det.last_completion_result
    assert free.last_completion_result is not det.last_completion_result
    assert free.info.headers == info.headers and free.info.headers["h"] is not info.headers["h"]
    _retention.install()
    _retention.install()  # once per process, however often asked
    make = impl._WorkflowInstanceImpl._make_workflow_input
    assert getattr(make, "_journeys_owned", False)
    fake = SimpleNamespace(
        _defn=SimpleNamespace(name="W", arg_types=[], cls=object, run_fn=None),
        _convert_payloads=lambda payloads, types, converter: [],
        _workflow_context_payload_converter=None,
    )
    made = make(fake, init)  # type: ignore[arg-type]
    assert dict(made.headers) == dict(init.headers) and made.headers["h"] is not init.headers["h"]
    assert isinstance(made.headers, dict)
