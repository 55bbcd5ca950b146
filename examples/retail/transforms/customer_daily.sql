-- One row per customer and day with a purchase.
SELECT
    customer_id,
    CAST(strptime(date, '%Y%m%d') AS DATE) AS day,
    count(*) AS orders,
    sum(number_of_cds) AS cds,
    round(sum(dollar_value), 2) AS spend
FROM transactions
GROUP BY ALL
ORDER BY customer_id, day
