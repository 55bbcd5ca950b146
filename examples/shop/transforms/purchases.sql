-- Implicit feedback: what each known customer bought, per product and day.
-- Cancellations (invoice numbers starting with C, negative quantities),
-- postage and manual adjustments are not purchases.
SELECT
    CAST(CAST(CustomerID AS BIGINT) AS VARCHAR) AS customer_id,
    StockCode AS stock_code,
    CAST(InvoiceDate AS DATE) AS day,
    CAST(sum(Quantity) AS BIGINT) AS quantity
FROM invoices
WHERE CustomerID IS NOT NULL
    AND NOT starts_with(InvoiceNo, 'C')
    AND Quantity > 0
    AND StockCode NOT IN ('POST', 'M', 'D', 'DOT', 'BANK CHARGES', 'AMAZONFEE', 'CRUK', 'C2')
GROUP BY ALL
HAVING sum(Quantity) > 0
ORDER BY customer_id, stock_code, day
