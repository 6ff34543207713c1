-- Forecast history (#13) is written a million rows at a time, once per kept refresh, and
-- read by refresh_id only (the calibration, store/reports/forecast.py). Its foreign key
-- checked every row against the one forecast_fits row (a trigger per row: 11 of the 17 s
-- of a million-row refresh's history) and its (refresh_id, customer_id) key took the
-- rows in random order. An index on refresh_id serves every read; the rows of a refresh
-- come from customer_metrics_next, one per customer, so they stay unique; and history
-- rows go before their fit does (store.forecasts.keep_history deletes them by refresh).
ALTER TABLE forecast_history DROP CONSTRAINT forecast_history_refresh_id_fkey;
ALTER TABLE forecast_history DROP CONSTRAINT forecast_history_pkey;
CREATE INDEX forecast_history_refresh ON forecast_history (refresh_id);
