//! Go's `fmt`, `strconv` and `encoding/json` output for template values:
//! `%v` and `fmt.Sprint`, `strconv.Quote` and `FormatFloat`, `json.Marshal`,
//! and `printf` (Go's `fmt.Sprintf`). The format string, argument indexes, `*`
//! and the MISSING/EXTRA/BADINDEX markers are handled here; a scalar is
//! formatted by gotmpl's printf (one directive at a time); lists, maps, structs
//! and Stringers are taken apart here, as Go's fmt does. Kept apart from the
//! evaluator because byte-for-byte output is its own, well-tested concern.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::bounded;
use super::value::{FieldKind, Struct, Val, data_fields, truth};

/// Appends `v` formatted with Go's `%v`.
pub(super) fn write_v(out: &mut String, v: &Val) {
    if let Some(s) = v.stringer() {
        out.push_str(s);
        return;
    }
    match v {
        Val::Nil => out.push_str("<nil>"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Float(f) => out.push_str(&go_float(*f)),
        Val::Str(s) => out.push_str(s),
        Val::List(l) => {
            out.push('[');
            for (i, item) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, item);
            }
            out.push(']');
        }
        Val::Map(m) => {
            out.push_str("map[");
            for (i, (k, val)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, k);
                out.push(':');
                write_v(out, val);
            }
            out.push(']');
        }
        Val::Struct(s) => {
            out.push('{');
            for (i, f) in data_fields(s).enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, &f.val);
            }
            out.push('}');
        }
    }
}

pub(super) fn sprint_v(v: &Val) -> String {
    let mut out = String::new();
    write_v(&mut out, v);
    out
}

/// `fmt.Sprint`: a space between two operands when neither is a string.
pub(super) fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Val::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        write_v(&mut out, a);
        prev_string = is_string;
    }
    out
}

/// Sprig's `strval`: strings as they are, `Stringer`s through `String()`,
/// everything else with `%v`.
pub(super) fn strval(v: &Val) -> String {
    match v {
        Val::Str(s) => s.to_string(),
        other => sprint_v(other),
    }
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`, which is what `%v` prints.
pub(super) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, as Go does.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if f < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let point = exp as usize + 1;
        if digits.len() <= point {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

/// `strconv.IsPrint`, closely enough: ASCII graphic and space, and the
/// non-ASCII characters that are not spaces, controls, format characters,
/// private use or non-characters.
pub(super) fn go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(u, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e)
        || matches!(u, 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f)
        || matches!(u, 0xfeff | 0xfff9..=0xfffb | 0xfffe | 0xffff)
        || matches!(u, 0xe000..=0xf8ff | 0xe0001 | 0xe0020..=0xe007f)
        || u >= 0xf0000)
}

/// `strconv.Quote` (what `%q` prints for a string).
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe).
pub(super) fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `json.Marshal`; `Err` where Go fails (a map with struct keys).
pub(super) fn to_json(v: &Val, out: &mut String) -> Result<(), ()> {
    match v {
        Val::Nil => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Float(f) => {
            if !f.is_finite() {
                return Err(());
            }
            let abs = f.abs();
            if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
                let s = format!("{f:e}");
                let (m, e) = s.split_once('e').unwrap_or((s.as_str(), "0"));
                let e: i32 = e.parse().unwrap_or(0);
                let _ = write!(out, "{m}e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
            } else {
                let _ = write!(out, "{f}");
            }
        }
        Val::Str(s) => json_string(s, out),
        Val::List(l) => {
            if l.nil {
                out.push_str("null");
            } else {
                out.push('[');
                for (i, item) in l.items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    to_json(item, out)?;
                }
                out.push(']');
            }
        }
        Val::Map(m) => {
            if m.key_ty != "string" {
                return Err(());
            }
            if m.nil {
                out.push_str("null");
            } else {
                out.push('{');
                for (i, (k, val)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(&strval(k), out);
                    out.push(':');
                    to_json(val, out)?;
                }
                out.push('}');
            }
        }
        Val::Struct(s) => {
            if let Some(json) = &s.json {
                out.push_str(json);
            } else {
                out.push('{');
                let mut first = true;
                json_fields(s, out, &mut first)?;
                out.push('}');
            }
        }
    }
    Ok(())
}

pub(super) fn json_fields(s: &Struct, out: &mut String, first: &mut bool) -> Result<(), ()> {
    for f in &s.fields {
        match (f.kind, &f.val) {
            (FieldKind::Method, _) => {}
            (FieldKind::Embedded, Val::Struct(inner)) => json_fields(inner, out, first)?,
            (FieldKind::Embedded, _) => {}
            (FieldKind::Plain { json, omitempty }, val) => {
                if omitempty && !truth(val) && !matches!(val, Val::Struct(_)) {
                    continue;
                }
                if !*first {
                    out.push(',');
                }
                *first = false;
                json_string(json, out);
                out.push(':');
                to_json(val, out)?;
            }
        }
    }
    Ok(())
}

#[derive(Default, Clone)]
pub(super) struct Spec {
    pub(super) minus: bool,
    pub(super) plus: bool,
    pub(super) sharp: bool,
    pub(super) zero: bool,
    pub(super) space: bool,
    pub(super) width: Option<i64>,
    pub(super) precision: Option<i64>,
}

pub(super) fn f_printf(a: &[Val]) -> Result<Val, String> {
    let format = strval(&a[0]);
    Ok(Val::str(&go_sprintf(&format, &a[1..])?))
}

/// Parses a decimal number at `i` (Go's `parsenum`).
pub(super) fn parse_num(f: &[u8], mut i: usize) -> (Option<i64>, usize) {
    let start = i;
    let mut n: i64 = 0;
    while i < f.len() && f[i].is_ascii_digit() {
        if n > 1_000_000 {
            return (None, i);
        }
        n = n * 10 + i64::from(f[i] - b'0');
        i += 1;
    }
    (if i > start { Some(n) } else { None }, i)
}

/// Go's `argNumber`: an explicit `[n]` index at `i`.
pub(super) fn arg_number(
    f: &[u8],
    i: usize,
    arg_num: usize,
    n_args: usize,
    state: &mut (bool, bool),
) -> (usize, usize, bool) {
    // state: (reordered, good_arg_num)
    if i >= f.len() || f[i] != b'[' {
        return (arg_num, i, false);
    }
    state.0 = true;
    let Some(close) = f[i..].iter().position(|&b| b == b']') else {
        state.1 = false;
        return (arg_num, i + 1, false);
    };
    let (n, end) = parse_num(f, i + 1);
    match n {
        Some(n) if end == i + close && n >= 1 && (n as usize) <= n_args => {
            (n as usize - 1, i + close + 1, true)
        }
        Some(_) if end == i + close => {
            state.1 = false;
            (arg_num, i + close + 1, true)
        }
        _ => {
            state.1 = false;
            (arg_num, i + close + 1, false)
        }
    }
}

/// Go's `fmt.Sprintf`; `Err` once the result passes [`MAX_OUTPUT`].
pub(super) fn go_sprintf(format: &str, args: &[Val]) -> Result<String, String> {
    let f = format.as_bytes();
    let mut out = String::new();
    let mut arg_num = 0;
    let mut state = (false, true);
    let mut i = 0;
    while i < f.len() {
        state.1 = true;
        let last = i;
        while i < f.len() && f[i] != b'%' {
            i += 1;
        }
        out.push_str(&format[last..i]);
        if i >= f.len() {
            break;
        }
        i += 1;
        let mut spec = Spec::default();
        while i < f.len() {
            match f[i] {
                b'#' => spec.sharp = true,
                b'0' => spec.zero = true,
                b'+' => spec.plus = true,
                b'-' => spec.minus = true,
                b' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut after_index;
        (arg_num, i, after_index) = arg_number(f, i, arg_num, args.len(), &mut state);
        if i < f.len() && f[i] == b'*' {
            i += 1;
            match args.get(arg_num) {
                // Go's `tooLarge`: a width past a million is no width.
                Some(Val::Int(w)) if w.unsigned_abs() <= 1_000_000 => {
                    spec.width = Some(w.abs());
                    if *w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    arg_num += 1;
                }
                Some(_) => {
                    arg_num += 1;
                    out.push_str("%!(BADWIDTH)");
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
            after_index = false;
        } else {
            let (w, next) = parse_num(f, i);
            spec.width = w;
            i = next;
            if after_index && w.is_some() {
                state.1 = false;
            }
        }
        if i + 1 < f.len() && f[i] == b'.' {
            i += 1;
            if after_index {
                state.1 = false;
            }
            (arg_num, i, after_index) = arg_number(f, i, arg_num, args.len(), &mut state);
            if i < f.len() && f[i] == b'*' {
                i += 1;
                match args.get(arg_num) {
                    Some(Val::Int(p)) if p.unsigned_abs() <= 1_000_000 => {
                        spec.precision = (*p >= 0).then_some(*p);
                        arg_num += 1;
                        if *p < 0 {
                            out.push_str("%!(BADPREC)");
                        }
                    }
                    Some(_) => {
                        arg_num += 1;
                        out.push_str("%!(BADPREC)");
                    }
                    None => out.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                let (p, next) = parse_num(f, i);
                spec.precision = Some(p.unwrap_or(0));
                i = next;
            }
        }
        if !after_index {
            (arg_num, i, _) = arg_number(f, i, arg_num, args.len(), &mut state);
        }
        if i >= f.len() {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('%');
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
        } else if !state.1 {
            let _ = write!(out, "%!{verb}(BADINDEX)");
        } else if let Some(arg) = args.get(arg_num) {
            format_arg(&mut out, arg, verb, &spec);
            arg_num += 1;
            bounded(Some(out.len()), 0, "the result")?;
        } else {
            let _ = write!(out, "%!{verb}(MISSING)");
        }
    }
    if !state.0 && arg_num < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, arg) in args[arg_num..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            if let Val::Nil = arg {
                out.push_str("<nil>");
            } else {
                out.push_str(arg.type_name());
                out.push('=');
                write_v(&mut out, arg);
            }
        }
        out.push(')');
    }
    Ok(out)
}

pub(super) fn directive(spec: &Spec, verb: char) -> String {
    let mut d = String::from("%");
    for (on, c) in [
        (spec.sharp, '#'),
        (spec.zero, '0'),
        (spec.plus, '+'),
        (spec.minus, '-'),
        (spec.space, ' '),
    ] {
        if on {
            d.push(c);
        }
    }
    if let Some(w) = spec.width {
        let _ = write!(d, "{w}");
    }
    if let Some(p) = spec.precision {
        let _ = write!(d, ".{p}");
    }
    d.push(verb);
    d
}

/// Formats one scalar with gotmpl's printf (Go's fmt for scalars).
pub(super) fn gotmpl_format(spec: &Spec, verb: char, value: gotmpl::Value) -> String {
    let data = gotmpl::Value::from(BTreeMap::from([
        ("f".to_string(), gotmpl::Value::from(directive(spec, verb))),
        ("a".to_string(), value),
    ]));
    gotmpl::Template::new("printf")
        .parse("{{printf .f .a}}")
        .and_then(|t| t.execute_to_string(&data))
        .unwrap_or_else(|e| format!("%!{verb}(ERROR {e})"))
}

pub(super) fn pad(out: &mut String, s: &str, spec: &Spec) {
    let width = spec.width.unwrap_or(0).max(0) as usize;
    let n = s.chars().count();
    if n >= width {
        out.push_str(s);
    } else if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', width - n));
    } else {
        out.extend(std::iter::repeat_n(' ', width - n));
        out.push_str(s);
    }
}

/// Go's `printArg`/`printValue` for one argument.
pub(super) fn format_arg(out: &mut String, arg: &Val, verb: char, spec: &Spec) {
    // `#` with %v asks for Go syntax, which only strings honour here.
    let plain_spec;
    let spec = if verb == 'v' && spec.sharp && !matches!(arg, Val::Str(_)) {
        plain_spec = Spec {
            sharp: false,
            ..spec.clone()
        };
        &plain_spec
    } else {
        spec
    };
    if verb == 'T' {
        pad(out, arg.type_name(), spec);
        return;
    }
    if let Some(s) = arg.stringer()
        && matches!(verb, 'v' | 's' | 'q' | 'x' | 'X')
    {
        format_arg(out, &Val::str(s), verb, spec);
        return;
    }
    match arg {
        Val::Nil => {
            if verb == 'v' {
                pad(out, "<nil>", spec);
            } else {
                let _ = write!(out, "%!{verb}(<nil>)");
            }
        }
        // Go's %v is %t, %d, %g and %s for these (%#v quotes a string);
        // gotmpl's own %v ignores the precision and prints floats as Rust does.
        Val::Bool(b) => {
            let verb = if verb == 'v' { 't' } else { verb };
            out.push_str(&gotmpl_format(spec, verb, gotmpl::Value::Bool(*b)));
        }
        Val::Int(i) => {
            let verb = if verb == 'v' { 'd' } else { verb };
            out.push_str(&gotmpl_format(spec, verb, gotmpl::Value::Int(*i)));
        }
        Val::Float(x) => {
            let verb = if verb == 'v' { 'g' } else { verb };
            out.push_str(&gotmpl_format(spec, verb, gotmpl::Value::Float(*x)));
        }
        Val::Str(s) if verb == 'q' && !spec.plus && !spec.sharp && spec.precision.is_none() => {
            pad(out, &go_quote(s), spec);
        }
        Val::Str(s) => {
            let verb = match verb {
                'v' if spec.sharp => 'q',
                'v' => 's',
                other => other,
            };
            out.push_str(&gotmpl_format(spec, verb, gotmpl::Value::from(&**s)));
        }
        Val::List(l) => {
            out.push('[');
            for (k, item) in l.items.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                format_arg(out, item, verb, spec);
            }
            out.push(']');
        }
        Val::Map(m) => {
            out.push_str("map[");
            for (k, (key, value)) in m.entries.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                format_arg(out, key, verb, spec);
                out.push(':');
                format_arg(out, value, verb, spec);
            }
            out.push(']');
        }
        Val::Struct(s) => {
            out.push('{');
            for (k, field) in data_fields(s).enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                if spec.plus {
                    out.push_str(field.name);
                    out.push(':');
                }
                format_arg(out, &field.val, verb, spec);
            }
            out.push('}');
        }
    }
}
