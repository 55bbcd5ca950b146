/* The last three purchases of each customer, with rolling spend. */
SELECT
    customer_id,
    purchased_on,
    sum(dollar_value) OVER (
        PARTITION BY customer_id
        ORDER BY purchased_on
        RANGE BETWEEN INTERVAL 30 DAYS PRECEDING AND CURRENT ROW
    ) AS spend_30d,
    purchased_on - lag(purchased_on) OVER w AS days_since_previous,
    row_number() OVER (PARTITION BY customer_id ORDER BY purchased_on DESC) AS recency_rank
FROM Purchases
WINDOW w AS (PARTITION BY customer_id ORDER BY purchased_on)
QUALIFY recency_rank <= 3
