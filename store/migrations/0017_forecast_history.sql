-- Forecast history (#13): customer_metrics is replaced at every refresh, so the expected
-- orders a past refresh predicted are gone by the time its 90 days have passed. To compare
-- them with the orders that came (the report's calibration, store/reports/forecast.py),
-- a refresh that forecast keeps each customer's expected_orders_90d here, at most one
-- refresh per 30 days of as_of and the latest few of them (store.forecasts.keep_history):
-- about a million rows per kept refresh at a million customers, not one per day.
CREATE TABLE forecast_history (
    refresh_id          bigint           NOT NULL REFERENCES forecast_fits (refresh_id),
    customer_id         text             NOT NULL,
    expected_orders_90d double precision NOT NULL,
    PRIMARY KEY (refresh_id, customer_id)
);

-- Which events were orders for the refresh that fitted (rules/segments.yaml orders.events),
-- so that the calibration counts the later orders the way that forecast did. NULL: a fit
-- from before this column, counted as order_completed.
ALTER TABLE forecast_fits ADD COLUMN order_events text[];
