//! The typed differences' text and JSON: what people and programs read stays as it was.

use super::*;

fn sides() -> Sides {
    Sides {
        left: "remote".into(),
        right: "local".into(),
    }
}

fn difference(
    object: SchemaObject,
    change: Change,
    left: Option<&str>,
    right: Option<&str>,
) -> SchemaDifference {
    SchemaDifference {
        object,
        change,
        left: left.map(str::to_string),
        right: right.map(str::to_string),
        sides: sides(),
    }
}

fn column(table: &str, column: &str) -> SchemaObject {
    SchemaObject::Column {
        table: QualifiedName::new("public", table),
        column: column.into(),
    }
}

#[test]
fn a_field_that_differs_names_both_values_and_sides() {
    let d = difference(
        column("positions", "notes"),
        Change::Field(Field::Type),
        Some("text"),
        Some("character varying(20)"),
    );
    assert_eq!(
        d.to_string(),
        "column public.positions.notes: type text (remote) vs character varying(20) (local)"
    );
    assert_eq!(d.kind(), ObjectKind::Column);
    // A value on one side only is `none` on the other.
    let d = difference(
        column("users", "Order"),
        Change::Field(Field::Default),
        None,
        Some("0"),
    );
    assert_eq!(
        d.to_string(),
        "column public.users.\"Order\": default none (remote) vs 0 (local)"
    );
    let d = difference(
        column("t", "g"),
        Change::Field(Field::GeneratedAs),
        Some("(a + 1)"),
        Some("(a + 2)"),
    );
    assert_eq!(
        d.detail(),
        "generated as (a + 1) (remote) vs (a + 2) (local)"
    );
}

#[test]
fn an_object_on_one_side_is_named_with_that_side() {
    let d = difference(
        SchemaObject::Constraint {
            table: QualifiedName::new("public", "users"),
            name: "users_pkey".into(),
        },
        Change::OnlyLeft,
        Some("PRIMARY KEY (id)"),
        None,
    );
    assert_eq!(
        d.to_string(),
        "constraint public.users.users_pkey: only on remote: PRIMARY KEY (id)"
    );
    let d = difference(
        SchemaObject::Extension("vector".into()),
        Change::OnlyRight,
        None,
        Some("version 0.8.0 in schema public"),
    );
    assert_eq!(
        d.to_string(),
        "extension vector: only on local: version 0.8.0 in schema public"
    );
    let d = difference(
        SchemaObject::Index(QualifiedName::new("My Schema", "ix")),
        Change::Field(Field::Definition),
        Some("CREATE INDEX a"),
        Some("CREATE INDEX b"),
    );
    assert_eq!(
        d.to_string(),
        "index \"My Schema\".ix: definition CREATE INDEX a (remote) vs CREATE INDEX b (local)"
    );
}

#[test]
fn json_keeps_kind_object_detail_and_both_values() {
    let d = difference(
        column("positions", "notes"),
        Change::Field(Field::Nullability),
        Some("nullable"),
        Some("not null"),
    );
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "kind": "column",
            "object": "public.positions.notes",
            "detail": "nullability nullable (remote) vs not null (local)",
            "left": "nullable",
            "right": "not null",
        })
    );
    let text = serde_json::to_string(&d).unwrap();
    assert!(
        text.starts_with(r#"{"kind":"column","object":"#),
        "fields in their old order: {text}"
    );
    let d = difference(
        SchemaObject::Extension("vector".into()),
        Change::OnlyRight,
        None,
        Some("version 0.8.0 in schema public"),
    );
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["kind"], "extension");
    assert_eq!(json["left"], serde_json::Value::Null);
}

#[test]
fn objects_beyond_the_tables_are_named_as_people_read_them() {
    let q = |name: &str| QualifiedName::new("public", name);
    let cases = [
        (
            difference(
                SchemaObject::View(q("v")),
                Change::OnlyLeft,
                Some("SELECT 1;"),
                None,
            ),
            "view public.v: only on remote",
        ),
        (
            difference(
                SchemaObject::MaterializedView(q("mv")),
                Change::OnlyRight,
                None,
                Some(" SELECT 1;"),
            ),
            "materialized view public.mv: only on local",
        ),
        (
            difference(
                SchemaObject::View(q("v")),
                Change::Field(Field::Definition),
                Some(" SELECT 1;"),
                Some(" SELECT 2;"),
            ),
            "view public.v: definition differs",
        ),
        (
            difference(
                SchemaObject::Function {
                    name: q("f"),
                    args: "integer".into(),
                },
                Change::Field(Field::Definition),
                Some("CREATE OR REPLACE FUNCTION public.f(integer)\n..."),
                Some("CREATE OR REPLACE FUNCTION public.f(integer)\n...2"),
            ),
            "function public.f(integer): definition differs",
        ),
        (
            difference(
                SchemaObject::Function {
                    name: q("p"),
                    args: String::new(),
                },
                Change::OnlyLeft,
                Some("CREATE OR REPLACE PROCEDURE public.p()\n..."),
                None,
            ),
            "function public.p(): only on remote",
        ),
        (
            difference(
                SchemaObject::Trigger {
                    table: q("t"),
                    name: "Touch".into(),
                },
                Change::OnlyLeft,
                Some("CREATE TRIGGER \"Touch\" BEFORE INSERT ON public.t"),
                None,
            ),
            "trigger public.t.\"Touch\": only on remote: CREATE TRIGGER \"Touch\" BEFORE INSERT \
             ON public.t",
        ),
        (
            difference(
                SchemaObject::Type(q("mood")),
                Change::Field(Field::Labels),
                Some("[a, b]"),
                Some("[a, c]"),
            ),
            "type public.mood: labels differ: remote [a, b], local [a, c]",
        ),
        (
            difference(
                SchemaObject::Type(q("mood")),
                Change::OnlyRight,
                None,
                Some("enum [a]"),
            ),
            "type public.mood: only on local: enum [a]",
        ),
        (
            difference(
                SchemaObject::Domain(q("posint")),
                Change::Field(Field::Definition),
                Some("integer CONSTRAINT c CHECK ((VALUE > 0))"),
                Some("integer NOT NULL CONSTRAINT c CHECK ((VALUE > 0))"),
            ),
            "domain public.posint: definition integer CONSTRAINT c CHECK ((VALUE > 0)) (remote) \
             vs integer NOT NULL CONSTRAINT c CHECK ((VALUE > 0)) (local)",
        ),
        (
            difference(
                SchemaObject::Policy {
                    table: q("t"),
                    name: "p".into(),
                },
                Change::OnlyRight,
                None,
                Some("PERMISSIVE FOR ALL TO PUBLIC USING (true)"),
            ),
            "policy public.t.p: only on local: PERMISSIVE FOR ALL TO PUBLIC USING (true)",
        ),
        (
            difference(
                SchemaObject::Table(q("t")),
                Change::Field(Field::RowSecurity),
                Some("enabled"),
                Some("disabled"),
            ),
            "table public.t: row security enabled (remote) vs disabled (local)",
        ),
        (
            difference(
                SchemaObject::Sequence(q("free_seq")),
                Change::Field(Field::LastValue),
                Some("1000"),
                Some("5 (not called)"),
            ),
            "sequence public.free_seq: last value 1000 (remote) vs 5 (not called) (local)",
        ),
    ];
    for (d, text) in cases {
        assert_eq!(d.to_string(), text);
    }
}

#[test]
fn json_of_a_long_definition_keeps_both_texts_and_the_new_kinds() {
    let d = difference(
        SchemaObject::View(QualifiedName::new("public", "v")),
        Change::Field(Field::Definition),
        Some(" SELECT 1;"),
        Some(" SELECT 2;"),
    );
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "kind": "view",
            "object": "public.v",
            "detail": "definition differs",
            "left": " SELECT 1;",
            "right": " SELECT 2;",
        })
    );
    let d = difference(
        SchemaObject::MaterializedView(QualifiedName::new("public", "mv")),
        Change::OnlyLeft,
        Some(" SELECT 1;"),
        None,
    );
    assert_eq!(
        serde_json::to_value(&d).unwrap()["kind"],
        "materialized_view"
    );
}

fn catalog_with(objects: catalog::Objects, tables: &[&str]) -> Catalog {
    Catalog {
        server_version: "17.4".into(),
        tables: tables
            .iter()
            .map(|t| {
                (
                    QualifiedName::new("public", *t),
                    catalog::Table {
                        kind: catalog::TableKind::Ordinary,
                        columns: Default::default(),
                        constraints: Default::default(),
                    },
                )
            })
            .collect(),
        indexes: Default::default(),
        extensions: Default::default(),
        foreign_keys: Vec::new(),
        sequences: Vec::new(),
        objects,
        alembic: None,
    }
}

#[test]
fn objects_of_a_table_on_one_side_only_come_with_the_table() {
    let q = |name: &str| QualifiedName::new("public", name);
    let mut l = catalog::Objects::default();
    l.triggers
        .insert((q("gone"), "trg".into()), "CREATE TRIGGER trg".into());
    l.policies
        .insert((q("gone"), "p".into()), "PERMISSIVE".into());
    l.sequences.insert(
        q("gone_id_seq"),
        catalog::Sequence {
            owner: Some(q("gone")),
            position: Some("3".into()),
        },
    );
    l.sequences.insert(
        q("free"),
        catalog::Sequence {
            owner: None,
            position: Some("3".into()),
        },
    );
    l.views.insert(
        q("v"),
        catalog::View {
            materialized: false,
            definition: " SELECT 1;".into(),
        },
    );
    let mut r = catalog::Objects::default();
    r.views.insert(
        q("v"),
        catalog::View {
            materialized: true,
            definition: " SELECT 1;".into(),
        },
    );
    let (l, r) = (catalog_with(l, &["gone", "t"]), catalog_with(r, &["t"]));
    let shown: Vec<String> = compare_schema(&l, &r, "remote", "local")
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "view public.v: only on remote",
            "materialized view public.mv: only on local"
                .replace("mv", "v")
                .as_str(),
            "sequence public.free: only on remote: last value 3",
        ]
    );
}
