-- Forecasts (#13): each refresh fits BG/NBD and Gamma-Gamma (engine/forecast.py) on the
-- order history as of its date and writes every customer's forecast next to their metrics
-- (store/forecasts.py). NULL: no forecast (fewer repeat customers than the minimum, or no
-- order up to the refresh date). customer_metrics is rebuilt LIKE itself at every refresh,
-- so these columns travel with it.
ALTER TABLE customer_metrics
    ADD COLUMN p_alive             double precision,  -- P(alive), in [0, 1]
    ADD COLUMN churn_risk          double precision,  -- 1 - p_alive
    ADD COLUMN expected_orders_90d double precision,  -- expected repeat purchases, 90 days
    ADD COLUMN predicted_clv_365d  double precision;  -- expected revenue, 365 days

-- The fitted parameters of each refresh that forecast (none: it skipped the fit).
-- p, q, v are NULL when fewer than two customers had repeat purchases with a value.
CREATE TABLE forecast_fits (
    refresh_id       bigint           PRIMARY KEY REFERENCES segment_refreshes (id),
    r                double precision NOT NULL,
    alpha            double precision NOT NULL,       -- in days
    a                double precision NOT NULL,
    b                double precision NOT NULL,
    p                double precision,
    q                double precision,
    v                double precision,
    customers        integer          NOT NULL,       -- fitted on
    repeat_customers integer          NOT NULL,
    fitted_at        timestamptz      NOT NULL DEFAULT now()
);

-- Who crossed a churn-risk band (store.forecasts.BANDS) between two refreshes that both
-- forecast, and whether their churn_risk_changed event was recorded yet: the fan-out
-- resumes from here after a crash, as for segment_changes.
CREATE TABLE churn_changes (
    refresh_id          bigint           NOT NULL,    -- no foreign key: see segment_changes
    customer_id         text             NOT NULL,
    previous_band       smallint         NOT NULL,
    band                smallint         NOT NULL,
    previous_churn_risk double precision NOT NULL,
    churn_risk          double precision NOT NULL,
    notified_at         timestamptz,
    PRIMARY KEY (refresh_id, customer_id)
);
