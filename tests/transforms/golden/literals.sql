SELECT
    1 AS version,
    'cdnow' AS source,
    current_date AS computed_on,
    count(*) AS purchases,
    count(DISTINCT customer_id) AS customers,
    max(dollar_value) AS largest
FROM cdnow_raw
