SELECT
    r.* EXCLUDE (raw_line),
    s.segment,
    r.dollar_value / r.number_of_cds AS price_per_cd
FROM cdnow_raw AS r
LEFT JOIN SEGMENTS AS s ON s.customer_id = r.customer_id
