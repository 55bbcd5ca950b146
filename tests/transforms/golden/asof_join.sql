SELECT t.trade_id, t.ts, q.bid, q.ask, (q.bid + q.ask) / 2 AS mid
FROM trades AS t
ASOF JOIN quotes AS q ON t.symbol = q.symbol AND t.ts >= q.ts
