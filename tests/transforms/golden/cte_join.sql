-- Revenue per customer and month, with the month of the customer's first purchase.
WITH purchases AS (
    SELECT
        customer_id,
        strptime("date", '%Y%m%d')::DATE AS purchased_on,
        number_of_cds,
        dollar_value
    FROM CDNOW_Raw  -- table names are case-insensitive
),
first_purchase AS (
    SELECT customer_id, min(purchased_on) AS first_on
    FROM purchases
    GROUP BY customer_id
)
SELECT
    p.customer_id,
    date_trunc('month', p.purchased_on) AS month_start,
    f.first_on,
    sum(p.dollar_value) AS revenue,
    count(*) FILTER (WHERE p.number_of_cds > 1) AS multi_cd_orders,
    c.segment
FROM purchases AS p
JOIN first_purchase AS f USING (customer_id)
LEFT JOIN "Customer_Segments" AS c ON c.customer_id = p.customer_id
GROUP BY ALL;
