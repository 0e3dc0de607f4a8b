//! The check's naming and classification, on hand-made snapshots (no database).

use std::collections::BTreeMap;

use super::*;
use crate::{
    alembic::AlembicConfig,
    config::Side,
    pg::ident::QualifiedName,
    verify::catalog::{AlembicState, Catalog, Column, Constraint, Extension, Table, TableKind},
};

#[test]
fn scratch_names_fit_in_63_bytes() {
    assert_eq!(
        scratch_name("sigmasight_db"),
        "sigmasight_db_xtask_stamp_check"
    );
    let long = "é".repeat(40);
    let name = scratch_name(&long);
    assert!(name.len() <= 63, "{}", name.len());
    assert!(name.ends_with(SCRATCH_SUFFIX));
}

#[test]
fn problems_read_as_sentences() {
    let p = Problem {
        problem: Finding::Missing,
        kind: ProblemKind::Table,
        object: "public.pairwise_correlations".into(),
        detail: String::new(),
    };
    assert_eq!(p.to_string(), "missing table public.pairwise_correlations");
    let p = Problem {
        problem: Finding::Differs,
        kind: ProblemKind::Column,
        object: "public.positions.notes".into(),
        detail: "type text (migrations) vs character varying(20) (local)".into(),
    };
    assert_eq!(
        p.to_string(),
        "column public.positions.notes: type text (migrations) vs character varying(20) \
         (local)"
    );
}

fn column(data_type: &str, default: Option<&str>) -> Column {
    Column {
        data_type: data_type.to_string(),
        not_null: false,
        default: default.map(str::to_string),
        identity: None,
        generated: None,
        collation: None,
        integer: false,
    }
}

/// `public.positions (id, notes)` with a check constraint, and `vector` at `version`.
fn schema(notes: &str, check: &str, version: &str) -> Snapshot {
    let mut columns = BTreeMap::new();
    columns.insert("id".to_string(), column("integer", Some("0")));
    columns.insert("notes".to_string(), column(notes, None));
    let mut constraints = BTreeMap::new();
    constraints.insert(
        "ck_notes".to_string(),
        Constraint {
            kind: "check".into(),
            definition: check.into(),
        },
    );
    let positions = QualifiedName::new("public", "positions");
    let mut tables = BTreeMap::new();
    tables.insert(
        positions.clone(),
        Table {
            kind: TableKind::Ordinary,
            columns,
            constraints,
        },
    );
    let mut extensions = BTreeMap::new();
    extensions.insert(
        "vector".to_string(),
        Extension {
            version: version.into(),
            schema: "public".into(),
        },
    );
    let mut measured = BTreeMap::new();
    measured.insert(
        positions,
        TableMeasure {
            rows: 0,
            checksum: None,
        },
    );
    Snapshot {
        catalog: Catalog {
            server_version: "17.4".into(),
            tables,
            indexes: BTreeMap::new(),
            extensions,
            foreign_keys: Vec::new(),
            sequences: Vec::new(),
            objects: Default::default(),
            alembic: Some(AlembicState {
                table: QualifiedName::new("public", "alembic_version"),
                revisions: vec!["c5".into()],
            }),
        },
        measures: Measures {
            tables: measured,
            ..Measures::default()
        },
    }
}

fn target() -> Target {
    Target {
        db: Database::Core,
        side: Side::Local,
        url: DbUrl::parse("postgresql://me:s3cret@localhost:5432/app").unwrap(),
        alembic: AlembicConfig::Core,
    }
}

#[test]
fn differences_become_missing_different_or_extra_and_extensions_notes() {
    let t = target();
    let scratch = t.url.with_dbname("app_xtask_stamp_check");
    let expected = schema("text", "CHECK (notes <> '')", "0.8.0");
    let mut actual = schema("character varying(20)", "CHECK (notes <> '')", "0.7.4");
    let positions = QualifiedName::new("public", "positions");
    let table = actual.catalog.tables.get_mut(&positions).unwrap();
    table.constraints.clear();
    table
        .columns
        .insert("extra".to_string(), column("boolean", None));
    let checked = compare(&t, &scratch, &expected, &actual, &[]);
    let lines: Vec<String> = checked.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        lines,
        [
            "missing constraint public.positions.ck_notes: CHECK (notes <> '')",
            "column public.positions.notes: type text (migrations) vs character varying(20) \
             (local)",
            "extra column public.positions.extra: boolean; not created by the migrations",
        ]
    );
    assert_eq!(
        checked.notes,
        [
            "extension vector: version 0.8.0 (migrations) vs 0.7.4 (local) (no reason to refuse \
          a stamp)"
        ]
    );
    assert_eq!(checked.revisions, ["c5"]);
    let json = serde_json::to_value(&checked.problems[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "problem": "missing",
            "kind": "constraint",
            "object": "public.positions.ck_notes",
            "detail": "CHECK (notes <> '')",
        })
    );
    assert!(checked.already_stamped());
}

#[test]
fn a_definition_that_is_the_same_once_recreated_is_a_note() {
    let t = target();
    let scratch = t.url.with_dbname("app_xtask_stamp_check");
    let expected = schema("text", "CHECK (a IN ('x'))", "0.8.0");
    let actual = schema("text", "CHECK (a = ANY (ARRAY['x']))", "0.8.0");
    let same = [Candidate {
        object: verify::SchemaObject::Constraint {
            table: QualifiedName::new("public", "positions"),
            name: "ck_notes".into(),
        },
        expected: "CHECK (a IN ('x'))".into(),
        actual: "CHECK (a = ANY (ARRAY['x']))".into(),
    }];
    let checked = compare(&t, &scratch, &expected, &actual, &same);
    assert!(checked.problems.is_empty(), "{:?}", checked.problems);
    assert_eq!(
        checked.notes,
        [
            "constraint public.positions.ck_notes is written differently, as after a dump and \
          restore, but is the same definition once re-created: not a difference"
        ]
    );
    // Without the re-creation it refuses.
    let checked = compare(&t, &scratch, &expected, &actual, &[]);
    assert_eq!(checked.problems.len(), 1);
    assert_eq!(checked.problems[0].problem, Finding::Differs);
}

#[test]
fn views_functions_and_enum_labels_refuse_but_sequence_positions_do_not() {
    use crate::verify::catalog::{Function, Sequence, View};
    let t = target();
    let scratch = t.url.with_dbname("app_xtask_stamp_check");
    let q = |name: &str| QualifiedName::new("public", name);
    let mut expected = schema("text", "CHECK (notes <> '')", "0.8.0");
    let mut actual = expected.clone();
    let e = &mut expected.catalog.objects;
    e.views.insert(
        q("active"),
        View {
            materialized: false,
            definition: " SELECT 1;".into(),
        },
    );
    let f = |body: &str| Function {
        procedure: false,
        definition: format!("CREATE OR REPLACE FUNCTION public.f(integer)\n{body}"),
    };
    e.functions.insert((q("f"), "integer".into()), f("x + 1"));
    e.enums.insert(q("mood"), vec!["a".into(), "b".into()]);
    // The migrations' fresh sequence against the target's used one: data, not schema.
    let seq = |position: &str| Sequence {
        owner: None,
        position: Some(position.into()),
    };
    e.sequences.insert(q("free_seq"), seq("1 (not called)"));
    let a = &mut actual.catalog.objects;
    a.functions.insert((q("f"), "integer".into()), f("x + 2"));
    a.enums.insert(q("mood"), vec!["a".into()]);
    a.sequences.insert(q("free_seq"), seq("1000"));
    // Only constraints, indexes and defaults can be "printed differently": never these.
    assert!(printed_differently(&expected.catalog, &actual.catalog).is_empty());
    let checked = compare(&t, &scratch, &expected, &actual, &[]);
    let lines: Vec<String> = checked.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        lines,
        [
            "missing view public.active",
            "function public.f(integer): definition differs",
            "type public.mood: labels differ: migrations [a, b], local [a]",
        ]
    );
    assert_eq!(checked.problems[0].kind, ProblemKind::View);
    assert_eq!(
        serde_json::to_value(&checked.problems[1]).unwrap()["kind"],
        "function"
    );
}
