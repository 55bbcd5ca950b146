WITH ratings AS (
    -- Inside its own definition "ratings" is still the project table.
    SELECT * FROM Ratings WHERE rated_at >= DATE '1998-01-01'
)
SELECT
    m.title,
    (SELECT avg(r.rating) FROM ratings AS r WHERE r.movie_id = m.movie_id) AS recent_avg,
    m.movie_id IN (SELECT movie_id FROM "WATCHLIST") AS on_watchlist
FROM movies AS m
WHERE EXISTS (
    WITH movies AS (SELECT movie_id FROM tags)
    SELECT 1 FROM movies AS x WHERE x.movie_id = m.movie_id
)
