//! The comparison of the objects beyond the tables, by name: views and materialized views,
//! functions, procedures and aggregates (name and identity arguments), triggers, rules and
//! policies (per relation), enum types (labels in order), composite and range types, domains,
//! collations, extended statistics, comments, whether row-level security is enabled on each
//! table both sides have, and every sequence's position. Definitions are compared as the servers
//! print them. Objects of a relation that is on one side only come with that relation.

use std::collections::{BTreeMap, BTreeSet};

use super::{Differ, Field, SchemaObject};
use crate::pg::ident::QualifiedName;
use crate::verify::catalog::{Catalog, Comment, Objects};

pub(super) fn compare_objects(d: &mut Differ, l: &Catalog, r: &Catalog) {
    let (lo, ro) = (&l.objects, &r.objects);
    views(d, lo, ro);
    functions(d, lo, ro);
    // A relation (table or view) that both sides have: its triggers and policies are compared.
    let on_both = |rel: &QualifiedName| {
        let has = |c: &Catalog| c.tables.contains_key(rel) || c.objects.views.contains_key(rel);
        has(l) && has(r)
    };
    keyed(d, &lo.triggers, &ro.triggers, |(table, name)| {
        on_both(table).then(|| SchemaObject::Trigger {
            table: table.clone(),
            name: name.clone(),
        })
    });
    keyed(d, &lo.rules, &ro.rules, |(table, name)| {
        on_both(table).then(|| SchemaObject::Rule {
            table: table.clone(),
            name: name.clone(),
        })
    });
    enums(d, lo, ro);
    keyed(d, &lo.types, &ro.types, |name| {
        Some(SchemaObject::Type(name.clone()))
    });
    keyed(d, &lo.domains, &ro.domains, |name| {
        Some(SchemaObject::Domain(name.clone()))
    });
    keyed(d, &lo.collations, &ro.collations, |name| {
        Some(SchemaObject::Collation(name.clone()))
    });
    keyed(d, &lo.statistics, &ro.statistics, |name| {
        Some(SchemaObject::Statistics(name.clone()))
    });
    comments(d, lo, ro, |rel| {
        let has = |c: &Catalog| c.tables.contains_key(rel) || c.objects.views.contains_key(rel);
        has(l) != has(r)
    });
    keyed(d, &lo.policies, &ro.policies, |(table, name)| {
        on_both(table).then(|| SchemaObject::Policy {
            table: table.clone(),
            name: name.clone(),
        })
    });
    for (table, a) in &lo.row_security {
        if let Some(b) = ro.row_security.get(table) {
            d.field(
                &SchemaObject::Table(table.clone()),
                Field::RowSecurity,
                Some(a),
                Some(b),
            );
        }
    }
    sequences(d, l, r);
}

/// Objects whose whole description is one definition: on one side only, or defined
/// differently. `object` names it, or `None` to leave it to its relation.
fn keyed<K: Ord>(
    d: &mut Differ,
    l: &BTreeMap<K, String>,
    r: &BTreeMap<K, String>,
    object: impl Fn(&K) -> Option<SchemaObject>,
) {
    let keys: BTreeSet<&K> = l.keys().chain(r.keys()).collect();
    for key in keys {
        if let Some(object) = object(key) {
            d.definition(
                object,
                l.get(key).map(String::as_str),
                r.get(key).map(String::as_str),
            );
        }
    }
}

/// A view and a materialized view are different kinds: one of the same name on each side is
/// shown as a view on one side only and a materialized view on the other.
fn views(d: &mut Differ, l: &Objects, r: &Objects) {
    for materialized in [false, true] {
        let pick = |o: &Objects| -> BTreeMap<QualifiedName, String> {
            o.views
                .iter()
                .filter(|(_, v)| v.materialized == materialized)
                .map(|(name, v)| (name.clone(), v.definition.clone()))
                .collect()
        };
        keyed(d, &pick(l), &pick(r), |name| {
            Some(if materialized {
                SchemaObject::MaterializedView(name.clone())
            } else {
                SchemaObject::View(name.clone())
            })
        });
    }
}

/// Functions and procedures by name and identity arguments: `pg_get_functiondef` says which it
/// is (`CREATE OR REPLACE FUNCTION` or `PROCEDURE`), so the definition covers the kind too.
fn functions(d: &mut Differ, l: &Objects, r: &Objects) {
    let defs = |o: &Objects| -> BTreeMap<(QualifiedName, String), String> {
        o.functions
            .iter()
            .map(|(key, f)| (key.clone(), f.definition.clone()))
            .collect()
    };
    keyed(d, &defs(l), &defs(r), |(name, args)| {
        Some(SchemaObject::Function {
            name: name.clone(),
            args: args.clone(),
        })
    });
}

/// Comments by the object they are on: on one side only, or with another text. The comments of
/// a relation that is on one side only come with that relation.
fn comments(
    d: &mut Differ,
    l: &Objects,
    r: &Objects,
    relation_on_one_side: impl Fn(&QualifiedName) -> bool,
) {
    let on: BTreeSet<&String> = l.comments.keys().chain(r.comments.keys()).collect();
    for key in on {
        let (a, b) = (l.comments.get(key), r.comments.get(key));
        let relation = a.or(b).and_then(|c| c.relation.as_ref());
        if relation.is_some_and(&relation_on_one_side) {
            continue;
        }
        let object = SchemaObject::Comment(key.clone());
        let text = |c: Option<&Comment>| c.map(|c| c.text.clone());
        match (a, b) {
            (Some(_), Some(_)) => {
                d.field(&object, Field::Text, text(a).as_deref(), text(b).as_deref())
            }
            _ => d.only(object, text(a), text(b)),
        }
    }
}

/// `[a, b]`: the labels as the text shows them.
pub(super) fn labels(labels: &[String]) -> String {
    format!("[{}]", labels.join(", "))
}

fn enums(d: &mut Differ, l: &Objects, r: &Objects) {
    let names: BTreeSet<&QualifiedName> = l.enums.keys().chain(r.enums.keys()).collect();
    for name in names {
        let object = SchemaObject::Type(name.clone());
        match (l.enums.get(name), r.enums.get(name)) {
            (Some(a), Some(b)) => {
                d.field(&object, Field::Labels, Some(&labels(a)), Some(&labels(b)))
            }
            (a, b) => {
                let shown = |v: &Vec<String>| format!("enum {}", labels(v));
                d.only(object, a.map(shown), b.map(shown))
            }
        }
    }
}

/// How a sequence's position shows on a side whose role may not read it.
pub const NOT_READABLE: &str = "not readable";

/// Every sequence: on one side only (unless its owning table is, which comes with the table),
/// or at another position. A sequence that a side may not read is `NOT_READABLE` there.
fn sequences(d: &mut Differ, l: &Catalog, r: &Catalog) {
    let (ls, rs) = (&l.objects.sequences, &r.objects.sequences);
    let names: BTreeSet<&QualifiedName> = ls.keys().chain(rs.keys()).collect();
    let table_on_both = |t: &QualifiedName| l.tables.contains_key(t) && r.tables.contains_key(t);
    let position = |s: &crate::verify::catalog::Sequence| {
        s.position
            .clone()
            .unwrap_or_else(|| NOT_READABLE.to_string())
    };
    for name in names {
        let (a, b) = (ls.get(name), rs.get(name));
        let owner = a.or(b).and_then(|s| s.owner.as_ref());
        if owner.is_some_and(|t| !table_on_both(t)) {
            continue;
        }
        let object = SchemaObject::Sequence(name.clone());
        match (a, b) {
            (Some(a), Some(b)) => d.field(
                &object,
                Field::LastValue,
                Some(&position(a)),
                Some(&position(b)),
            ),
            (a, b) => {
                let shown =
                    |s: &crate::verify::catalog::Sequence| format!("last value {}", position(s));
                d.only(object, a.map(shown), b.map(shown))
            }
        }
    }
}
