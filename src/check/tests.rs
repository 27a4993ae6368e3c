use super::*;
use std::collections::HashMap;

struct Vars(HashMap<&'static str, Value>);
impl Scope for Vars {
    fn lookup(&self, name: &str) -> Option<Value> {
        self.0.get(name).cloned()
    }
}

fn vars() -> Vars {
    Vars(HashMap::from([("cart", json!("c-1")), ("min", json!(2))]))
}

fn observed(body: &str) -> Observed {
    Observed::new(
        201,
        Duration::from_millis(120),
        vec![
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), body.len().to_string()),
        ],
        body.as_bytes().to_vec(),
        vec![("session_id".into(), "s-9".into())],
    )
}

fn lit(v: Value) -> TemplateValue {
    fn conv(v: Value) -> TemplateValue {
        match v {
            Value::Null => TemplateValue::Null,
            Value::Bool(b) => TemplateValue::Bool(b),
            Value::Number(n) => TemplateValue::Number(n),
            Value::String(s) => TemplateValue::String(Template::parse(&s).unwrap()),
            Value::Array(a) => TemplateValue::Array(a.into_iter().map(conv).collect()),
            Value::Object(o) => {
                TemplateValue::Object(o.into_iter().map(|(k, v)| (k, conv(v))).collect())
            }
        }
    }
    conv(v)
}

fn json_path(p: &str, op: Op) -> Expectation {
    Expectation {
        subject: Subject::Json(JsonQuery::parse(p).unwrap()),
        op,
    }
}

fn passes(e: &Expectation, body: &str) -> bool {
    let results = e.evaluate(&observed(body), &vars(), &NoMask);
    assert!(!results.is_empty());
    results.iter().all(|a| a.passed)
}

const DOC: &str = r#"{"id":"c-1","currency":"EUR","total":12.5,"items":[{"sku":"A","qty":2}],"tags":["x","y"],"coupon":null}"#;

#[test]
fn equals_and_not_equals_with_templates_and_numbers() {
    assert!(passes(
        &json_path("$.id", Op::Equals(lit(json!("{{ cart }}")))),
        DOC
    ));
    assert!(!passes(
        &json_path("$.id", Op::Equals(lit(json!("other")))),
        DOC
    ));
    assert!(passes(
        &json_path("$.items[0].qty", Op::Equals(lit(json!(2.0)))),
        DOC
    ));
    assert!(passes(
        &json_path("$.items[0].qty", Op::Equals(lit(json!("{{ min }}")))),
        DOC
    ));
    assert!(passes(
        &json_path("$.currency", Op::NotEquals(lit(json!("USD")))),
        DOC
    ));
    assert!(!passes(
        &json_path("$.currency", Op::NotEquals(lit(json!("EUR")))),
        DOC
    ));
}

#[test]
fn contains_on_strings_and_arrays() {
    assert!(passes(
        &json_path("$.currency", Op::Contains(lit(json!("EU")))),
        DOC
    ));
    assert!(passes(
        &json_path("$.tags", Op::Contains(lit(json!("y")))),
        DOC
    ));
    assert!(!passes(
        &json_path("$.tags", Op::Contains(lit(json!("z")))),
        DOC
    ));
    assert!(passes(
        &json_path("$.tags", Op::NotContains(lit(json!("z")))),
        DOC
    ));
    assert!(!passes(
        &json_path("$.currency", Op::NotContains(lit(json!("EUR")))),
        DOC
    ));
}

#[test]
fn matches_exists_and_comparisons() {
    assert!(passes(
        &json_path("$.id", Op::Matches(Template::parse("^c-\\d$").unwrap())),
        DOC
    ));
    assert!(!passes(
        &json_path("$.id", Op::Matches(Template::parse("^x").unwrap())),
        DOC
    ));
    assert!(
        passes(&json_path("$.coupon", Op::Exists(true)), DOC),
        "null is a found value"
    );
    assert!(passes(&json_path("$.nope", Op::Exists(false)), DOC));
    assert!(!passes(&json_path("$.id", Op::Exists(false)), DOC));
    assert!(passes(&json_path("$.total", Op::Gt(lit(json!(12)))), DOC));
    assert!(!passes(&json_path("$.total", Op::Lt(lit(json!(12)))), DOC));
    assert!(passes(&json_path("$.total", Op::Le(lit(json!(12.5)))), DOC));
    assert!(passes(
        &json_path("$.total", Op::Ge(lit(json!("{{ min }}")))),
        DOC
    ));
    assert!(
        !passes(&json_path("$.id", Op::Ge(lit(json!(1)))), DOC),
        "not a number"
    );
}

#[test]
fn length_one_of_and_type() {
    assert!(passes(
        &json_path("$.items", Op::Length(vec![Op::Equals(lit(json!(1)))])),
        DOC
    ));
    assert!(!passes(
        &json_path("$.tags", Op::Length(vec![Op::Equals(lit(json!(3)))])),
        DOC
    ));
    assert!(passes(
        &json_path(
            "$.currency",
            Op::Length(vec![Op::Ge(lit(json!(3))), Op::Lt(lit(json!(4)))])
        ),
        DOC
    ));
    assert!(passes(
        &json_path("$.currency", Op::OneOf(lit(json!(["EUR", "USD"])))),
        DOC
    ));
    assert!(!passes(
        &json_path("$.currency", Op::OneOf(lit(json!(["GBP"])))),
        DOC
    ));
    assert!(passes(
        &json_path("$.items", Op::Type(JsonType::Array)),
        DOC
    ));
    assert!(passes(
        &json_path("$.coupon", Op::Type(JsonType::Null)),
        DOC
    ));
    assert!(!passes(
        &json_path("$.total", Op::Type(JsonType::String)),
        DOC
    ));
}

#[test]
fn missing_nodes_fail_every_operator_but_exists_false() {
    let result = json_path("$.nope", Op::NotEquals(lit(json!("x")))).evaluate(
        &observed(DOC),
        &vars(),
        &NoMask,
    );
    assert!(!result[0].passed);
    assert_eq!(result[0].actual, json!(MISSING));
}

#[test]
fn json_schema_on_a_path_and_on_the_body() {
    let schema = SchemaFile {
        file: "cart.schema.json".into(),
        validator: Arc::new(
            jsonschema::validator_for(&json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}))
                .unwrap(),
        ),
        sha256: [0; 32],
    };
    let on_body = Expectation {
        subject: Subject::Body,
        op: Op::JsonSchema(schema.clone()),
    };
    assert!(passes(&on_body, DOC));
    let failed = on_body.evaluate(&observed(r#"{"id": 5}"#), &vars(), &NoMask);
    assert!(!failed[0].passed);
    assert!(
        failed[0].message.as_deref().unwrap().contains("/id"),
        "{failed:?}"
    );
    assert!(!passes(
        &json_path("$.items[0]", Op::JsonSchema(schema)),
        DOC
    ));
}

#[test]
fn status_latency_headers_and_body() {
    let status = |op| Expectation {
        subject: Subject::Status,
        op,
    };
    assert!(passes(&status(Op::StatusClass(2)), DOC));
    assert!(!passes(&status(Op::StatusClass(4)), DOC));
    assert!(passes(&status(Op::OneOf(lit(json!([200, 201])))), DOC));
    assert!(!passes(&status(Op::Equals(lit(json!(200)))), DOC));
    let latency = Expectation {
        subject: Subject::Latency,
        op: Op::Le(lit(json!(100))),
    };
    let a = &latency.evaluate(&observed(DOC), &vars(), &NoMask)[0];
    assert_eq!((a.passed, a.actual.clone()), (false, json!(120)));
    let header = |name: &str, op| Expectation {
        subject: Subject::Header(name.into()),
        op,
    };
    assert!(passes(
        &header("content-type", Op::Contains(lit(json!("json")))),
        DOC
    ));
    assert!(passes(
        &header("content-length", Op::Gt(lit(json!(10)))),
        DOC
    ));
    assert!(!passes(
        &header("x-missing", Op::Equals(lit(json!("a")))),
        DOC
    ));
    let body = |op| Expectation {
        subject: Subject::Body,
        op,
    };
    assert!(passes(&body(Op::Contains(lit(json!("c-1")))), DOC));
    assert!(passes(&body(Op::Sha256(sha256_hex(DOC.as_bytes()))), DOC));
    assert!(!passes(&body(Op::Sha256(sha256_hex(b"other"))), DOC));
}

#[test]
fn invalid_json_fails_json_assertions_with_a_reason() {
    let result =
        json_path("$.id", Op::Exists(false)).evaluate(&observed("<html>"), &vars(), &NoMask);
    assert!(
        !result[0].passed,
        "fail closed: a non-JSON body proves nothing"
    );
    assert!(result[0].message.as_deref().unwrap().contains("not JSON"));
}

#[test]
fn captures_of_each_kind() {
    let obs = observed(DOC);
    let cap = |source| Capture {
        name: "x".into(),
        source,
        secret: false,
    };
    assert_eq!(
        cap(CaptureSource::Json(JsonQuery::parse("$.id").unwrap())).take(&obs),
        Ok(json!("c-1"))
    );
    assert_eq!(
        cap(CaptureSource::Header("content-type".into())).take(&obs),
        Ok(json!("application/json"))
    );
    assert_eq!(
        cap(CaptureSource::BodyRegex(
            Regex::new("\"sku\":\"(\\w+)\"").unwrap()
        ))
        .take(&obs),
        Ok(json!("A"))
    );
    assert_eq!(
        cap(CaptureSource::Cookie("session_id".into())).take(&obs),
        Ok(json!("s-9"))
    );
    assert!(
        cap(CaptureSource::Cookie("nope".into()))
            .take(&obs)
            .unwrap_err()
            .contains("found nothing")
    );
    assert!(
        cap(CaptureSource::Json(JsonQuery::parse("$.nope").unwrap()))
            .take(&obs)
            .is_err()
    );
}
