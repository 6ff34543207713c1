"""The forecast reaches the journeys on the real workflow: two refreshes (the second as of
seven months after a steady buyer stopped) through SegmentRefreshWorkflow, the outbox
delivered, and a journey on churn_risk_changed enrolls the customer with the refresh's
churn risk and P(alive) in ``customer``."""

from __future__ import annotations

from datetime import timedelta

from orchestration import customers
from store import segments as segment_store
from tests.conftest import running_worker
from tests.helpers import journeys_from, publish
from tests.test_actions_workflow import Shop, rows
from tests.test_forecast_refresh import AS_OF, DAY, insert, population
from workflows.segments import RefreshRequest, SegmentRefreshWorkflow

WATCH = """
journey: churn_watch
enroll:
  on: [churn_risk_changed]
  when: 'customer.churn_risk > 0.5 && event.properties.previous_churn_risk <= 0.5'
start: warned
states:
  warned:
    on:
      order_completed: back
  back: {final: true}
"""


async def test_a_churn_band_crossing_enrolls_with_the_forecast(
    time_env, db, db_url, task_queue, tmp_path
):
    await publish(db_url, journeys_from(tmp_path, "churn_watch", WATCH))
    rows_ = population(seed=11) + [("quitter", AS_OF - k * 5 * DAY, 50.0) for k in range(73)]
    async with db.connection() as conn:
        await insert(conn, rows_)
    async with running_worker(time_env.client, db, task_queue):
        shop = Shop(time_env, db, db_url, task_queue)
        outcomes = []
        for days in (0, 210):
            outcomes.append(
                await time_env.client.execute_workflow(
                    SegmentRefreshWorkflow.run,
                    RefreshRequest(as_of=AS_OF + days * DAY),
                    id=f"refresh-{days}",
                    task_queue=task_queue,
                )
            )
            await shop.deliver()
        crossed = await rows(
            db, "SELECT count(*) FROM churn_changes WHERE refresh_id = %s", outcomes[1].refresh_id
        )
        # the second refresh's notified counts its segment and churn events
        assert outcomes[1].notified == outcomes[1].changed + crossed[0][0]
        async with db.connection() as conn:
            metrics = await segment_store.metrics_of(conn, "quitter")
        assert metrics is not None and metrics["churn_risk"] > 0.5
        deadline = 60
        state = await customers.state(time_env.client, "quitter")
        while "churn_watch" not in state.runs and deadline > 0:
            await time_env.sleep(timedelta(seconds=1))
            deadline -= 1
            state = await customers.state(time_env.client, "quitter")
    assert state.runs["churn_watch"].state == "warned"
    assert state.customer.churn_risk == metrics["churn_risk"]
    assert state.customer.p_alive == metrics["p_alive"]
    assert state.customer.predicted_clv == metrics["predicted_clv_365d"]
