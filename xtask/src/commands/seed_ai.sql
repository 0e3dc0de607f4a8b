-- seed_ai.sql : deterministic synthetic data for the SigmaSight AI database
-- (sigmasight_ai_db, pgvector), to be run right AFTER
-- `alembic -c alembic_ai.ini upgrade head` on an EMPTY database.
--
-- Contract with the caller (xtask):
--   * Set the scale factor in the same session first, e.g.
--       SET xtask.scale = 1      (any integer >= 1)
--     It is read here with current_setting('xtask.scale')::int.
--   * Send this whole file as ONE simple-query batch, inside a transaction.
--     No psql meta-commands, no COPY, no bind parameters. Semicolons appear
--     only at statement ends, never inside a string literal or a comment.
--   * The script refuses to run on a non-empty database and when xtask.scale
--     is missing or invalid (the error text says why).
--
-- Determinism: no random(), now(), gen_random_uuid() or clock functions. UUIDs
-- are md5() of a fixed string, embeddings are built with integer arithmetic
-- (exactly representable, platform independent), timestamps are fixed UTC
-- instants. Two runs on fresh databases give identical rows.
--
-- Shape at scale N: 500*N ai_kb_documents (every 10th has a NULL embedding),
-- 200*N ai_memories (user_id = the Core demo users md5('user-1..6')), 50*N
-- ai_feedback. Embeddings are vector(1536).
--
-- Text and jsonb columns deliberately contain values that break naive tools:
-- NULL vs empty string vs JSON null, a literal backslash-N, tabs, newlines,
-- CR/CRLF, backslashes, quotes, multi-byte UTF-8, > 10 KB values.

-- ---------------------------------------------------------------- guards ----


SELECT ('seed_ai.sql: the database is not empty (ai_kb_documents has ' || count(*)
        || ' rows), seed expects a freshly migrated empty AI database')::int
FROM ai_kb_documents HAVING count(*) > 0;

SELECT ('seed_ai.sql: the database is not empty (ai_memories has ' || count(*)
        || ' rows), seed expects a freshly migrated empty AI database')::int
FROM ai_memories HAVING count(*) > 0;

-- ------------------------------------------------------- helper temp table ---

-- (seed_text comes from seed_common.sql)

-- -------------------------------------------------------- ai_kb_documents ----

INSERT INTO ai_kb_documents (id, scope, title, content, metadata, embedding, created_at)
SELECT md5('kbdoc-' || i)::uuid,
       (ARRAY['glossary', 'methodology', 'faq', 'product', 'risk_metrics'])[i % 5 + 1],
       CASE WHEN i % 7 = 0 THEN st.t ELSE 'KB document #' || i END,
       CASE WHEN i % 3 = 0 THEN coalesce(st.t, 'content ' || i)
            ELSE 'Knowledge base article ' || i || E'.\n\nFactor exposures measure sensitivity of a position to a factor.' END,
       CASE i % 6
           WHEN 0 THEN NULL
           WHEN 1 THEN 'null'::jsonb
           WHEN 2 THEN '{}'::jsonb
           WHEN 3 THEN jsonb_build_object('source', 'synthetic', 'i', i, 'tags', jsonb_build_array('a', 'b', i % 10),
                                          'unicode', 'é中文📈', 'nested', jsonb_build_object('x', NULL, 'y', jsonb_build_array()))
           WHEN 4 THEN jsonb_build_object('text', st.t, 'big', 12345678901234567890.123456789, 'neg', -0.000001)
           ELSE jsonb_build_array(i, 'x', true, NULL)
       END,
       CASE WHEN i % 10 = 0 THEN NULL
            ELSE (SELECT array_agg(((((i::bigint * 7919 + j * 104729) % 20001) - 10000) / 10000.0)::real ORDER BY j)
                  FROM generate_series(1, 1536) AS j)::vector(1536)
       END,
       (timestamp '2024-02-01 00:00:00' + i * interval '1 minute') AT TIME ZONE 'UTC'
FROM generate_series(1, 500 * current_setting('xtask.scale')::int) AS i
JOIN seed_text st ON st.n = i % 19;

-- ------------------------------------------------------------ ai_memories ----

INSERT INTO ai_memories (id, user_id, scope, content, tags, embedding, created_at)
SELECT md5('memory-' || i)::uuid,
       md5('user-' || (i % 6 + 1))::uuid,
       (ARRAY['user', 'portfolio', 'global'])[i % 3 + 1],
       coalesce(st.t, 'User prefers concise answers about portfolio ' || (i % 6 + 1) || '.'),
       CASE WHEN i % 8 = 0 THEN NULL
            WHEN i % 8 = 1 THEN '[]'::jsonb
            ELSE jsonb_build_array('tag-' || (i % 7), 'risk', CASE WHEN i % 5 = 0 THEN 'émoji 📈' ELSE 'plain' END)
       END,
       (SELECT array_agg(((((i::bigint * 104729 + j * 7919) % 20001) - 10000) / 10000.0)::real ORDER BY j)
        FROM generate_series(1, 1536) AS j)::vector(1536),
       (timestamp '2024-03-01 00:00:00' + i * interval '1 minute') AT TIME ZONE 'UTC'
FROM generate_series(1, 200 * current_setting('xtask.scale')::int) AS i
JOIN seed_text st ON st.n = (i * 7) % 19;

-- ------------------------------------------------------------ ai_feedback ----

INSERT INTO ai_feedback (id, memory_id, rating, comment, created_at)
SELECT md5('feedback-' || i)::uuid,
       md5('memory-' || i)::uuid,
       (i / 4) % 5 + 1,
       st.t,
       (timestamp '2024-04-01 00:00:00' + i * interval '1 minute') AT TIME ZONE 'UTC'
FROM generate_series(4, 200 * current_setting('xtask.scale')::int, 4) AS i
JOIN seed_text st ON st.n = (i / 4) % 19;

-- ---------------------------------------------------------------- cleanup ----

DROP TABLE pg_temp.seed_text;
