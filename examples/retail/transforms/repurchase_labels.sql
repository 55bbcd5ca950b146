-- At each month end, for every customer who had bought by then: did they buy
-- again within the next 90 days? Only month ends whose 90-day window lies
-- inside the data are labelled, so every label is observed, never guessed.
WITH bounds AS (
    SELECT max(day) AS last_day FROM customer_daily
),
cutoffs AS (
    SELECT DISTINCT last_day(day) AS as_of FROM customer_daily
),
observable AS (
    SELECT c.as_of FROM cutoffs AS c, bounds AS b WHERE c.as_of + INTERVAL 90 DAY <= b.last_day
),
customers AS (
    SELECT o.as_of, f.customer_id
    FROM observable AS o
    JOIN (SELECT customer_id, min(day) AS first_day FROM customer_daily GROUP BY customer_id) AS f
        ON f.first_day <= o.as_of
)
SELECT
    c.customer_id,
    c.as_of,
    CAST(count(d.day) > 0 AS INTEGER) AS bought_again_90d
FROM customers AS c
LEFT JOIN customer_daily AS d
    ON d.customer_id = c.customer_id
    AND d.day > c.as_of
    AND d.day <= c.as_of + INTERVAL 90 DAY
GROUP BY c.customer_id, c.as_of
ORDER BY c.customer_id, c.as_of
