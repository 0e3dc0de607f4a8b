//! The comparison of structure, by name and not by physical position: extensions, and on each
//! table that both sides have its columns (type, nullability, default, identity, generation,
//! collation), constraints and indexes; then the objects beyond the tables (views, functions,
//! triggers, enum types, domains, policies, row security, sequences: `schema/objects.rs`). Each difference is a typed value: which object, what
//! differs and both sides' values; its text (`column public.positions.notes: type text (remote)
//! vs character varying(20) (local)`) and its JSON are made from those.

use std::{collections::BTreeSet, fmt};

use serde::{Serialize, Serializer};

use super::catalog::{self, Catalog};
use crate::pg::ident::QualifiedName;

pub use names::{Field, ObjectKind, SchemaObject};
pub use objects::NOT_READABLE;

/// How the two sides differ on the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Only the left side has it (its description is `left`).
    OnlyLeft,
    /// Only the right side has it (its description is `right`).
    OnlyRight,
    /// Both have it; this field's values differ.
    Field(Field),
}

/// What the report calls the two sides (`remote` and `local`, `migrations` and `local`...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sides {
    pub left: String,
    pub right: String,
}

/// One named difference of structure. JSON: `{"kind", "object", "detail", "left", "right"}`,
/// with `object` and `detail` as the text shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaDifference {
    pub object: SchemaObject,
    pub change: Change,
    /// The left and right values of what differs (`None` where the object or the value is
    /// missing).
    pub left: Option<String>,
    pub right: Option<String>,
    pub sides: Sides,
}

impl SchemaDifference {
    pub fn kind(&self) -> ObjectKind {
        self.object.kind()
    }

    /// What differs, naming both sides: `type text (remote) vs bigint (local)`, or `only on
    /// local: PRIMARY KEY (id)`.
    pub fn detail(&self) -> String {
        let shown = |v: &Option<String>| v.as_deref().unwrap_or("none").to_string();
        let long = self.kind().has_long_definition();
        match self.change {
            Change::OnlyLeft if long => format!("only on {}", self.sides.left),
            Change::OnlyRight if long => format!("only on {}", self.sides.right),
            Change::Field(field) if long => format!("{field} differs"),
            Change::Field(Field::Labels) => format!(
                "labels differ: {} {}, {} {}",
                self.sides.left,
                shown(&self.left),
                self.sides.right,
                shown(&self.right)
            ),
            Change::OnlyLeft => format!("only on {}: {}", self.sides.left, shown(&self.left)),
            Change::OnlyRight => format!("only on {}: {}", self.sides.right, shown(&self.right)),
            Change::Field(field) => format!(
                "{field} {} ({}) vs {} ({})",
                shown(&self.left),
                self.sides.left,
                shown(&self.right),
                self.sides.right
            ),
        }
    }
}

impl fmt::Display for SchemaDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind(), self.object, self.detail())
    }
}

impl Serialize for SchemaDifference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            kind: ObjectKind,
            object: String,
            detail: String,
            left: &'a Option<String>,
            right: &'a Option<String>,
        }
        Shown {
            kind: self.kind(),
            object: self.object.to_string(),
            detail: self.detail(),
            left: &self.left,
            right: &self.right,
        }
        .serialize(serializer)
    }
}

/// Collects the differences, in the order they are found.
pub(super) struct Differ<'a> {
    out: Vec<SchemaDifference>,
    sides: &'a Sides,
}

impl Differ<'_> {
    /// An object on one side only, described by `left` or `right`.
    pub(super) fn only(
        &mut self,
        object: SchemaObject,
        left: Option<String>,
        right: Option<String>,
    ) {
        let change = match (&left, &right) {
            (Some(_), None) => Change::OnlyLeft,
            (None, Some(_)) => Change::OnlyRight,
            _ => return,
        };
        self.push(object, change, left, right);
    }

    /// A field of an object on both sides, when its values differ.
    pub(super) fn field(
        &mut self,
        object: &SchemaObject,
        field: Field,
        left: Option<&str>,
        right: Option<&str>,
    ) {
        if left != right {
            self.push(
                object.clone(),
                Change::Field(field),
                left.map(str::to_string),
                right.map(str::to_string),
            );
        }
    }

    /// A constraint or an index: on one side only, or with a different definition.
    pub(super) fn definition(
        &mut self,
        object: SchemaObject,
        left: Option<&str>,
        right: Option<&str>,
    ) {
        match (left, right) {
            (Some(_), Some(_)) => self.field(&object, Field::Definition, left, right),
            _ => self.only(object, left.map(str::to_string), right.map(str::to_string)),
        }
    }

    fn push(
        &mut self,
        object: SchemaObject,
        change: Change,
        left: Option<String>,
        right: Option<String>,
    ) {
        self.out.push(SchemaDifference {
            object,
            change,
            left,
            right,
            sides: self.sides.clone(),
        });
    }
}

/// Every difference of structure between the two catalogs; a table on one side only is left to
/// the comparison of tables, with its columns, constraints and indexes.
pub fn compare_schema(l: &Catalog, r: &Catalog, ls: &str, rs: &str) -> Vec<SchemaDifference> {
    let sides = Sides {
        left: ls.to_string(),
        right: rs.to_string(),
    };
    let mut d = Differ {
        out: Vec::new(),
        sides: &sides,
    };
    extensions(&mut d, l, r);
    for (name, lt) in &l.tables {
        let Some(rt) = r.tables.get(name) else {
            continue; // a table on one side only is reported with the tables
        };
        columns(&mut d, name, lt, rt);
        constraints(&mut d, name, lt, rt);
    }
    indexes(&mut d, l, r);
    objects::compare_objects(&mut d, l, r);
    d.out
}

fn extensions(d: &mut Differ, l: &Catalog, r: &Catalog) {
    let names: BTreeSet<&String> = l.extensions.keys().chain(r.extensions.keys()).collect();
    for name in names {
        let object = SchemaObject::Extension(name.clone());
        let shown =
            |e: &catalog::Extension| format!("version {} in schema {}", e.version, e.schema);
        match (l.extensions.get(name), r.extensions.get(name)) {
            (Some(a), Some(b)) => {
                d.field(&object, Field::Version, Some(&a.version), Some(&b.version));
                d.field(&object, Field::Schema, Some(&a.schema), Some(&b.schema));
            }
            (a, b) => d.only(object, a.map(shown), b.map(shown)),
        }
    }
}

fn columns(d: &mut Differ, table: &QualifiedName, lt: &catalog::Table, rt: &catalog::Table) {
    let names: BTreeSet<&String> = lt.columns.keys().chain(rt.columns.keys()).collect();
    for col in names {
        let object = SchemaObject::Column {
            table: table.clone(),
            column: col.clone(),
        };
        match (lt.columns.get(col), rt.columns.get(col)) {
            (Some(a), Some(b)) => {
                let nullability =
                    |c: &catalog::Column| if c.not_null { "not null" } else { "nullable" };
                let fields = [
                    (
                        Field::Type,
                        Some(a.data_type.as_str()),
                        Some(b.data_type.as_str()),
                    ),
                    (
                        Field::Nullability,
                        Some(nullability(a)),
                        Some(nullability(b)),
                    ),
                    (Field::Default, a.default.as_deref(), b.default.as_deref()),
                    (
                        Field::Identity,
                        a.identity.as_deref(),
                        b.identity.as_deref(),
                    ),
                    (
                        Field::GeneratedAs,
                        a.generated.as_deref(),
                        b.generated.as_deref(),
                    ),
                    (
                        Field::Collation,
                        a.collation.as_deref(),
                        b.collation.as_deref(),
                    ),
                ];
                for (field, left, right) in fields {
                    d.field(&object, field, left, right);
                }
            }
            (a, b) => d.only(
                object,
                a.map(|c| c.data_type.clone()),
                b.map(|c| c.data_type.clone()),
            ),
        }
    }
}

fn constraints(d: &mut Differ, table: &QualifiedName, lt: &catalog::Table, rt: &catalog::Table) {
    let names: BTreeSet<&String> = lt.constraints.keys().chain(rt.constraints.keys()).collect();
    for con in names {
        let object = SchemaObject::Constraint {
            table: table.clone(),
            name: con.clone(),
        };
        d.definition(
            object,
            lt.constraints.get(con).map(|c| c.definition.as_str()),
            rt.constraints.get(con).map(|c| c.definition.as_str()),
        );
    }
}

fn indexes(d: &mut Differ, l: &Catalog, r: &Catalog) {
    let on_both =
        |table: &QualifiedName| l.tables.contains_key(table) && r.tables.contains_key(table);
    let names: BTreeSet<&QualifiedName> = l.indexes.keys().chain(r.indexes.keys()).collect();
    for name in names {
        let (a, b) = (l.indexes.get(name), r.indexes.get(name));
        // Indexes of a table that is on one side only come with the table.
        let table = a.or(b).map(|i| &i.table);
        if !table.is_some_and(on_both) {
            continue;
        }
        d.definition(
            SchemaObject::Index(name.clone()),
            a.map(|i| i.definition.as_str()),
            b.map(|i| i.definition.as_str()),
        );
    }
}

mod names;
mod objects;
#[cfg(test)]
mod tests;
