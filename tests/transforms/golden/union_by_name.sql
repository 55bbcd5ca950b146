-- Orders of three shops stacked; the legacy shop has no channel column.
SELECT order_id, amount, 'web' AS channel FROM web_orders
UNION ALL
SELECT id AS order_id, total AS amount, channel FROM Shop_Orders
UNION ALL BY NAME
SELECT amount, order_id FROM legacy_orders
