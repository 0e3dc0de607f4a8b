//! What a difference of structure is about: the kind of object (`kind` in the JSON), the object
//! by its name as people read it (`public.positions.notes`, `public.f(integer)`), and the field
//! whose values differ.

use std::fmt;

use serde::Serialize;

use crate::pg::ident::{shown_ident, QualifiedName};

/// What kind of object differs (`kind` in the JSON report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Extension,
    Column,
    Constraint,
    Index,
    /// A table's own settings (row-level security); tables on one side only are compared with
    /// the data.
    Table,
    View,
    #[serde(rename = "materialized_view")]
    MaterializedView,
    /// A function, a procedure or an aggregate.
    Function,
    Trigger,
    Rule,
    /// An enum, composite or range type.
    Type,
    Domain,
    Collation,
    /// An extended statistics object (`CREATE STATISTICS`).
    Statistics,
    /// A `COMMENT ON` any object.
    Comment,
    Policy,
    Sequence,
}

impl ObjectKind {
    /// Whether its definition takes many lines: the text names the difference, the JSON's `left`
    /// and `right` carry both definitions.
    pub fn has_long_definition(self) -> bool {
        matches!(
            self,
            ObjectKind::View
                | ObjectKind::MaterializedView
                | ObjectKind::Function
                | ObjectKind::Rule
        )
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Extension => "extension",
            ObjectKind::Column => "column",
            ObjectKind::Constraint => "constraint",
            ObjectKind::Index => "index",
            ObjectKind::Table => "table",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized view",
            ObjectKind::Function => "function",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Rule => "rule",
            ObjectKind::Type => "type",
            ObjectKind::Domain => "domain",
            ObjectKind::Collation => "collation",
            ObjectKind::Statistics => "statistics",
            ObjectKind::Comment => "comment",
            ObjectKind::Policy => "policy",
            ObjectKind::Sequence => "sequence",
        })
    }
}

/// The object a difference is about, by its name; shown as people read it
/// (`public.positions.notes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaObject {
    Extension(String),
    Column {
        table: QualifiedName,
        column: String,
    },
    Constraint {
        table: QualifiedName,
        name: String,
    },
    Index(QualifiedName),
    Table(QualifiedName),
    View(QualifiedName),
    MaterializedView(QualifiedName),
    /// A function or procedure: its name and identity arguments (`integer, text`).
    Function {
        name: QualifiedName,
        args: String,
    },
    Trigger {
        table: QualifiedName,
        name: String,
    },
    Rule {
        table: QualifiedName,
        name: String,
    },
    Type(QualifiedName),
    Domain(QualifiedName),
    Collation(QualifiedName),
    Statistics(QualifiedName),
    /// A comment, on the object as `pg_identify_object` names it (`table column public.t.c`).
    Comment(String),
    Policy {
        table: QualifiedName,
        name: String,
    },
    Sequence(QualifiedName),
}

impl SchemaObject {
    pub fn kind(&self) -> ObjectKind {
        match self {
            SchemaObject::Extension(_) => ObjectKind::Extension,
            SchemaObject::Column { .. } => ObjectKind::Column,
            SchemaObject::Constraint { .. } => ObjectKind::Constraint,
            SchemaObject::Index(_) => ObjectKind::Index,
            SchemaObject::Table(_) => ObjectKind::Table,
            SchemaObject::View(_) => ObjectKind::View,
            SchemaObject::MaterializedView(_) => ObjectKind::MaterializedView,
            SchemaObject::Function { .. } => ObjectKind::Function,
            SchemaObject::Trigger { .. } => ObjectKind::Trigger,
            SchemaObject::Rule { .. } => ObjectKind::Rule,
            SchemaObject::Type(_) => ObjectKind::Type,
            SchemaObject::Domain(_) => ObjectKind::Domain,
            SchemaObject::Collation(_) => ObjectKind::Collation,
            SchemaObject::Statistics(_) => ObjectKind::Statistics,
            SchemaObject::Comment(_) => ObjectKind::Comment,
            SchemaObject::Policy { .. } => ObjectKind::Policy,
            SchemaObject::Sequence(_) => ObjectKind::Sequence,
        }
    }
}

impl fmt::Display for SchemaObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaObject::Extension(name) => write!(f, "{}", shown_ident(name)),
            SchemaObject::Column { table, column } => {
                write!(f, "{table}.{}", shown_ident(column))
            }
            SchemaObject::Constraint { table, name } => write!(f, "{table}.{}", shown_ident(name)),
            SchemaObject::Index(name)
            | SchemaObject::Table(name)
            | SchemaObject::View(name)
            | SchemaObject::MaterializedView(name)
            | SchemaObject::Type(name)
            | SchemaObject::Domain(name)
            | SchemaObject::Collation(name)
            | SchemaObject::Statistics(name)
            | SchemaObject::Sequence(name) => write!(f, "{name}"),
            SchemaObject::Comment(on) => write!(f, "on {on}"),
            SchemaObject::Function { name, args } => write!(f, "{name}({args})"),
            SchemaObject::Trigger { table, name }
            | SchemaObject::Rule { table, name }
            | SchemaObject::Policy { table, name } => {
                write!(f, "{table}.{}", shown_ident(name))
            }
        }
    }
}

/// The property of an object on both sides whose values differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// An extension's version.
    Version,
    /// The schema an extension is installed in.
    Schema,
    Type,
    Nullability,
    Default,
    Identity,
    GeneratedAs,
    Collation,
    /// A constraint's, an index's, a view's, a function's... definition.
    Definition,
    /// An enum type's labels, in their order.
    Labels,
    /// Whether a table's row-level security is enabled (and forced).
    RowSecurity,
    /// A sequence's position.
    LastValue,
    /// A comment's text.
    Text,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Version => "version",
            Field::Schema => "schema",
            Field::Type => "type",
            Field::Nullability => "nullability",
            Field::Default => "default",
            Field::Identity => "identity",
            Field::GeneratedAs => "generated as",
            Field::Collation => "collation",
            Field::Definition => "definition",
            Field::Labels => "labels",
            Field::RowSecurity => "row security",
            Field::LastValue => "last value",
            Field::Text => "text",
        })
    }
}
