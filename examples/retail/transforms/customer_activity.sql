-- Purchase activity per customer, as of the end of each day on which it is
-- observed: every purchase day, and every month end after the first purchase
-- (so that point-in-time lookups at month ends find exact values).
WITH month_ends AS (
    SELECT DISTINCT last_day(day) AS day FROM customer_daily
),
first_purchase AS (
    SELECT customer_id, min(day) AS first_day FROM customer_daily GROUP BY customer_id
),
snapshots AS (
    SELECT customer_id, day AS as_of FROM customer_daily
    UNION
    SELECT f.customer_id, m.day AS as_of
    FROM first_purchase AS f
    JOIN month_ends AS m ON m.day >= f.first_day
)
SELECT
    s.customer_id,
    s.as_of,
    coalesce(sum(d.orders) FILTER (WHERE d.day > s.as_of - INTERVAL 30 DAY), 0) AS orders_30d,
    coalesce(sum(d.spend) FILTER (WHERE d.day > s.as_of - INTERVAL 30 DAY), 0) AS spend_30d,
    coalesce(sum(d.orders) FILTER (WHERE d.day > s.as_of - INTERVAL 90 DAY), 0) AS orders_90d,
    coalesce(sum(d.spend) FILTER (WHERE d.day > s.as_of - INTERVAL 90 DAY), 0) AS spend_90d,
    coalesce(sum(d.orders) FILTER (WHERE d.day > s.as_of - INTERVAL 365 DAY), 0) AS orders_365d,
    coalesce(sum(d.spend) FILTER (WHERE d.day > s.as_of - INTERVAL 365 DAY), 0) AS spend_365d,
    sum(d.orders) AS orders_total,
    count(*) AS purchase_days_total,
    CAST(s.as_of - max(d.day) AS INTEGER) AS days_since_last
FROM snapshots AS s
JOIN customer_daily AS d
    ON d.customer_id = s.customer_id AND d.day <= s.as_of
GROUP BY s.customer_id, s.as_of
ORDER BY s.customer_id, s.as_of
