//! A small model of the Go values templates see (`reflect.Value` as far as
//! templates can tell): strings, numbers, slices, maps in Go's key order,
//! structs with embedded fields and `String()` methods, and Go's notions of
//! ordering, deep equality and truth. Everything else in the template engine
//! works on these values.

use std::cmp::Ordering;
use std::rc::Rc;

/// A Go value. `Nil` stands for both the invalid `reflect.Value` (a missing
/// map key, printed `<no value>` by an action) and a nil interface.
#[derive(Debug, Clone)]
pub(super) enum Val {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<List>),
    Map(Rc<Map>),
    Struct(Rc<Struct>),
}

/// A slice. `nil` marks a nil slice (JSON `null`); `string` is the result of
/// its `String()` method, when its Go type has one.
#[derive(Debug)]
pub(super) struct List {
    pub(super) ty: &'static str,
    pub(super) items: Vec<Val>,
    pub(super) nil: bool,
    pub(super) string: Option<String>,
}

/// A map; `entries` are in Go's sorted key order. `zero` is the zero value of
/// the element type (what `index` returns for a missing key).
#[derive(Debug)]
pub(super) struct Map {
    pub(super) ty: &'static str,
    pub(super) key_ty: &'static str,
    pub(super) entries: Vec<(Val, Val)>,
    pub(super) zero: Val,
    pub(super) nil: bool,
    pub(super) string: Option<String>,
}

#[derive(Debug)]
pub(super) struct Struct {
    pub(super) ty: &'static str,
    pub(super) fields: Vec<Field>,
    pub(super) string: Option<String>,
    /// JSON encoding when the Go type marshals itself.
    pub(super) json: Option<String>,
}

#[derive(Debug)]
pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) val: Val,
    pub(super) kind: FieldKind,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum FieldKind {
    /// An exported field, with its JSON name and `omitempty`.
    Plain { json: &'static str, omitempty: bool },
    /// An embedded struct: its fields are promoted (and flattened in JSON).
    Embedded,
    /// A method without arguments, evaluated in advance.
    Method,
}

impl Val {
    pub(super) fn str(s: &str) -> Val {
        Val::Str(Rc::from(s))
    }

    /// The result of the value's `String()` method, if its type has one.
    pub(super) fn stringer(&self) -> Option<&str> {
        match self {
            Val::List(l) => l.string.as_deref(),
            Val::Map(m) => m.string.as_deref(),
            Val::Struct(s) => s.string.as_deref(),
            _ => None,
        }
    }

    /// Go's `reflect.Type.String()` of the value.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Val::Nil => "<nil>",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::List(l) => l.ty,
            Val::Map(m) => m.ty,
            Val::Struct(s) => s.ty,
        }
    }

    /// Go's `reflect.Kind` name, as Sprig prints it in its errors.
    pub(super) fn kind_name(&self) -> &'static str {
        match self {
            Val::Nil => "invalid",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::List(_) => "slice",
            Val::Map(_) => "map",
            Val::Struct(_) => "struct",
        }
    }
}

pub(super) fn plain(name: &'static str, val: Val) -> Field {
    Field {
        name,
        val,
        kind: FieldKind::Plain {
            json: name,
            omitempty: false,
        },
    }
}

pub(super) fn tagged(name: &'static str, json: &'static str, val: Val) -> Field {
    Field {
        name,
        val,
        kind: FieldKind::Plain {
            json,
            omitempty: true,
        },
    }
}

pub(super) fn embedded(name: &'static str, val: Val) -> Field {
    Field {
        name,
        val,
        kind: FieldKind::Embedded,
    }
}

pub(super) fn method(name: &'static str, val: Val) -> Field {
    Field {
        name,
        val,
        kind: FieldKind::Method,
    }
}

pub(super) fn struct_val(ty: &'static str, fields: Vec<Field>, string: Option<String>) -> Val {
    Val::Struct(Rc::new(Struct {
        ty,
        fields,
        string,
        json: None,
    }))
}

pub(super) fn list_val(
    ty: &'static str,
    items: Vec<Val>,
    nil: bool,
    string: Option<String>,
) -> Val {
    Val::List(Rc::new(List {
        ty,
        items,
        nil,
        string,
    }))
}

/// Builds a map, sorting the entries in Go's key order.
pub(super) fn map_val(
    ty: &'static str,
    key_ty: &'static str,
    mut entries: Vec<(Val, Val)>,
    zero: Val,
    string: Option<String>,
) -> Val {
    entries.sort_by(|a, b| go_cmp(&a.0, &b.0));
    let nil = entries.is_empty();
    Val::Map(Rc::new(Map {
        ty,
        key_ty,
        entries,
        zero,
        nil,
        string,
    }))
}

pub(super) fn data_fields(s: &Struct) -> impl Iterator<Item = &Field> {
    s.fields
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::Method))
}

/// Go's `FieldByName`: direct fields and methods first, then the fields
/// promoted from embedded structs, breadth first.
pub(super) fn find_field<'s>(s: &'s Struct, name: &str) -> Option<&'s Field> {
    let mut level: Vec<&Struct> = vec![s];
    while !level.is_empty() {
        let mut next = Vec::new();
        for st in &level {
            for f in &st.fields {
                if f.name == name {
                    return Some(f);
                }
                if let (FieldKind::Embedded, Val::Struct(inner)) = (f.kind, &f.val) {
                    next.push(&**inner);
                }
            }
        }
        level = next;
    }
    None
}

/// Go's `internal/fmtsort` order, for the key types we build.
pub(super) fn go_cmp(a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Struct(x), Val::Struct(y)) => {
            for (f, g) in data_fields(x).zip(data_fields(y)) {
                let o = go_cmp(&f.val, &g.val);
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        }
        _ => Ordering::Equal,
    }
}

/// `reflect.DeepEqual` for our values.
pub(super) fn deep_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Nil, Val::Nil) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::List(x), Val::List(y)) => {
            x.ty == y.ty
                && x.items.len() == y.items.len()
                && x.items.iter().zip(&y.items).all(|(p, q)| deep_eq(p, q))
        }
        (Val::Map(x), Val::Map(y)) => {
            x.ty == y.ty
                && x.entries.len() == y.entries.len()
                && x.entries
                    .iter()
                    .zip(&y.entries)
                    .all(|(p, q)| deep_eq(&p.0, &q.0) && deep_eq(&p.1, &q.1))
        }
        (Val::Struct(x), Val::Struct(y)) => {
            x.ty == y.ty
                && data_fields(x)
                    .zip(data_fields(y))
                    .all(|(p, q)| deep_eq(&p.val, &q.val))
        }
        _ => false,
    }
}

/// Go's truth (`if`, `with`, `and`, `or`, `not`).
pub(super) fn truth(v: &Val) -> bool {
    match v {
        Val::Nil => false,
        Val::Bool(b) => *b,
        Val::Int(i) => *i != 0,
        Val::Float(f) => *f != 0.0,
        Val::Str(s) => !s.is_empty(),
        Val::List(l) => !l.items.is_empty(),
        Val::Map(m) => !m.entries.is_empty(),
        Val::Struct(_) => true,
    }
}
