-- One row per customer and month, months without a purchase included.
SELECT
    c.customer_id,
    m.month_start,
    last_day(m.month_start) AS month_end,
    coalesce(sum(p.dollar_value), 0) AS revenue,
    any_value(h.name) AS holiday
FROM range(DATE '1997-01-01', DATE '1998-07-01', INTERVAL 1 MONTH) AS m(month_start)
CROSS JOIN (SELECT DISTINCT customer_id FROM purchases) AS c
LEFT JOIN purchases AS p
    ON p.customer_id = c.customer_id
   AND date_trunc('month', p.purchased_on) = m.month_start
LEFT JOIN read_csv('data/holidays.csv') AS h ON h.day = m.month_start
GROUP BY ALL
ORDER BY ALL
