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
