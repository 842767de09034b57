//! Drive's `fields` parameter: a partial-response field mask.
//!
//! Syntax (<https://developers.google.com/drive/api/guides/fields-parameter>): a comma-separated
//! list of field names; `a/b` selects `b` inside `a`; `a(b,c)` selects `b` and `c` inside each
//! element of `a`; `*` selects everything. A malformed mask is answered with 400.

use serde_json::{Map, Value};

/// One selected field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    name: String,
    sub: Option<Vec<Selection>>,
}

/// A parsed mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldMask(Vec<Selection>);

impl FieldMask {
    /// Parses a mask; `None` when it is malformed.
    pub(crate) fn parse(mask: &str) -> Option<Self> {
        let chars: Vec<char> = mask.chars().filter(|c| !c.is_whitespace()).collect();
        let mut pos = 0;
        let list = parse_list(&chars, &mut pos)?;
        (pos == chars.len()).then_some(Self(list))
    }

    /// Keeps only the selected fields of `value`.
    pub(crate) fn apply(&self, value: &Value) -> Value {
        apply(value, &self.0)
    }
}

fn parse_list(chars: &[char], pos: &mut usize) -> Option<Vec<Selection>> {
    let mut out = vec![parse_item(chars, pos)?];
    while chars.get(*pos) == Some(&',') {
        *pos += 1;
        out.push(parse_item(chars, pos)?);
    }
    Some(out)
}

fn parse_item(chars: &[char], pos: &mut usize) -> Option<Selection> {
    let name = parse_name(chars, pos)?;
    if chars.get(*pos) == Some(&'/') {
        *pos += 1;
        let inner = parse_item(chars, pos)?;
        return Some(Selection {
            name,
            sub: Some(vec![inner]),
        });
    }
    if chars.get(*pos) == Some(&'(') {
        *pos += 1;
        let sub = parse_list(chars, pos)?;
        if chars.get(*pos) != Some(&')') {
            return None;
        }
        *pos += 1;
        return Some(Selection { name, sub: Some(sub) });
    }
    Some(Selection { name, sub: None })
}

fn parse_name(chars: &[char], pos: &mut usize) -> Option<String> {
    let start = *pos;
    while chars
        .get(*pos)
        .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '*' | '.' | '-' | '@'))
    {
        *pos += 1;
    }
    (*pos > start).then(|| chars[start..*pos].iter().collect())
}

fn apply(value: &Value, sels: &[Selection]) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| apply(v, sels)).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for sel in sels {
                if sel.name == "*" {
                    for (k, v) in map {
                        out.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                    continue;
                }
                if let Some(v) = map.get(&sel.name) {
                    let picked = match &sel.sub {
                        Some(sub) => apply(v, sub),
                        None => v.clone(),
                    };
                    match (out.get_mut(&sel.name), picked) {
                        (Some(Value::Object(existing)), Value::Object(more)) => {
                            existing.extend(more);
                        }
                        (_, picked) => {
                            out.insert(sel.name.clone(), picked);
                        }
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_select_nested_fields() {
        let v = json!({"kind":"drive#fileList","nextPageToken":"t",
            "files":[{"id":"a","name":"n","size":"1"},{"id":"b","name":"m","size":"2"}]});
        let mask = FieldMask::parse("nextPageToken, files(id,name)").unwrap();
        assert_eq!(
            mask.apply(&v),
            json!({"nextPageToken":"t","files":[{"id":"a","name":"n"},{"id":"b","name":"m"}]})
        );
        let about = json!({"user":{"displayName":"x","me":true},"storageQuota":{"usage":"1"}});
        let mask = FieldMask::parse("user/displayName,storageQuota").unwrap();
        assert_eq!(
            mask.apply(&about),
            json!({"user":{"displayName":"x"},"storageQuota":{"usage":"1"}})
        );
        assert_eq!(FieldMask::parse("*").unwrap().apply(&about), about);
    }

    #[test]
    fn malformed_masks_are_rejected() {
        assert!(FieldMask::parse("files(id").is_none());
        assert!(FieldMask::parse("id,,name").is_none());
        assert!(FieldMask::parse("").is_none());
        assert!(FieldMask::parse("id)").is_none());
    }
}
