"""How one call of the interpreter works: the stepper behind ``engine.machine``.

A ``_Stepper`` takes a copy of the customer's state, applies events and timers to it and
collects what to do (actions) and what happened (transitions). The semantics are
documented in ``engine.machine``; what an expression sees and how conditions and ``set:``
are evaluated is ``engine._evaluate``.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Any

from . import _evaluate, calendar, expr, goals
from ._outcome import (
    MAX_EMIT_DEPTH,
    MAX_HISTORY,
    MAX_PROBLEMS,
    Step,
    TransitionRecord,
    cause_of,
    copy_state,
    in_firing_order,
    remember,
)
from .actions import ActionSpec, Emit, Split, TagCustomer, unwrap
from .catalog import Catalog
from .durations import later_by
from .identity import shown_id
from .model import (
    ActionCommand,
    CustomerState,
    Event,
    Journey,
    PendingTimer,
    Problem,
    Rule,
    Run,
    Transition,
)
from .tags import apply_tags


class _Stepper:
    def __init__(self, catalog: Catalog, state: CustomerState, now: datetime) -> None:
        self.catalog = catalog
        self.state = copy_state(state)
        self.now = now
        self.actions: list[ActionCommand] = []
        self.transitions: list[TransitionRecord] = []
        self.emitted: deque[tuple[Event, int]] = deque()
        self.depth = 0
        self.state.steps += 1

    def finish(self) -> Step:
        return Step(state=self.state, actions=self.actions, transitions=self.transitions)

    # --- inputs ---------------------------------------------------------------------------

    def remember(self, event_id: str) -> None:
        remember(self.state.seen, event_id, self.now)

    def apply(self, event: Event, depth: int = 0) -> None:
        self.depth = depth
        names = sorted(set(self.catalog.latest) | set(self.state.runs))
        for name in names:
            if event.origin == name:
                continue
            run = self.state.runs.get(name)
            if run is not None and self._goal(run, event):
                continue  # the run ended on its goal (exit_on_goal)
            if run is not None and run.status == "active":
                self._event_in_run(run, event)
            elif name in self.catalog.latest:
                self._maybe_enrol(self.catalog.current(name), run, event)
        if depth == 0:
            self.drain()

    def drain(self) -> None:
        while self.emitted:
            event, depth = self.emitted.popleft()
            self.apply(event, depth)

    def fire_due(self) -> None:
        while True:
            due = [
                (t.due_at, name, t.index, t)
                for name, r in sorted(self.state.runs.items())
                if r.status == "active"
                for t in r.timers
                if t.due_at <= self.now
            ]
            if not due:
                return
            due_at, name, _, timer = min(due, key=lambda d: (d[0], d[1], d[2]))
            run = self.state.runs[name]
            run.timers.remove(timer)
            definition = self._definition(run)
            spec, visit = definition.states[run.state], run.visit
            if timer.at is not None:  # a calendar timer: its rule, then its next occurrence
                rules, event = calendar.occurrence(run, spec, timer)
            else:
                rules = spec.after[timer.index].rules
                run.fired.append(spec.after[timer.index].seconds)
                event = Event(
                    name="timer",
                    id=f"timer:{run.enrollment}:{run.visit}:{timer.label}",
                    timestamp=due_at,
                    properties={"after": timer.label},
                    source="timer",
                )
            saved, self.now, self.depth = self.now, due_at, 0  # each timer starts a chain
            try:
                where = timer.label if timer.at is not None else f"after:{timer.label}"
                self._run_rules(run, definition, rules, event, where)
                if timer.at is not None and run.status == "active" and run.visit == visit:
                    calendar.arm(self.catalog, self.state, run, spec, self.now, only=timer.at)
            finally:
                self.now = saved
            self.drain()

    # --- journeys -------------------------------------------------------------------------

    def _definition(self, run: Run) -> Journey:
        return self.catalog.get(run.journey, run.version)

    def _event_in_run(self, run: Run, event: Event) -> None:
        definition = self._definition(run)
        if definition.exit_when and self._holds(run, definition, definition.exit_when, event):
            self._exit(run, f"exit_when on {event.name}")
            return
        rules = definition.states[run.state].on.get(event.name)
        if rules:
            self._run_rules(run, definition, rules, event, f"on:{event.name}")

    def _maybe_enrol(self, definition: Journey, run: Run | None, event: Event) -> None:
        if event.name not in definition.enroll.on:
            return
        if run is not None and definition.enroll.reenter == "never":
            return
        probe = Run(
            journey=definition.journey,
            version=definition.version,
            state=definition.start,
            entered_at=self.now,
            enrolled_at=self.now,
            context=dict(definition.context),
        )
        if definition.enroll.when and not self._holds(
            probe, definition, definition.enroll.when, event
        ):
            return
        new = self.enrol(
            definition, event=event, start=definition.start, cause=f"enroll:{event.name}"
        )
        rules = definition.states[new.state].on.get(event.name)
        if rules and new.status == "active":
            self._run_rules(new, definition, rules, event, f"on:{event.name}")

    def enrol(self, definition: Journey, *, event: Event | None, start: str, cause: str) -> Run:
        previous = self.state.runs.get(definition.journey)
        run = Run(
            journey=definition.journey,
            version=definition.version,
            state=start,
            entered_at=self.now,
            enrolled_at=self.now,
            context=dict(definition.context),
            enrollment=(previous.enrollment + 1) if previous else 1,
        )
        self.state.runs[definition.journey] = run
        self._enter(run, definition, start, None, cause, event)
        return run

    def goto(
        self, run: Run, definition: Journey, target: str, cause: str, event: Event | None
    ) -> None:
        self._enter(run, definition, target, run.state, cause, event)

    def _enter(
        self,
        run: Run,
        definition: Journey,
        target: str,
        source: str | None,
        cause: str,
        event: Event | None,
    ) -> None:
        spec = definition.states[target]
        run.state = target
        run.entered_at = self.now
        run.visit += 1
        run.fired, run.at_fired = [], {}
        run.timers = in_firing_order(
            [
                PendingTimer(index=i, label=t.label, due_at=later_by(self.now, t.seconds))
                for i, t in enumerate(spec.after)
            ]
        )
        calendar.arm(self.catalog, self.state, run, spec, self.now)
        self._log(run, source, target, cause, "")
        self._act(run, definition, spec.enter, event, f"enter:{target}")
        if spec.final:
            run.status = "completed"
            run.timers = []

    def _exit(self, run: Run, cause: str) -> None:
        run.status = "exited"
        run.timers = []
        self._log(run, run.state, "exited", cause, "/exit")

    def _log(self, run: Run, source: str | None, target: str, cause: str, suffix: str) -> None:
        run.history.append(Transition(at=self.now, from_state=source, to_state=target, cause=cause))
        del run.history[:-MAX_HISTORY]
        key = f"{self.state.customer.id}/{run.journey}/{run.enrollment}/{run.visit}{suffix}"
        self.transitions.append(
            TransitionRecord(
                journey=run.journey,
                version=run.version,
                from_state=source,
                to_state=target,
                cause=cause,
                at=self.now,
                key=key,
            )
        )

    # --- rules ----------------------------------------------------------------------------

    def _run_rules(
        self, run: Run, definition: Journey, rules: list[Rule], event: Event, where: str
    ) -> None:
        for index, rule in enumerate(rules):
            if rule.when is not None and not self._holds(run, definition, rule.when, event):
                continue
            if rule.set and not self._assign(run, definition, rule.set, event):
                continue
            if rule.do:
                self._act(run, definition, rule.do, event, f"{where}:{event.id}:{index}")
            if rule.goto is not None:
                self.goto(run, definition, rule.goto, cause_of(event), event)
                return

    def _env(self, run: Run, event: Event | None) -> dict[str, Any]:
        known = goals.experiment_names(self.catalog)  # experiment.NAME is "" until split
        experiments = {**dict.fromkeys(known, ""), **self.state.experiments}
        return _evaluate.environment(
            self.state.customer, run, event, self.now, experiments=experiments
        )

    def _holds(self, run: Run, definition: Journey, source: str, event: Event | None) -> bool:
        result = _evaluate.condition(source, self._env(run, event))
        if isinstance(result, str):
            self._problem(run, result)
            return False
        return result

    def _assign(
        self, run: Run, definition: Journey, assignments: dict[str, str], event: Event
    ) -> bool:
        merged = _evaluate.assign(
            run.context, definition.context, assignments, self._env(run, event)
        )
        if isinstance(merged, str):
            self._problem(run, merged)
            return False
        run.context = merged
        return True

    def _act(
        self, run: Run, definition: Journey, calls: list[Any], event: Event | None, where: str
    ) -> None:
        for index, call in enumerate(calls):
            spec = unwrap(call)
            key = (
                f"{self.state.customer.id}/{run.journey}/{run.enrollment}/{run.visit}/"
                f"{where}/{index}"
            )
            if spec.when is not None and not self._holds(run, definition, spec.when, event):
                continue
            if goals.withheld(self.state, run, definition, spec):  # tracked, never messaged
                run.withheld += 1
                continue
            if isinstance(spec, Emit):
                if self.depth >= MAX_EMIT_DEPTH:
                    self._problem(
                        run,
                        f"emit {spec.event}: more than {MAX_EMIT_DEPTH} emits in "
                        "a chain (a loop between journeys?); not delivered",
                    )
                    continue
                emitted = Event(
                    name=spec.event,
                    id=key,
                    timestamp=self.now,
                    properties=dict(spec.properties),
                    source="emit",
                    origin=run.journey,
                )
                self.emitted.append((emitted, self.depth + 1))
                continue
            if isinstance(spec, TagCustomer):  # seen at once by every journey's rules
                self.state.customer, spec, problem = apply_tags(self.state.customer, spec)
                if problem:
                    self._problem(run, problem)
            if isinstance(spec, Split):  # the arm is known at once, to later actions too
                args = goals.apply_split(self.state, run, spec, self.now)
            else:
                args = spec.model_dump(mode="json", by_alias=True, exclude={"when"})
            self._command(run, spec, args, key, event)

    def _command(
        self, run: Run, spec: ActionSpec, args: dict[str, Any], key: str, event: Event | None
    ) -> None:
        self.actions.append(
            ActionCommand(
                kind=spec.kind,
                args=args,
                journey=run.journey,
                version=run.version,
                state=run.state,
                idempotency_key=key,
                summary=spec.summary(shown_id(self.state.customer.id)),
                event=event if event and event.source != "timer" else None,
            )
        )

    def _goal(self, run: Run, event: Event) -> bool:
        """Record ``run``'s conversion if ``event`` reaches its goal; True when the run
        ended on it (``exit_on_goal``)."""
        definition = self.catalog.versions.get(self.catalog.key(run.journey, run.version))
        if definition is None or not goals.goal_window_open(definition, run, event, self.now):
            return False
        when = definition.goal.when if definition.goal else None
        if when and not self._holds(run, definition, when, event):
            return False
        run.converted_at = self.now
        spec = goals.conversion(run, event, self.now)
        key = f"{self.state.customer.id}/{run.journey}/{run.enrollment}/goal"
        self._command(run, spec, spec.model_dump(mode="json", exclude={"when"}), key, event)
        if definition.exit_on_goal and run.status == "active":
            self._exit(run, "goal")
            return True
        return False

    def _problem(self, run: Run, message: str) -> None:
        problems = self.state.problems
        problems.append(Problem(at=self.now, journey=run.journey, state=run.state, message=message))
        del problems[:-MAX_PROBLEMS]

    # --- versions -------------------------------------------------------------------------

    def upgrade(self) -> None:
        for name, run in sorted(self.state.runs.items()):
            floor = self.catalog.floor.get(name, 0)
            if run.status != "active" or run.version >= floor or name not in self.catalog.latest:
                continue
            new = self.catalog.current(name)
            target = run.state if run.state in new.states else new.migrate.get(run.state)
            if target is None:
                self._problem(
                    run,
                    f"cannot upgrade to v{new.version}: state '{run.state}' is "
                    "gone and migrate: does not map it",
                )
                continue
            context = {k: run.context.get(k, v) for k, v in new.context.items()}
            for k, v in new.context.items():
                if not expr.fits(v, context[k]):
                    context[k] = v
            fired = set(run.fired)
            spec = new.states[target]
            run.timers = in_firing_order(
                [
                    PendingTimer(index=i, label=t.label, due_at=later_by(run.entered_at, t.seconds))
                    for i, t in enumerate(spec.after)
                    if t.seconds not in fired
                ]
            )
            source, old_version = run.state, run.version
            run.version, run.state, run.context = new.version, target, context
            calendar.arm(self.catalog, self.state, run, spec, self.now)
            self._log(
                run,
                source,
                target,
                f"upgrade v{old_version}->v{new.version}",
                f"/upgrade-v{new.version}",
            )
            if spec.final:
                run.status = "completed"
                run.timers = []
