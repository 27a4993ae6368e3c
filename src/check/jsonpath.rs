//! RFC 9535 JSONPath queries with the singular/non-singular rule (a singular query is the node, any other the array of nodes).

use serde_json::Value;
use serde_json_path::JsonPath;
use std::sync::Arc;

/// A compiled JSONPath and whether it is singular (only names and indices). Cloning shares
/// it: a suite uses the same few queries (`$.id`, `$.ok`) in every flow, and a plan holds
/// every flow for the whole run.
#[derive(Debug, Clone)]
pub struct JsonQuery(Arc<Compiled>);

#[derive(Debug)]
struct Compiled {
    source: String,
    path: JsonPath,
    singular: bool,
}

impl JsonQuery {
    pub fn parse(source: &str) -> Result<JsonQuery, String> {
        let path = JsonPath::parse(source).map_err(|e| format!("invalid JSONPath: {e}"))?;
        Ok(JsonQuery(Arc::new(Compiled {
            source: source.to_string(),
            path,
            singular: is_singular(source),
        })))
    }

    pub fn as_str(&self) -> &str {
        &self.0.source
    }

    /// A singular query gives the node itself; any other query the array of the nodes it
    /// matched. `None` when nothing matched.
    pub fn select(&self, value: &Value) -> Option<Value> {
        let nodes = self.0.path.query(value).all();
        match (self.0.singular, nodes.as_slice()) {
            (_, []) => None,
            (true, [one]) => Some((*one).clone()),
            _ => Some(Value::Array(nodes.into_iter().cloned().collect())),
        }
    }
}

/// A query is singular when it has no wildcard, filter, slice, descendant segment or union.
/// The parser has already accepted `source`, so scanning outside quoted names is enough.
fn is_singular(source: &str) -> bool {
    let mut quote = None;
    let mut chars = source.chars().peekable();
    let mut prev = '\0';
    while let Some(c) = chars.next() {
        match quote {
            Some(_) if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '*' | '?' | ':' | ',' => return false,
                '.' if prev == '.' => return false,
                _ => {}
            },
        }
        prev = c;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn singular_queries_give_the_node() {
        let doc = json!({"a": {"b": [10, 20]}, "n": null});
        assert_eq!(
            JsonQuery::parse("$.a.b[1]").unwrap().select(&doc),
            Some(json!(20))
        );
        assert_eq!(
            JsonQuery::parse("$['a']['b'][0]").unwrap().select(&doc),
            Some(json!(10))
        );
        assert_eq!(
            JsonQuery::parse("$.n").unwrap().select(&doc),
            Some(Value::Null)
        );
        assert_eq!(JsonQuery::parse("$.zzz").unwrap().select(&doc), None);
    }

    #[test]
    fn other_queries_give_arrays_even_for_one_node() {
        let doc = json!({"items": [{"n": 1}, {"n": 5}]});
        let q = JsonQuery::parse("$.items[?@.n > 2].n").unwrap();
        assert_eq!(q.select(&doc), Some(json!([5])));
        assert_eq!(
            JsonQuery::parse("$.items[*].n").unwrap().select(&doc),
            Some(json!([1, 5]))
        );
        assert_eq!(
            JsonQuery::parse("$..n").unwrap().select(&doc),
            Some(json!([1, 5]))
        );
        assert_eq!(
            JsonQuery::parse("$.items[0:1]").unwrap().select(&doc),
            Some(json!([{"n": 1}]))
        );
        assert!(JsonQuery::parse("$['a.b*']").unwrap().0.singular);
    }

    #[test]
    fn bad_paths_are_errors() {
        assert!(JsonQuery::parse("$.items[").is_err());
        assert!(JsonQuery::parse("items").is_err());
    }
}
