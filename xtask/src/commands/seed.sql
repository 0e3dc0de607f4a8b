-- seed.sql : deterministic synthetic data for the SigmaSight CORE database
-- (sigmasight_db), to be run right AFTER `alembic -c alembic.ini upgrade head`
-- on an EMPTY database.
--
-- Contract with the caller (xtask):
--   * Set the scale factor in the same session first, e.g.
--       SET xtask.scale = 1      (any integer >= 1)
--     It is read here with current_setting('xtask.scale')::int.
--   * Send this whole file as ONE simple-query batch, inside a transaction.
--     No psql meta-commands, no COPY, no bind parameters. Statements are
--     separated by semicolons only at statement ends: no semicolon appears
--     inside a string literal or a comment (data semicolons come from chr(59)).
--   * The script refuses to run on a non-empty database and when xtask.scale
--     is missing or invalid (the error text says why).
--
-- Determinism: no random(), now(), gen_random_uuid() or clock functions. UUIDs
-- are md5() of a fixed string, numbers come from integer/numeric arithmetic,
-- timestamps are fixed UTC instants (independent of the session TimeZone),
-- identity ids are explicit. Two runs on fresh databases give identical rows.
--
-- Shape at scale 1 (production-like): 6 users, 6 portfolios, 97 positions
-- (69 equity + 28 options), 556 company_profiles, 556 x 348 = 193,488
-- market_data_cache rows, 12 factor_definitions, 828 position_factor_exposures,
-- 69 position_market_betas, 12 portfolio_snapshots, 10 tags, position_tags,
-- 28 position_greeks, 97 position_volatility, 12 correlation_calculations and
-- their pairwise_correlations. Scale N multiplies the symbol universe:
-- company_profiles = 556*N, market_data_cache = 556*N*348. Everything else is
-- fixed.
--
-- Text columns deliberately contain values that break naive tools: NULL vs
-- empty string, the word NULL, a literal backslash-N, tabs, newlines, CR/CRLF,
-- backslashes, quotes, semicolons, multi-byte UTF-8 (accents, CJK, 4-byte
-- emoji), leading/trailing spaces and > 10 KB values. Numerics use the full
-- declared precision somewhere, bigint max appears in market_data_cache.volume.

-- ---------------------------------------------------------------- guards ----


SELECT ('seed.sql: the database is not empty (users has ' || count(*)
        || ' rows), seed expects a freshly migrated empty Core database')::int
FROM users HAVING count(*) > 0;

SELECT ('seed.sql: the database is not empty (market_data_cache has ' || count(*)
        || ' rows), seed expects a freshly migrated empty Core database')::int
FROM market_data_cache HAVING count(*) > 0;

-- ------------------------------------------------------- helper temp tables --

-- (seed_text comes from seed_common.sql)

-- Symbol universe: 40 real tickers, then synthetic 'Q' + 5 letters.
CREATE TEMP TABLE seed_symbols (k int PRIMARY KEY, symbol varchar(20) NOT NULL UNIQUE);
INSERT INTO seed_symbols (k, symbol)
SELECT k,
       CASE WHEN k <= 40 THEN (ARRAY[
           'AAPL', 'MSFT', 'NVDA', 'GOOGL', 'AMZN', 'META', 'TSLA', 'JPM', 'V', 'SPY',
           'QQQ', 'BRK.B', 'JNJ', 'XOM', 'UNH', 'PG', 'MA', 'HD', 'CVX', 'LLY',
           'AVGO', 'COST', 'PEP', 'KO', 'MRK', 'ABBV', 'WMT', 'BAC', 'ADBE', 'CRM',
           'NFLX', 'AMD', 'INTC', 'CSCO', 'ORCL', 'DIS', 'NKE', 'BF-B', 'VTI', 'IWM'
       ])[k]
       ELSE 'Q' || chr(65 + (k / 456976) % 26) || chr(65 + (k / 17576) % 26)
                || chr(65 + (k / 676) % 26) || chr(65 + (k / 26) % 26) || chr(65 + k % 26)
       END
FROM generate_series(1, 556 * current_setting('xtask.scale')::int) AS k;

-- 348 trading days (weekdays) starting 2024-01-02.
CREATE TEMP TABLE seed_days (t int PRIMARY KEY, d date NOT NULL);
INSERT INTO seed_days (t, d)
SELECT t, d FROM (
    SELECT row_number() OVER (ORDER BY d)::int AS t, d::date AS d
    FROM generate_series(date '2024-01-02', date '2025-12-31', interval '1 day') AS g(d)
    WHERE extract(isodow FROM d) < 6
) x
WHERE t <= 348;

-- ------------------------------------------------------------------ users ----

INSERT INTO users (id, email, full_name, hashed_password, is_active, created_at, default_portfolio_id)
SELECT md5('user-' || i)::uuid,
       (ARRAY['demo_individual@sigmasight.com', 'demo_hnw@sigmasight.com',
              'demo_hedgefundstyle@sigmasight.com', 'demo_familyoffice@sigmasight.com',
              'demo_quant+test@sigmasight.com', 'demo_retired@sigmasight.com'])[i],
       (ARRAY['Demo Individual Investor', 'Demo High Net Worth — Élodie Müller',
              'Demo Hedge Fund Style 对冲基金 📈', NULL,
              E'O''Brien\t"Quant" \\ Desk', E'Line one\nLine two\r\n\\N'])[i],
       '$2b$12$' || substr(md5('salt-' || i), 1, 22) || substr(md5('hash-' || i) || md5('hash2-' || i), 1, 31),
       i <> 6,
       (timestamp '2024-01-02 09:00:00' + i * interval '1 hour') AT TIME ZONE 'UTC',
       NULL
FROM generate_series(1, 6) AS i;

-- ------------------------------------------------------------- portfolios ----

INSERT INTO portfolios (id, user_id, name, currency, description, created_at)
SELECT md5('portfolio-' || i)::uuid,
       md5('user-' || i)::uuid,
       (ARRAY['Individual Investor Portfolio', 'High Net Worth Portfolio',
              'Hedge Fund Style — Long/Short', 'Family Office 中文 Portfolio',
              'Quant "Alpha" Book 📈', E'Retirement\tIncome'])[i],
       (ARRAY['USD', 'USD', 'USD', 'EUR', 'JPY', 'USD'])[i],
       st.t,
       (timestamp '2024-01-02 10:00:00' + i * interval '1 hour') AT TIME ZONE 'UTC'
FROM generate_series(1, 6) AS i
JOIN seed_text st ON st.n = (i * 3) % 19;

-- users <-> portfolios FK cycle: every user but the last gets a default portfolio.
UPDATE users u
SET default_portfolio_id = md5('portfolio-' || i)::uuid
FROM generate_series(1, 5) AS i
WHERE u.id = md5('user-' || i)::uuid;

-- --------------------------------------------------------------- positions ----
-- 97 positions over 6 portfolios (17,16,16,16,16,16). Position i is an option
-- when (i*37) % 97 < 28 (a permutation, so exactly 28 options, 69 equities).

INSERT INTO positions (id, portfolio_id, symbol, quantity, entry_price, entry_date,
                       exit_date, position_type, notes, created_at)
SELECT md5('position-' || i)::uuid,
       md5('portfolio-' || ((i - 1) % 6 + 1))::uuid,
       CASE WHEN is_opt THEN
           (ARRAY['AAPL', 'MSFT', 'NVDA', 'GOOGL', 'AMZN', 'META', 'TSLA', 'JPM', 'V', 'SPY'])[(i - 1) % 10 + 1]
           || to_char(date '2025-01-17' + (i % 6) * 28, 'YYMMDD')
           || CASE WHEN ptype IN ('LC', 'SC') THEN 'C' ELSE 'P' END
           || lpad(((100 + (i * 13) % 300) * 1000)::text, 8, '0')
       ELSE (SELECT symbol FROM seed_symbols WHERE k = (i - 1) % 40 + 1)
       END,
       CASE
           WHEN i = 1 THEN 123456789012.12345678
           WHEN i = 2 THEN 0.00000001
           WHEN is_opt THEN (1 + i % 10) * CASE WHEN ptype IN ('SC', 'SP') THEN -1 ELSE 1 END
           ELSE ((10 + (i * 37) % 490) + (i % 4) * 0.25 + (i % 3) * 0.00012345)
                * CASE WHEN ptype = 'SHORT' THEN -1 ELSE 1 END
       END,
       CASE WHEN i = 4 THEN 999999999999.9999
            WHEN is_opt THEN 1 + ((i * 31) % 2000) / 100.0
            ELSE 20 + ((i * 7919) % 48000) / 100.0 END,
       date '2024-01-02' + (i * 11) % 300,
       CASE WHEN i % 13 = 0 THEN date '2024-01-02' + (i * 11) % 300 + 45 END,
       ptype,
       CASE WHEN i % 19 = 5 THEN NULL ELSE st.t END,
       (timestamp '2024-01-02 12:00:00' + i * interval '7 minutes') AT TIME ZONE 'UTC'
FROM (
    SELECT i,
           (i * 37) % 97 < 28 AS is_opt,
           CASE WHEN (i * 37) % 97 < 28 THEN (ARRAY['LC', 'LP', 'SC', 'SP'])[i % 4 + 1]
                WHEN i % 9 = 0 THEN 'SHORT' ELSE 'LONG' END AS ptype
    FROM generate_series(1, 97) AS i
) p
JOIN seed_text st ON st.n = p.i % 19;

-- ------------------------------------------------------------- tags ----------
-- Self-referencing hierarchy: parents are inserted in the same statement.

INSERT INTO tags (id, user_id, name, color, parent_id, created_at)
SELECT md5('tag-' || n)::uuid,
       md5('user-' || u)::uuid,
       name,
       color,
       CASE WHEN parent IS NOT NULL THEN md5('tag-' || parent)::uuid END,
       (timestamp '2024-01-03 08:00:00' + n * interval '1 minute') AT TIME ZONE 'UTC'
FROM (VALUES
    (1, 1, 'Technology', '#1F77B4', NULL),
    (2, 1, 'AI & Semis', '#FF7F0E', 1),
    (3, 1, 'Core holdings 📈', '#2CA02C', NULL),
    (4, 1, 'Hedges', NULL, NULL),
    (5, 2, 'Value', '#D62728', NULL),
    (6, 2, 'Deep value — Café', '#9467BD', 5),
    (7, 2, 'Deeper value 中文', '#8C564B', 6),
    (8, 3, E'Tab\tTag', '#E377C2', NULL),
    (9, 3, 'Options "wheel"', NULL, NULL),
    (10, 4, E'back\\slash \\N', '#7F7F7F', NULL)
) AS v(n, u, name, color, parent);

INSERT INTO position_tags (position_id, tag_id, created_at)
SELECT md5('position-' || p.i)::uuid,
       md5('tag-' || t.n)::uuid,
       (timestamp '2024-01-04 08:00:00' + (p.i * 10 + t.n) * interval '1 second') AT TIME ZONE 'UTC'
FROM generate_series(1, 97) AS p(i)
JOIN (VALUES (1, 1), (2, 1), (3, 1), (4, 1), (5, 2), (6, 2), (7, 2), (8, 3), (9, 3), (10, 4))
     AS t(n, u) ON t.u = (p.i - 1) % 6 + 1
WHERE (p.i + t.n) % 3 = 0;

-- ------------------------------------------------------- company_profiles ----

INSERT INTO company_profiles (symbol, company_name, sector, industry, description,
                              market_cap, employees, country, exchange, website, updated_at)
SELECT s.symbol,
       CASE k % 50
           WHEN 1 THEN 'Société Générale Holdings SA'
           WHEN 2 THEN '腾讯控股 Tencent-like Holdings'
           WHEN 3 THEN 'Rocket Co 📈🚀 Inc.'
           WHEN 4 THEN NULL
           WHEN 5 THEN 'O''Reilly "Quoted" & Sons'
           ELSE s.symbol || ' Holdings Inc.'
       END,
       CASE WHEN k % 37 = 0 THEN NULL ELSE (ARRAY['Technology', 'Healthcare', 'Financials',
           'Energy', 'Consumer Discretionary', 'Industrials', 'Utilities', 'Real Estate',
           'Materials', 'Communication Services', 'Consumer Staples'])[k % 11 + 1] END,
       CASE WHEN k % 37 = 0 THEN NULL ELSE 'Industry ' || (k % 53) END,
       CASE WHEN k % 19 = 12 THEN st.t
            WHEN k % 3 = 0 THEN st.t
            ELSE s.symbol || ' is a synthetic company number ' || k || '.' END,
       CASE WHEN k = 1 THEN 1234567890123456789012.34
            WHEN k % 29 = 0 THEN NULL
            ELSE ((k * 7919) % 100000) * 1000000::numeric + (k % 100) / 100.0 END,
       CASE WHEN k % 7 = 0 THEN NULL ELSE 100 + (k * 37) % 200000 END,
       CASE WHEN k % 41 = 0 THEN NULL ELSE (ARRAY['US', 'US', 'US', 'FR', 'CN', 'JP', 'DE'])[k % 7 + 1] END,
       (ARRAY['NASDAQ', 'NYSE', 'AMEX', 'NYSE ARCA'])[k % 4 + 1],
       CASE WHEN k % 5 = 0 THEN NULL
            ELSE 'https://www.' || lower(replace(s.symbol, '.', '-')) || '.example.com/?a=1&b=%20x#frag' END,
       (timestamp '2024-06-01 00:00:00' + k * interval '1 second') AT TIME ZONE 'UTC'
FROM seed_symbols s
JOIN seed_text st ON st.n = s.k % 19;

-- ------------------------------------------------------ market_data_cache ----
-- 556*N symbols x 348 trading days. Explicit ids (identity column is BY
-- DEFAULT), the sequence is moved past max(id) afterwards.

INSERT INTO market_data_cache (id, symbol, date, open, high, low, close, volume, data_source, created_at)
SELECT id, symbol, d,
       CASE WHEN nulls THEN NULL ELSE o END,
       CASE WHEN nulls THEN NULL WHEN s_k = 2 AND t = 1 THEN 999999999999.9999
            ELSE round(greatest(o, c) * 1.0125, 4) END,
       CASE WHEN nulls THEN NULL ELSE round(least(o, c) * 0.9875, 4) END,
       CASE WHEN s_k = 2 AND t = 1 THEN 999999999999.9999 ELSE c END,
       CASE WHEN s_k = 1 AND t = 1 THEN 9223372036854775807
            WHEN (s_k + t * 3) % 877 = 0 THEN NULL
            ELSE 10000 + ((s_k::bigint * 7919 + t * 104729) % 50000000) END,
       CASE WHEN (s_k + t) % 101 = 0 THEN NULL
            ELSE (ARRAY['polygon', 'fmp', 'yfinance', 'tradefeeds'])[(s_k + t) % 4 + 1] END,
       (d + time '21:00:00') AT TIME ZONE 'UTC'
FROM (
    SELECT (s.k - 1)::bigint * 348 + dd.t AS id,
           s.k AS s_k, dd.t, s.symbol, dd.d,
           (s.k * 7 + dd.t) % 1009 = 0 AS nulls,
           round(p0 * (1000 + abs((dd.t + s.k * 13) % 120 - 60) * 3 + ((s.k * 31 + dd.t * 17) % 41) - 20) / 1000, 4) AS c,
           round(p0 * (1000 + abs((dd.t + s.k * 13) % 120 - 60) * 3 + ((s.k * 17 + dd.t * 31) % 41) - 20) / 1000, 4) AS o
    FROM (SELECT k, symbol, 5 + ((k * 7919) % 49500) / 100.0 AS p0 FROM seed_symbols) s
    CROSS JOIN seed_days dd
) x;

SELECT setval(pg_get_serial_sequence('market_data_cache', 'id'), (SELECT max(id) FROM market_data_cache));

-- ----------------------------------------------------- factor_definitions ----

INSERT INTO factor_definitions (id, name, description, factor_type, calculation_method, created_at)
SELECT md5('factor-' || v.n)::uuid, name,
       CASE WHEN v.n IN (3, 7, 11) THEN st.t ELSE name || ' factor exposure (synthetic).' END,
       ftype,
       CASE WHEN v.n = 12 THEN NULL
            WHEN v.n = 1 THEN repeat('OLS regression of daily returns vs SPY over 90 trading days. ', 200)
            ELSE E'ETF spread regression\n  window: 150d\n  proxy: ' || name END,
       (timestamp '2024-01-05 00:00:00' + v.n * interval '1 minute') AT TIME ZONE 'UTC'
FROM (VALUES
    (1, 'Market Beta', 'market'), (2, 'Momentum', 'style'), (3, 'Value', 'style'),
    (4, 'Growth', 'style'), (5, 'Quality', 'style'), (6, 'Size', 'style'),
    (7, 'Low Volatility', 'style'), (8, 'Short Interest', 'style'),
    (9, 'Interest Rate', 'macro'), (10, 'Oil', 'macro'), (11, 'Dollar (DXY) 💵', 'macro'),
    (12, 'Credit Spread', 'macro')
) AS v(n, name, ftype)
JOIN seed_text st ON st.n = v.n % 19;

-- ------------------------------------------------ per-position analytics ----
-- equity positions: (i*37) % 97 >= 28 (69 of them), options: the other 28.

INSERT INTO position_factor_exposures (id, position_id, factor_id, calculation_date,
                                       exposure_value, exposure_dollar, created_at)
SELECT md5('pfe-' || i || '-' || f)::uuid,
       md5('position-' || i)::uuid,
       md5('factor-' || f)::uuid,
       date '2025-06-30',
       CASE WHEN i = 1 AND f = 1 THEN 1234567890.1234567890
            ELSE (((i::bigint * 7919 + f * 104729) % 4000000000) - 2000000000) / 1000000000.0 END,
       CASE WHEN (i + f) % 5 = 0 THEN NULL
            WHEN i = 1 AND f = 1 THEN 1234567890123456.7890
            ELSE (((i * 7919 + f * 104729) % 20000000) - 10000000) / 100.0 END,
       (timestamp '2025-06-30 22:00:00' + (i * 12 + f) * interval '1 second') AT TIME ZONE 'UTC'
FROM generate_series(1, 97) AS i
CROSS JOIN generate_series(1, 12) AS f
WHERE (i * 37) % 97 >= 28;

INSERT INTO position_market_betas (id, position_id, calc_date, beta, r_squared, observations, created_at)
SELECT md5('beta-' || i)::uuid,
       md5('position-' || i)::uuid,
       date '2025-06-30',
       CASE WHEN i = 1 THEN 1234.12345678 ELSE (((i * 7919) % 300000) - 50000) / 100000.0 END,
       CASE WHEN i % 11 = 0 THEN NULL ELSE ((i * 104729) % 100000000) / 100000000.0 END,
       CASE WHEN i % 17 = 0 THEN NULL WHEN i % 2 = 0 THEN 90 ELSE 252 END,
       (timestamp '2025-06-30 22:30:00' + i * interval '1 second') AT TIME ZONE 'UTC'
FROM generate_series(1, 97) AS i
WHERE (i * 37) % 97 >= 28;

INSERT INTO position_greeks (id, position_id, calculation_date, delta, gamma, theta, vega, rho, created_at)
SELECT md5('greeks-' || i)::uuid,
       md5('position-' || i)::uuid,
       date '2025-06-30',
       ((i * 37) % 1000) / 1000.0 * CASE WHEN i % 4 IN (1, 3) THEN -1 ELSE 1 END,
       ((i * 53) % 100000) / 1000000.0,
       -((i * 71) % 500000) / 10000.0,
       CASE WHEN i % 10 = 0 THEN NULL ELSE ((i * 89) % 1000000) / 10000.0 END,
       CASE WHEN i % 3 = 0 THEN NULL ELSE (((i * 97) % 200000) - 100000) / 1000000.0 END,
       (timestamp '2025-06-30 23:00:00' + i * interval '1 second') AT TIME ZONE 'UTC'
FROM generate_series(1, 97) AS i
WHERE (i * 37) % 97 < 28;

INSERT INTO position_volatility (id, position_id, calculation_date, realized_vol_21d,
                                 realized_vol_63d, expected_vol, created_at)
SELECT md5('vol-' || i)::uuid,
       md5('position-' || i)::uuid,
       date '2025-06-30',
       ((i * 7919) % 90000000) / 100000000.0 + 0.05,
       CASE WHEN (i * 37) % 97 < 28 THEN NULL ELSE ((i * 104729) % 80000000) / 100000000.0 + 0.05 END,
       CASE WHEN i % 4 = 0 THEN NULL ELSE ((i * 15485863) % 70000000) / 100000000.0 + 0.1 END,
       (timestamp '2025-06-30 23:30:00' + i * interval '1 second') AT TIME ZONE 'UTC'
FROM generate_series(1, 97) AS i;

-- ------------------------------------------------------ portfolio_snapshots ----

INSERT INTO portfolio_snapshots (id, portfolio_id, snapshot_date, total_value, cash_value,
                                 daily_pnl, daily_return, created_at)
SELECT md5('snapshot-' || p || '-' || n)::uuid,
       md5('portfolio-' || p)::uuid,
       date '2025-06-26' + n * 2,
       CASE WHEN p = 3 AND n = 2 THEN 1234567890123456.7890
            ELSE 100000 * p + ((p * 7919 + n * 104729) % 10000000) / 100.0 END,
       CASE WHEN p = 6 THEN NULL ELSE 5000 * p + n * 0.5 END,
       CASE WHEN n = 1 THEN NULL ELSE (((p * 7919) % 2000000) - 1000000) / 100.0 END,
       CASE WHEN n = 1 THEN NULL ELSE (((p * 104729) % 2000000) - 1000000) / 100000000.0 END,
       (timestamp '2025-06-26 23:59:00' + n * interval '2 days') AT TIME ZONE 'UTC'
FROM generate_series(1, 6) AS p
CROSS JOIN generate_series(1, 2) AS n;

-- ------------------------------------------------------------ correlations ----

INSERT INTO correlation_calculations (id, portfolio_id, calculation_date, duration_days,
                                      overall_correlation, created_at)
SELECT md5('corr-' || p || '-' || dur)::uuid,
       md5('portfolio-' || p)::uuid,
       date '2025-06-30',
       dur,
       CASE WHEN p = 5 AND dur = 90 THEN NULL ELSE ((p * 7919 + dur * 104729) % 100000000) / 100000000.0 END,
       (timestamp '2025-06-30 23:45:00' + (p * 100 + dur) * interval '1 second') AT TIME ZONE 'UTC'
FROM generate_series(1, 6) AS p
CROSS JOIN (VALUES (30), (90)) AS v(dur);

-- All pairs of distinct equity symbols held by the portfolio.
INSERT INTO pairwise_correlations (id, correlation_calculation_id, symbol_1, symbol_2,
                                   correlation_value, data_points)
SELECT md5('pair-' || c.p || '-' || c.dur || '-' || a.symbol || '-' || b.symbol)::uuid,
       md5('corr-' || c.p || '-' || c.dur)::uuid,
       a.symbol,
       b.symbol,
       ((((a.i * 7919 + b.i * 104729 + c.dur) % 200000000) - 100000000) / 100000000.0),
       CASE WHEN (a.i + b.i) % 9 = 0 THEN NULL ELSE c.dur - (a.i + b.i) % 5 END
FROM (SELECT p, dur FROM generate_series(1, 6) AS p CROSS JOIN (VALUES (30), (90)) AS v(dur)) c
JOIN (SELECT i, (i - 1) % 6 + 1 AS p, s.symbol
      FROM generate_series(1, 97) AS i
      JOIN seed_symbols s ON s.k = (i - 1) % 40 + 1
      WHERE (i * 37) % 97 >= 28) a ON a.p = c.p
JOIN (SELECT i, (i - 1) % 6 + 1 AS p, s.symbol
      FROM generate_series(1, 97) AS i
      JOIN seed_symbols s ON s.k = (i - 1) % 40 + 1
      WHERE (i * 37) % 97 >= 28) b ON b.p = c.p AND a.symbol < b.symbol;

-- ---------------------------------------------------------------- cleanup ----

DROP TABLE pg_temp.seed_days;
DROP TABLE pg_temp.seed_symbols;
DROP TABLE pg_temp.seed_text;
