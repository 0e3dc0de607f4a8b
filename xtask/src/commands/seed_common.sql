-- seed_common.sql: run first, in the same session and transaction, before seed.sql or
-- seed_ai.sql (the xtask concatenates them). It checks the `xtask.scale` setting and creates the
-- temporary table of awkward text values that both seeds draw from.

SELECT ('seed: xtask.scale must be set to an integer >= 1 (SET xtask.scale = 1), got: '
        || coalesce(current_setting('xtask.scale', true), '<unset>'))::int
WHERE coalesce(current_setting('xtask.scale', true), '') !~ '^[1-9][0-9]{0,4}$';

-- Nasty text values, indexed 0..18. Index 0 is SQL NULL.
CREATE TEMP TABLE seed_text (n int PRIMARY KEY, t text);
INSERT INTO seed_text (n, t)
SELECT o - 1, v
FROM unnest(ARRAY[
    NULL,
    'Café résumé naïve — Ünïcödé Straße',
    '中文测试 · 日本語テスト · 한국어 시험',
    'Rocket to the moon 📈🚀 (4-byte UTF-8 emoji)',
    E'tab\there\tand\tthere',
    E'line one\nline two\nline three\n',
    E'carriage\rreturn and CRLF\r\nend',
    E'back\\slash C:\\Users\\demo\\file.csv',
    E'\\N',
    'It''s a "quoted" string with ''single'' and "double" quotes',
    '',
    'NULL',
    repeat('Long text block 📈 with unicode é and 中文, repeated to exceed ten kilobytes. ', 200),
    E'comma,separated,"csv" value\twith tab',
    'semi' || chr(59) || ' colon' || chr(59) || chr(59) || ' DROP TABLE users' || chr(59) || ' --',
    '   leading and trailing spaces   ',
    E'\\\\server\\share\\path \\t not a tab',
    'Ω≈ç√∫ ¥€£ — mixed symbols <b>html</b> & ampersand',
    E'mixed: tab\t newline\n cr\r backslash\\ quote'' dquote" \\N end'
]::text[]) WITH ORDINALITY AS u(v, o);
