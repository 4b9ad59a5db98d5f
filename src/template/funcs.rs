//! The functions a template may call: Go's builtins (`len`, `index`, `slice`,
//! `eq`, `lt`, `html`, ...) and the hermetic Sprig subset Flux documents, each
//! with its signature (what the checker and the evaluator need) and with Go's
//! and Sprig's exact argument orders and error messages.

use super::gofmt::{f_printf, go_quote, sprint, sprint_v, strval, to_json, write_v};
use super::value::{Val, deep_eq, list_val, truth};
use super::{MAX_OUTPUT, bounded};

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Param {
    Any,
    Str,
    Int,
    Bool,
}

impl Param {
    pub(super) fn name(self) -> &'static str {
        match self {
            Param::Any => "interface {}",
            Param::Str => "string",
            Param::Int => "int",
            Param::Bool => "bool",
        }
    }
}

pub(super) type Imp = fn(&[Val]) -> Result<Val, String>;

pub(super) struct Sig {
    pub(super) fixed: &'static [Param],
    pub(super) variadic: Option<Param>,
    pub(super) imp: Imp,
}

impl Sig {
    pub(super) fn param(&self, i: usize) -> Param {
        self.fixed
            .get(i)
            .copied()
            .or(self.variadic)
            .unwrap_or(Param::Any)
    }
}

pub(super) fn func_sig(name: &str) -> Option<Sig> {
    use Param::{Any, Bool, Int, Str};
    let (fixed, variadic, imp): (&'static [Param], Option<Param>, Imp) = match name {
        // Go's builtins. `and`/`or` are evaluated lazily by the executor.
        "and" | "or" => (&[Any], Some(Any), |_| Ok(Val::Nil)),
        "not" => (&[Any], None, |a| Ok(Val::Bool(!truth(&a[0])))),
        "len" => (&[Any], None, f_len),
        "index" => (&[Any], Some(Any), f_index),
        "slice" => (&[Any], Some(Any), f_slice),
        "call" => (&[Any], Some(Any), f_call),
        "print" => (&[], Some(Any), |a| Ok(Val::str(&sprint(a)))),
        "println" => (&[], Some(Any), f_println),
        "printf" => (&[Str], Some(Any), f_printf),
        "html" => (&[], Some(Any), |a| {
            Ok(Val::str(&gotmpl::html_escape(&eval_args(a))))
        }),
        "js" => (&[], Some(Any), |a| {
            Ok(Val::str(&gotmpl::js_escape(&eval_args(a))))
        }),
        "urlquery" => (&[], Some(Any), |a| {
            Ok(Val::str(&gotmpl::url_encode(&eval_args(a))))
        }),
        "eq" => (&[Any], Some(Any), f_eq),
        "ne" => (&[Any, Any], None, |a| {
            f_eq(a).map(|v| Val::Bool(!truth(&v)))
        }),
        "lt" => (&[Any, Any], None, |a| less(&a[0], &a[1]).map(Val::Bool)),
        "le" => (&[Any, Any], None, |a| f_le(a).map(Val::Bool)),
        "gt" => (&[Any, Any], None, |a| f_le(a).map(|b| Val::Bool(!b))),
        "ge" => (&[Any, Any], None, |a| {
            less(&a[0], &a[1]).map(|b| Val::Bool(!b))
        }),
        // Sprig.
        "upper" => (&[Str], None, |a| {
            Ok(Val::str(&map_chars(&strval(&a[0]), true)))
        }),
        "lower" => (&[Str], None, |a| {
            Ok(Val::str(&map_chars(&strval(&a[0]), false)))
        }),
        "title" => (&[Str], None, |a| Ok(Val::str(&title(&strval(&a[0]))))),
        "trim" => (&[Str], None, |a| {
            Ok(Val::str(strval(&a[0]).trim_matches(go_space)))
        }),
        "nospace" => (&[Str], None, |a| {
            Ok(Val::str(&strval(&a[0]).replace(go_space, "")))
        }),
        "trimAll" => (&[Str, Str], None, |a| {
            let cutset = strval(&a[0]);
            Ok(Val::str(strval(&a[1]).trim_matches(|c| cutset.contains(c))))
        }),
        "trimPrefix" => (&[Str, Str], None, |a| {
            let (prefix, s) = (strval(&a[0]), strval(&a[1]));
            Ok(Val::str(s.strip_prefix(prefix.as_str()).unwrap_or(&s)))
        }),
        "trimSuffix" => (&[Str, Str], None, |a| {
            let (suffix, s) = (strval(&a[0]), strval(&a[1]));
            Ok(Val::str(s.strip_suffix(suffix.as_str()).unwrap_or(&s)))
        }),
        "replace" => (&[Str, Str, Str], None, |a| {
            let (old, new, s) = (strval(&a[0]), strval(&a[1]), strval(&a[2]));
            let matches = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old.as_str()).count()
            };
            bounded(matches.checked_mul(new.len()), s.len(), "the result")?;
            Ok(Val::str(&s.replace(&old, &new)))
        }),
        "contains" => (&[Str, Str], None, |a| {
            Ok(Val::Bool(strval(&a[1]).contains(&strval(&a[0]))))
        }),
        "hasPrefix" => (&[Str, Str], None, |a| {
            Ok(Val::Bool(strval(&a[1]).starts_with(&strval(&a[0]))))
        }),
        "hasSuffix" => (&[Str, Str], None, |a| {
            Ok(Val::Bool(strval(&a[1]).ends_with(&strval(&a[0]))))
        }),
        "quote" => (&[], Some(Any), |a| {
            let quoted: Vec<String> = a
                .iter()
                .filter(|v| !matches!(v, Val::Nil))
                .map(|v| go_quote(&strval(v)))
                .collect();
            Ok(Val::str(&quoted.join(" ")))
        }),
        "squote" => (&[], Some(Any), |a| {
            let quoted: Vec<String> = a
                .iter()
                .filter(|v| !matches!(v, Val::Nil))
                .map(|v| format!("'{}'", sprint_v(v)))
                .collect();
            Ok(Val::str(&quoted.join(" ")))
        }),
        "cat" => (&[], Some(Any), |a| {
            let parts: Vec<String> = a
                .iter()
                .filter(|v| !matches!(v, Val::Nil))
                .map(sprint_v)
                .collect();
            Ok(Val::str(&parts.join(" ")))
        }),
        "toString" => (&[Any], None, |a| Ok(Val::str(&strval(&a[0])))),
        "default" => (&[Any], Some(Any), |a| match a.get(1) {
            Some(given) if !empty(given) => Ok(given.clone()),
            _ => Ok(a[0].clone()),
        }),
        "empty" => (&[Any], None, |a| Ok(Val::Bool(empty(&a[0])))),
        "coalesce" => (&[], Some(Any), |a| {
            Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Val::Nil))
        }),
        "ternary" => (&[Any, Any, Bool], None, |a| {
            Ok(if truth(&a[2]) {
                a[0].clone()
            } else {
                a[1].clone()
            })
        }),
        "join" => (&[Str, Any], None, |a| {
            let (sep, items) = (strval(&a[0]), strslice(&a[1]));
            let total = items.iter().map(String::len).sum::<usize>();
            bounded(items.len().checked_mul(sep.len()), total, "the result")?;
            Ok(Val::str(&items.join(&sep)))
        }),
        "splitList" => (&[Str, Str], None, |a| {
            let parts = go_split(&strval(&a[1]), &strval(&a[0]));
            Ok(list_val(
                "[]string",
                parts.iter().map(|p| Val::str(p)).collect(),
                false,
                None,
            ))
        }),
        "list" => (&[], Some(Any), |a| {
            Ok(list_val("[]interface {}", a.to_vec(), a.is_empty(), None))
        }),
        "first" => (&[Any], None, |a| f_first_last(&a[0], true)),
        "last" => (&[Any], None, |a| f_first_last(&a[0], false)),
        "uniq" => (&[Any], None, f_uniq),
        "sortAlpha" => (&[Any], None, |a| {
            let mut items = match &a[0] {
                Val::List(_) => strslice(&a[0]),
                other => vec![strval(other)],
            };
            items.sort();
            Ok(list_val(
                "[]string",
                items.iter().map(|s| Val::str(s)).collect(),
                false,
                None,
            ))
        }),
        "indent" => (&[Int, Str], None, |a| Ok(Val::str(&indent(&a[0], &a[1])?))),
        "nindent" => (&[Int, Str], None, |a| {
            Ok(Val::str(&format!("\n{}", indent(&a[0], &a[1])?)))
        }),
        "repeat" => (&[Int, Str], None, |a| {
            let count = usize::try_from(int(&a[0]))
                .map_err(|_| "strings: negative Repeat count".to_string())?;
            let s = strval(&a[1]);
            bounded(count.checked_mul(s.len()), 0, "the result")?;
            Ok(Val::str(&s.repeat(count)))
        }),
        "substr" => (&[Int, Int, Str], None, f_substr),
        "trunc" => (&[Int, Str], None, f_trunc),
        "abbrev" => (&[Int, Str], None, f_abbrev),
        "toJson" => (&[Any], None, |a| {
            let mut out = String::new();
            if to_json(&a[0], &mut out).is_err() {
                out.clear();
            }
            Ok(Val::str(&out))
        }),
        _ => return None,
    };
    Some(Sig {
        fixed,
        variadic,
        imp,
    })
}

pub(super) fn too_large(what: &str) -> String {
    format!("{what} would be larger than {MAX_OUTPUT} bytes, the limit of a template's output")
}

pub(super) fn int(v: &Val) -> i64 {
    match v {
        Val::Int(i) => *i,
        _ => 0,
    }
}

pub(super) fn f_len(a: &[Val]) -> Result<Val, String> {
    match &a[0] {
        Val::Str(s) => Ok(Val::Int(s.len() as i64)),
        Val::List(l) => Ok(Val::Int(l.items.len() as i64)),
        Val::Map(m) => Ok(Val::Int(m.entries.len() as i64)),
        Val::Nil => Err("reflect: call of reflect.Value.Type on zero Value".to_string()),
        other => Err(format!("len of type {}", other.type_name())),
    }
}

/// An index for `index`/`slice`, checked against `cap`.
pub(super) fn index_arg(index: &Val, cap: usize) -> Result<usize, String> {
    match index {
        Val::Int(x) if *x < 0 || *x as u64 > cap as u64 => Err(format!("index out of range: {x}")),
        Val::Int(x) => Ok(*x as usize),
        Val::Nil => Err("cannot index slice/array with nil".to_string()),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

pub(super) fn f_index(a: &[Val]) -> Result<Val, String> {
    let mut item = a[0].clone();
    if let Val::Nil = item {
        return Err("index of untyped nil".to_string());
    }
    for index in &a[1..] {
        item = match &item {
            Val::List(l) => {
                let i = index_arg(index, l.items.len())?;
                l.items
                    .get(i)
                    .cloned()
                    .ok_or_else(|| "reflect: slice index out of range".to_string())?
            }
            Val::Str(s) => {
                let i = index_arg(index, s.len())?;
                let byte = s
                    .as_bytes()
                    .get(i)
                    .ok_or_else(|| "reflect: string index out of range".to_string())?;
                Val::Int(i64::from(*byte))
            }
            Val::Map(m) => {
                let key_ok = match index {
                    Val::Str(_) => m.key_ty == "string",
                    Val::Struct(s) => s.ty == m.key_ty,
                    _ => false,
                };
                if let Val::Nil = index {
                    return Err(format!("value is nil; should be of type {}", m.key_ty));
                }
                if !key_ok {
                    return Err(format!(
                        "value has type {}; should be {}",
                        index.type_name(),
                        m.key_ty
                    ));
                }
                m.entries
                    .iter()
                    .find(|(k, _)| deep_eq(k, index))
                    .map_or_else(|| m.zero.clone(), |(_, v)| v.clone())
            }
            Val::Nil => return Err("index of nil pointer".to_string()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

pub(super) fn f_slice(a: &[Val]) -> Result<Val, String> {
    let item = &a[0];
    let indexes = &a[1..];
    if let Val::Nil = item {
        return Err("slice of untyped nil".to_string());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item {
        Val::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".to_string());
            }
            s.len()
        }
        Val::List(l) => l.items.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Val::Str(s) => Val::str(&String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]])),
        Val::List(l) => list_val(l.ty, l.items[idx[0]..idx[1]].to_vec(), false, None),
        _ => Val::Nil,
    })
}

pub(super) fn f_call(a: &[Val]) -> Result<Val, String> {
    match &a[0] {
        Val::Nil => Err("call of nil".to_string()),
        other => Err(format!("non-function of type {}", other.type_name())),
    }
}

pub(super) fn f_println(a: &[Val]) -> Result<Val, String> {
    let mut out = String::new();
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(&mut out, v);
    }
    out.push('\n');
    Ok(Val::str(&out))
}

/// The text `html`, `js` and `urlquery` escape: a lone string as is, else
/// `fmt.Sprint` of the arguments, a missing value printing `<no value>`.
pub(super) fn eval_args(a: &[Val]) -> String {
    if let [Val::Str(s)] = a {
        return s.to_string();
    }
    let shown: Vec<Val> = a
        .iter()
        .map(|v| match v {
            Val::Nil => Val::str("<no value>"),
            v => v.clone(),
        })
        .collect();
    sprint(&shown)
}

#[derive(PartialEq)]
pub(super) enum BasicKind {
    Bool,
    Int,
    Float,
    Str,
}

pub(super) fn basic_kind(v: &Val) -> Option<BasicKind> {
    match v {
        Val::Bool(_) => Some(BasicKind::Bool),
        Val::Int(_) => Some(BasicKind::Int),
        Val::Float(_) => Some(BasicKind::Float),
        Val::Str(_) => Some(BasicKind::Str),
        _ => None,
    }
}

pub(super) const BAD_COMPARISON: &str = "incompatible types for comparison";
pub(super) const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

pub(super) fn f_eq(a: &[Val]) -> Result<Val, String> {
    let first = &a[0];
    if a.len() < 2 {
        return Err("missing argument for comparison".to_string());
    }
    for other in &a[1..] {
        let equal = match (basic_kind(first), basic_kind(other)) {
            (Some(k1), Some(k2)) if k1 != k2 => return Err(BAD_COMPARISON.to_string()),
            (Some(_), Some(_)) => deep_eq(first, other),
            (Some(_), None) | (None, Some(_)) => {
                if matches!(first, Val::Nil) || matches!(other, Val::Nil) {
                    false
                } else {
                    return Err(BAD_COMPARISON.to_string());
                }
            }
            (None, None) => match (first, other) {
                (Val::Nil, _) | (_, Val::Nil) => {
                    matches!(first, Val::Nil) && matches!(other, Val::Nil)
                }
                (Val::Struct(x), Val::Struct(y)) if x.ty == y.ty => deep_eq(first, other),
                _ if first.type_name() != other.type_name() => {
                    return Err(format!(
                        "non-comparable types {}: {}, {}: {}",
                        sprint_v(first),
                        first.type_name(),
                        other.type_name(),
                        sprint_v(other)
                    ));
                }
                _ => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        sprint_v(other),
                        other.type_name()
                    ));
                }
            },
        };
        if equal {
            return Ok(Val::Bool(true));
        }
    }
    Ok(Val::Bool(false))
}

pub(super) fn less(a: &Val, b: &Val) -> Result<bool, String> {
    let (Some(k1), Some(k2)) = (basic_kind(a), basic_kind(b)) else {
        return Err(BAD_COMPARISON_TYPE.to_string());
    };
    if k1 != k2 {
        return Err(BAD_COMPARISON.to_string());
    }
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Ok(x < y),
        (Val::Float(x), Val::Float(y)) => Ok(x < y),
        (Val::Str(x), Val::Str(y)) => Ok(x.as_bytes() < y.as_bytes()),
        _ => Err(BAD_COMPARISON_TYPE.to_string()),
    }
}

pub(super) fn f_le(a: &[Val]) -> Result<bool, String> {
    Ok(less(&a[0], &a[1])? || truth(&f_eq(a)?))
}

/// Sprig's `empty`.
pub(super) fn empty(v: &Val) -> bool {
    match v {
        Val::Struct(_) => false,
        other => !truth(other),
    }
}

/// Sprig's `strslice`: the items of a list as strings (nils dropped).
pub(super) fn strslice(v: &Val) -> Vec<String> {
    match v {
        Val::List(l) => l
            .items
            .iter()
            .filter(|i| !matches!(i, Val::Nil))
            .map(strval)
            .collect(),
        Val::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

/// `unicode.IsSpace`.
pub(super) fn go_space(c: char) -> bool {
    c.is_whitespace()
}

/// `strings.ToUpper`/`ToLower`: Go maps rune by rune, so a character whose
/// full case mapping has several characters (`ß`) stays as it is.
pub(super) fn map_chars(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut mapped: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if mapped.len() == 1 {
                mapped.remove(0)
            } else {
                c
            }
        })
        .collect()
}

/// `strings.Title`: upper-cases letters that follow a separator.
pub(super) fn title(s: &str) -> String {
    let separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphanumeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if separator(prev) {
                map_chars(&c.to_string(), true).chars().next().unwrap_or(c)
            } else {
                c
            };
            prev = c;
            out
        })
        .collect()
}

/// `strings.Split`.
pub(super) fn go_split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        s.chars().map(String::from).collect()
    } else {
        s.split(sep).map(String::from).collect()
    }
}

pub(super) fn f_first_last(v: &Val, first: bool) -> Result<Val, String> {
    match v {
        Val::List(l) => Ok(if first {
            l.items.first().cloned().unwrap_or(Val::Nil)
        } else {
            l.items.last().cloned().unwrap_or(Val::Nil)
        }),
        Val::Nil => {
            Err("runtime error: invalid memory address or nil pointer dereference".to_string())
        }
        other => Err(format!(
            "Cannot find {} on type {}",
            if first { "first" } else { "last" },
            other.kind_name()
        )),
    }
}

pub(super) fn f_uniq(a: &[Val]) -> Result<Val, String> {
    match &a[0] {
        Val::List(l) => {
            let mut out: Vec<Val> = Vec::new();
            for item in &l.items {
                if !out.iter().any(|o| deep_eq(o, item)) {
                    out.push(item.clone());
                }
            }
            Ok(list_val("[]interface {}", out, false, None))
        }
        Val::Nil => {
            Err("runtime error: invalid memory address or nil pointer dereference".to_string())
        }
        other => Err(format!("Cannot find uniq on type {}", other.kind_name())),
    }
}

pub(super) fn indent(spaces: &Val, s: &Val) -> Result<String, String> {
    let n =
        usize::try_from(int(spaces)).map_err(|_| "strings: negative Repeat count".to_string())?;
    let s = strval(s);
    let lines = s.matches('\n').count() + 1;
    bounded(n.checked_mul(lines), s.len(), "the result")?;
    let pad = " ".repeat(n);
    Ok(format!("{pad}{}", s.replace('\n', &format!("\n{pad}"))))
}

/// Go's `s[i:j]` on bytes, with Go's panic messages.
pub(super) fn byte_slice(s: &str, start: Option<i64>, end: Option<i64>) -> Result<String, String> {
    let len = s.len() as i64;
    let (i, j) = (start.unwrap_or(0), end.unwrap_or(len));
    if j < 0 {
        return Err(format!("runtime error: slice bounds out of range [:{j}]"));
    }
    if j > len {
        return Err(format!(
            "runtime error: slice bounds out of range [:{j}] with length {len}"
        ));
    }
    if i < 0 || i > j {
        return Err(format!(
            "runtime error: slice bounds out of range [{i}:{j}]"
        ));
    }
    Ok(String::from_utf8_lossy(&s.as_bytes()[i as usize..j as usize]).into_owned())
}

pub(super) fn f_substr(a: &[Val]) -> Result<Val, String> {
    let (start, end, s) = (int(&a[0]), int(&a[1]), strval(&a[2]));
    let len = s.len() as i64;
    let out = if start < 0 {
        byte_slice(&s, None, Some(end))?
    } else if end < 0 || end > len {
        byte_slice(&s, Some(start), None)?
    } else {
        byte_slice(&s, Some(start), Some(end))?
    };
    Ok(Val::str(&out))
}

pub(super) fn f_trunc(a: &[Val]) -> Result<Val, String> {
    let (c, s) = (int(&a[0]), strval(&a[1]));
    let len = s.len() as i64;
    let out = if c < 0 && len + c > 0 {
        byte_slice(&s, Some(len + c), None)?
    } else if c >= 0 && len > c {
        byte_slice(&s, None, Some(c))?
    } else {
        s
    };
    Ok(Val::str(&out))
}

pub(super) fn f_abbrev(a: &[Val]) -> Result<Val, String> {
    let (width, s) = (int(&a[0]), strval(&a[1]));
    if width < 4 || s.len() as i64 <= width {
        return Ok(Val::str(&s));
    }
    Ok(Val::str(&format!(
        "{}...",
        byte_slice(&s, None, Some(width - 3))?
    )))
}
