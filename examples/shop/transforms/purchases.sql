-- Implicit feedback: what each known customer bought, per product and day.
-- Cancellations (invoice numbers starting with C, negative quantities),
-- postage and manual adjustments are not purchases.
-- Beside it, one value per customer and per product for the factorization
-- machine's side features: the country the customer last bought from, and the
-- product's median unit price (a catalogue attribute, so the whole year's).
WITH bought AS (
    SELECT *
    FROM invoices
    WHERE CustomerID IS NOT NULL
        AND NOT starts_with(InvoiceNo, 'C')
        AND Quantity > 0
        AND StockCode NOT IN ('POST', 'M', 'D', 'DOT', 'BANK CHARGES', 'AMAZONFEE', 'CRUK', 'C2')
),
customers AS (
    SELECT CustomerID, arg_max(Country, InvoiceDate) AS country
    FROM bought
    GROUP BY ALL
),
products AS (
    SELECT StockCode, median(UnitPrice) AS unit_price
    FROM bought
    WHERE UnitPrice > 0
    GROUP BY ALL
)
SELECT
    CAST(CAST(b.CustomerID AS BIGINT) AS VARCHAR) AS customer_id,
    b.StockCode AS stock_code,
    CAST(b.InvoiceDate AS DATE) AS day,
    CAST(sum(b.Quantity) AS BIGINT) AS quantity,
    any_value(c.country) AS country,
    any_value(p.unit_price) AS unit_price
FROM bought AS b
JOIN customers AS c USING (CustomerID)
LEFT JOIN products AS p USING (StockCode)
GROUP BY b.CustomerID, b.StockCode, CAST(b.InvoiceDate AS DATE)
HAVING sum(b.Quantity) > 0
ORDER BY customer_id, stock_code, day
