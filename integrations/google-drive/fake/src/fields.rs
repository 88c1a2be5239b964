//! Google's partial response syntax (the standard `fields` parameter): a comma-separated
//! list of field names, `a/b` for a sub-field, `a(b,c)` for several, `*` for all. The
//! fake builds whole resources and then keeps the fields asked for.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A selection of fields: `None` means "all of it".
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selection(BTreeMap<String, Option<Selection>>);

/// The deepest nesting accepted.
const MAX_DEPTH: usize = 16;

/// Parses a `fields` value.
pub(crate) fn parse(fields: &str) -> Result<Selection, String> {
    let chars: Vec<char> = fields.chars().collect();
    let mut at = 0;
    let selection = parse_list(&chars, &mut at, 0)?;
    if at != chars.len() {
        return Err(format!("unexpected {:?} at {at}", chars[at]));
    }
    Ok(selection)
}

fn parse_list(chars: &[char], at: &mut usize, depth: usize) -> Result<Selection, String> {
    if depth > MAX_DEPTH {
        return Err("fields nested too deeply".into());
    }
    let mut selection = Selection::default();
    loop {
        skip_spaces(chars, at);
        let mut name = String::new();
        while *at < chars.len()
            && (chars[*at].is_ascii_alphanumeric() || chars[*at] == '*' || chars[*at] == '_')
        {
            name.push(chars[*at]);
            *at += 1;
        }
        if name.is_empty() {
            return Err(format!("a field name was expected at {at}"));
        }
        let sub = match chars.get(*at) {
            Some('(') => {
                *at += 1;
                let inner = parse_list(chars, at, depth + 1)?;
                if chars.get(*at) != Some(&')') {
                    return Err("missing )".into());
                }
                *at += 1;
                Some(inner)
            }
            Some('/') => {
                *at += 1;
                // `a/b/c` is `a(b/c)`: one path, parsed as a list of one.
                let mut path = parse_path(chars, at, depth + 1)?;
                let Some((first, rest)) = path.0.pop_first() else {
                    return Err("an empty path".into());
                };
                let mut inner = Selection::default();
                inner.0.insert(first, rest);
                Some(inner)
            }
            _ => None,
        };
        merge(&mut selection, name, sub);
        skip_spaces(chars, at);
        if chars.get(*at) == Some(&',') {
            *at += 1;
            continue;
        }
        return Ok(selection);
    }
}

fn parse_path(chars: &[char], at: &mut usize, depth: usize) -> Result<Selection, String> {
    if depth > MAX_DEPTH {
        return Err("fields nested too deeply".into());
    }
    let mut name = String::new();
    while *at < chars.len()
        && (chars[*at].is_ascii_alphanumeric() || chars[*at] == '*' || chars[*at] == '_')
    {
        name.push(chars[*at]);
        *at += 1;
    }
    if name.is_empty() {
        return Err("a field name was expected after /".into());
    }
    let sub = match chars.get(*at) {
        Some('/') => {
            *at += 1;
            Some(parse_path(chars, at, depth + 1)?)
        }
        Some('(') => {
            *at += 1;
            let inner = parse_list(chars, at, depth + 1)?;
            if chars.get(*at) != Some(&')') {
                return Err("missing )".into());
            }
            *at += 1;
            Some(inner)
        }
        _ => None,
    };
    let mut selection = Selection::default();
    selection.0.insert(name, sub);
    Ok(selection)
}

fn skip_spaces(chars: &[char], at: &mut usize) {
    while *at < chars.len() && chars[*at].is_whitespace() {
        *at += 1;
    }
}

fn merge(selection: &mut Selection, name: String, sub: Option<Selection>) {
    match (selection.0.get_mut(&name), sub) {
        (Some(Some(existing)), Some(sub)) => {
            for (k, v) in sub.0 {
                merge(existing, k, v);
            }
        }
        (Some(slot), None) => *slot = None,
        (Some(None), Some(_)) => {}
        (None, sub) => {
            selection.0.insert(name, sub);
        }
    }
}

impl Selection {
    /// `value` with only the selected fields (arrays: each element).
    pub fn apply(&self, value: &Value) -> Value {
        match value {
            Value::Array(items) => Value::Array(items.iter().map(|v| self.apply(v)).collect()),
            Value::Object(object) => {
                if self.0.contains_key("*") {
                    return value.clone();
                }
                let mut out = Map::new();
                for (name, sub) in &self.0 {
                    if let Some(field) = object.get(name) {
                        let kept = match sub {
                            None => field.clone(),
                            Some(sub) => sub.apply(field),
                        };
                        out.insert(name.clone(), kept);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selections_keep_what_is_asked() {
        let value = json!({"nextPageToken": "t", "kind": "drive#fileList",
            "files": [{"id": "a", "name": "n", "owners": [{"displayName": "D", "me": true}]}]});
        let s = parse("nextPageToken,files(id,owners(displayName))").unwrap();
        assert_eq!(
            s.apply(&value),
            json!({"nextPageToken": "t", "files": [{"id": "a", "owners": [{"displayName": "D"}]}]})
        );
        assert_eq!(
            parse("files/id").unwrap().apply(&value),
            json!({"files": [{"id": "a"}]})
        );
        assert_eq!(parse("*").unwrap().apply(&value), value);
        assert_eq!(
            parse("files(*)").unwrap().apply(&value)["files"],
            value["files"]
        );
        for bad in ["", "files(", "files(id", "a,,b", "files/"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
