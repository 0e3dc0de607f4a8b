use super::{
    check::{check, Problem},
    columns::{Column, TypeClass},
    init::add_entries,
    DbKey, Policy, Rule, TableKey,
};

fn column(table: &str, name: &str, class: TypeClass, not_null: bool) -> Column {
    Column {
        table: table.to_string(),
        name: name.to_string(),
        data_type: match class {
            TypeClass::Text => "text",
            TypeClass::Uuid => "uuid",
            TypeClass::Other => "integer",
        }
        .to_string(),
        class,
        not_null,
    }
}

fn users() -> Vec<Column> {
    vec![
        column("users", "id", TypeClass::Uuid, true),
        column("users", "email", TypeClass::Text, true),
        column("users", "age", TypeClass::Other, false),
    ]
}

fn problems(text: &str, columns: &[Column]) -> Vec<String> {
    let policy = Policy::parse(text).unwrap();
    check(&policy, &[(DbKey::Core, columns)])
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn parses_every_rule_and_keep_where() {
    let policy = Policy::parse(
        r#"
[core.users]
keep_where = "email LIKE 'demo%'"
id = "keep"
email = "email"
full_name = "name"
token = "hash"
hashed_password = { fixed = "$2b$12$x" }
bio = "null"
nickname = "TODO"

[ai."other.t"]
c = "keep"
"#,
    )
    .unwrap();
    let users = &policy.tables[&TableKey {
        db: DbKey::Core,
        table: "users".into(),
    }];
    assert_eq!(users.keep_where.as_deref(), Some("email LIKE 'demo%'"));
    assert_eq!(users.columns["email"], Rule::Email);
    assert_eq!(users.columns["full_name"], Rule::Name);
    assert_eq!(users.columns["token"], Rule::Hash);
    assert_eq!(users.columns["bio"], Rule::Null);
    assert_eq!(users.columns["nickname"], Rule::Undecided);
    assert_eq!(
        users.columns["hashed_password"],
        Rule::Fixed("$2b$12$x".into())
    );
    assert!(!users.columns.contains_key("keep_where"));
    let other = TableKey {
        db: DbKey::Ai,
        table: "other.t".into(),
    };
    assert_eq!(policy.rule(&other, "c"), Some(&Rule::Keep));
}

#[test]
fn every_mistake_is_named_with_what_to_write() {
    let err = Policy::parse(
        r#"
[core.users]
email = "mask"
id = { fixed = 3 }
age = 4
keep_where = 1

[prod.users]
id = "keep"
"#,
    )
    .unwrap_err();
    let text = format!("{err:#}");
    for says in [
        r#"[core.users] email: "mask" is not a rule; write one of keep, email, name, hash, null, or { fixed = "..." }"#,
        "[core.users] id: fixed takes a string",
        "[core.users] age: 4 is not a rule (a rule is a string)",
        "[core.users] keep_where: must be a SQL condition on the table's row, as a string",
        "prod: unknown section; the policy has two, [core.TABLE] and [ai.TABLE]",
    ] {
        assert!(text.contains(says), "{says:?} not in:\n{text}");
    }
    let err = Policy::parse("[core.users\n").unwrap_err();
    assert!(format!("{err:#}").starts_with("not valid TOML"), "{err:#}");
}

#[test]
fn a_column_without_a_rule_is_named_with_the_line_to_add() {
    let found = problems("[core.users]\nid = \"keep\"\nemail = \"email\"\n", &users());
    assert_eq!(
        found,
        [
            "core users.age: no rule; add under [core.users], with TODO replaced by the rule:\n      \
             age = \"TODO\"  # data-policy init: decide: keep, email, name, hash, null, or { fixed = \"...\" }"
        ]
    );
}

#[test]
fn undecided_stale_and_mistyped_entries_fail() {
    let found = problems(
        r#"
[core.users]
id = "email"
email = "TODO"
age = "null"
gone = "keep"

[core.old_table]
x = "keep"
"#,
        &users(),
    );
    assert_eq!(
        found,
        [
            "core users.email: not decided (\"TODO\"): under [core.users], replace \"TODO\" with \
             keep, email, name, hash, null, or { fixed = \"...\" }",
            "core users.id: rule email writes text, and the column is uuid: use hash, null, a \
             fixed value or keep",
            "core users.gone: the policy has an entry but the table has no such column: remove \
             `gone` from [core.users] (or fix its name)",
            "core old_table: the policy has a section [core.old_table] but there is no such \
             table: remove the section (or fix its name)",
        ]
    );
    // null on a NOT NULL column, hash on an integer.
    let found = problems(
        "[core.users]\nid = \"null\"\nemail = \"keep\"\nage = \"hash\"\n",
        &users(),
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("age: rule hash writes text or a uuid, and the column is integer"));
    assert!(found[1].contains("id: rule null cannot be applied: the column is NOT NULL"));
    assert!(problems(
        "[core.users]\nid = \"hash\"\nemail = \"email\"\nage = \"null\"\n",
        &users()
    )
    .is_empty());
}

#[test]
fn init_adds_lines_in_place_and_changes_none() {
    let human = "# ours\n[core.users]  # people\nid = \"keep\"   # uuid\n\n# the next one\n[core.tags]\nname = \"keep\"\n";
    let missing = [
        (
            TableKey {
                db: DbKey::Core,
                table: "users".into(),
            },
            "email".to_string(),
        ),
        (
            TableKey {
                db: DbKey::Ai,
                table: "odd table".into(),
            },
            "my col".to_string(),
        ),
    ];
    let out = add_entries(human, &missing).unwrap();
    // Every line the human wrote is still there, in order.
    let mut rest = out.lines();
    for line in human.lines() {
        assert!(rest.any(|l| l == line), "{line:?} lost in:\n{out}");
    }
    assert!(
        out.contains("id = \"keep\"   # uuid\nemail = \"TODO\"  # data-policy init"),
        "{out}"
    );
    assert!(
        out.contains("[ai.\"odd table\"]  # data-policy init: a table with no entry yet\n\"my col\" = \"TODO\""),
        "{out}"
    );
    // The result still fails the check: TODO is not a rule.
    let policy = Policy::parse(&out).unwrap();
    let odd = [column("odd table", "my col", TypeClass::Text, false)];
    assert!(matches!(
        check(&policy, &[(DbKey::Ai, &odd)]).as_slice(),
        [Problem::Undecided { .. }]
    ));
}
