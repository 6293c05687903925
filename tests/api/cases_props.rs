//! Property test of the composite create's validation, through HTTP: requests built from
//! fields that are each valid or broken in a known way. A request with no broken field is
//! created whole (201, every item, one email); otherwise the answer is 422 naming exactly
//! the broken fields by path, and nothing is written.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, postgres_available, query_count};

/// Odds of a field being valid against broken: a request has some 25 fields, so about a
/// third of the requests are wholly valid and the rest break one field or a few.
const VALID: u32 = 24;
const BROKEN: u32 = 1;

/// A JSON value and the field paths (relative to where it goes) it breaks.
#[derive(Debug, Clone)]
struct Part {
    value: Value,
    broken: Vec<String>,
}

impl Part {
    fn ok(value: Value) -> Self {
        Self {
            value,
            broken: Vec::new(),
        }
    }

    fn bad(value: Value) -> Self {
        Self {
            value,
            broken: vec![String::new()],
        }
    }
}

/// Text from a mixed alphabet (ASCII, accents, CJK, tab and newline are allowed).
fn text_of(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            8 => proptest::char::range('a', 'z'),
            2 => Just(' '),
            1 => Just('é'),
            1 => Just('日'),
            1 => Just('\n'),
            1 => Just('\t'),
        ],
        len,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Text of a length in `len`, possibly thousands of characters: a short mixed text
/// repeated to the length. (A value tree per character of a long text costs proptest
/// most of the test's time.)
fn long_text(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    (text_of(1..=16), len).prop_map(|(pattern, len)| pattern.chars().cycle().take(len).collect())
}

/// A string field of `min..=max` characters (counted as characters, not bytes).
fn text(min: usize, max: usize) -> impl Strategy<Value = Part> {
    let near_max = max.saturating_sub(2).max(min)..=max;
    let valid = prop_oneof![text_of(min..=min.max(20).min(max)), long_text(near_max)];
    let too_long = long_text(max + 1..=max + 3);
    let control = text_of(min.max(1)..=min.max(1) + 5).prop_map(|s| format!("{s}\u{7}"));
    let mut broken = vec![too_long.boxed(), control.boxed()];
    if min > 0 {
        broken.push(Just(String::new()).boxed());
    }
    prop_oneof![
        VALID => valid.prop_map(|s| Part::ok(json!(s))),
        BROKEN => proptest::strategy::Union::new(broken).prop_map(|s| Part::bad(json!(s))),
    ]
}

fn email() -> impl Strategy<Value = Part> {
    let valid = ("[a-z0-9.+_-]{1,20}", "[a-z0-9-]{1,12}", "[a-z]{2,6}")
        .prop_map(|(local, host, tld)| Part::ok(json!(format!("{local}@{host}.{tld}"))));
    let broken = prop_oneof![
        Just("nobody"),
        Just("ada@"),
        Just("@example.com"),
        Just("ada lovelace@example.com"),
        Just("ada@exa@mple.com"),
        Just(""),
    ]
    .prop_map(|s| Part::bad(json!(s)));
    prop_oneof![VALID => valid, BROKEN => broken]
}

/// A notification recipient: valid ones in the domain the test server allows.
fn recipient() -> impl Strategy<Value = Part> {
    let valid =
        "[a-z0-9.+_-]{1,20}".prop_map(|local| Part::ok(json!(format!("{local}@{ALLOWED_DOMAIN}"))));
    let broken = prop_oneof![
        Just("nobody"),
        Just("ada@"),
        Just(""),
        Just("a b@notify.example")
    ]
    .prop_map(|s| Part::bad(json!(s)));
    prop_oneof![VALID => valid, BROKEN => broken]
}

/// The domain notifications may go to in these tests.
const ALLOWED_DOMAIN: &str = "notify.example";

fn integer(min: i64, max: i64) -> impl Strategy<Value = Part> {
    let valid = prop_oneof![min..=max, Just(min), Just(max)].prop_map(|n| Part::ok(json!(n)));
    let broken = prop_oneof![
        Just(min - 1),
        Just(max + 1),
        i64::MIN / 2..min,
        Just(i64::MAX)
    ]
    .prop_map(|n| Part::bad(json!(n)));
    prop_oneof![VALID => valid, BROKEN => broken]
}

fn currency() -> impl Strategy<Value = Part> {
    let valid = "[A-Z]{3}".prop_map(|s| Part::ok(json!(s)));
    let broken = prop_oneof![Just("eur"), Just("EURO"), Just("EU"), Just("E1R"), Just("")]
        .prop_map(|s| Part::bad(json!(s)));
    prop_oneof![VALID => valid, BROKEN => broken]
}

/// An object from named parts, optional ones left out at random; broken paths prefixed.
fn object(fields: Vec<(&'static str, Part)>) -> Part {
    let mut value = serde_json::Map::new();
    let mut broken = Vec::new();
    for (name, part) in fields {
        broken.extend(part.broken.iter().map(|b| {
            if b.is_empty() {
                name.to_owned()
            } else {
                format!("{name}.{b}")
            }
        }));
        value.insert(name.to_owned(), part.value);
    }
    Part {
        value: Value::Object(value),
        broken,
    }
}

fn optional<T: std::fmt::Debug>(
    part: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::weighted(0.7, part)
}

fn line_item() -> impl Strategy<Value = Part> {
    (
        text(1, 64),
        optional(text(0, 1000)),
        integer(1, 1_000_000),
        integer(0, 100_000_000_000),
        currency(),
    )
        .prop_map(|(sku, description, quantity, amount, currency)| {
            let price = object(vec![("amount_minor", amount), ("currency", currency)]);
            let mut fields = vec![("sku", sku), ("quantity", quantity), ("unit_price", price)];
            fields.extend(description.map(|d| ("description", d)));
            object(fields)
        })
}

/// A whole create request and the set of paths it breaks.
fn request() -> impl Strategy<Value = (Value, BTreeSet<String>)> {
    let case = (
        text(1, 255),
        optional(text(0, 32_000)),
        optional(text(1, 40)),
        optional(prop_oneof![
            Just("Low"),
            Just("Medium"),
            Just("High"),
            Just("Critical")
        ]),
        optional((optional(text(1, 200)), optional(email()))),
    )
        .prop_map(|(subject, description, origin, priority, contact)| {
            let mut fields = vec![("subject", subject)];
            fields.extend(description.map(|d| ("description", d)));
            fields.extend(origin.map(|o| ("origin", o)));
            fields.extend(priority.map(|p| ("priority", Part::ok(json!(p)))));
            if let Some((name, email)) = contact {
                let mut contact = Vec::new();
                contact.extend(name.map(|n| ("name", n)));
                contact.extend(email.map(|e| ("email", e)));
                fields.push(("contact", object(contact)));
            }
            object(fields)
        });
    (
        case,
        proptest::collection::vec(line_item(), 0..6),
        optional(recipient()),
    )
        .prop_map(|(case, items, to)| {
            let mut broken: BTreeSet<String> =
                case.broken.iter().map(|b| format!("case.{b}")).collect();
            for (i, item) in items.iter().enumerate() {
                broken.extend(item.broken.iter().map(|b| format!("line_items[{i}].{b}")));
            }
            let mut body = json!({
                "case": case.value,
                "line_items": items.iter().map(|i| i.value.clone()).collect::<Vec<_>>(),
            });
            if let Some(to) = to {
                broken.extend(to.broken.iter().map(|_| "notification.to".to_owned()));
                body["notification"] = json!({"to": to.value});
            }
            (body, broken)
        })
}

async fn counts(app: &TestApp) -> (i64, i64, i64) {
    (
        query_count(&app.db, "SELECT COUNT(*) FROM cases").await,
        query_count(&app.db, "SELECT COUNT(*) FROM case_line_items").await,
        query_count(&app.db, "SELECT COUNT(*) FROM email_outbox").await,
    )
}

async fn check(
    app: &TestApp,
    token: &str,
    body: &Value,
    broken: &BTreeSet<String>,
) -> Result<(), TestCaseError> {
    let before = counts(app).await;
    let response = app
        .http
        .post(app.url("/api/v1/cases"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let after = counts(app).await;
    if broken.is_empty() {
        prop_assert_eq!(status, 201, "{}", answer);
        prop_assert_eq!(&answer["case_number"].as_str().map(str::len), &Some(8));
        prop_assert_eq!(&answer["subject"], &body["case"]["subject"]);
        let items = body["line_items"].as_array().map_or(0, Vec::len) as i64;
        prop_assert_eq!(
            answer["line_items"].as_array().map(Vec::len),
            Some(items as usize)
        );
        let email = i64::from(body.get("notification").is_some());
        prop_assert_eq!(after, (before.0 + 1, before.1 + items, before.2 + email));
    } else {
        prop_assert_eq!(status, 422, "{}", answer);
        let named: BTreeSet<String> = answer["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["field"].as_str().map(str::to_owned))
            .collect();
        prop_assert_eq!(&named, broken);
        prop_assert_eq!(after, before, "nothing written");
    }
    Ok(())
}

fn run(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(TestApp::spawn_with(backend, |c| {
        c.mail_allowed_domains = vec![ALLOWED_DOMAIN.to_owned()];
        c.mail_daily_limit = 0;
    }));
    let (id, secret) = rt.block_on(app.service_client(&["cases.write"]));
    let token = rt.block_on(app.access_token(&id, &secret, None));
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&request(), |(body, broken)| {
        rt.block_on(check(&app, &token, &body, &broken))
    });
    rt.block_on(app.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn validation_names_exactly_the_broken_fields_sqlite() {
    run(Backend::Sqlite);
}

#[test]
fn validation_names_exactly_the_broken_fields_postgres() {
    if postgres_available("cases_props::validation_names_exactly_the_broken_fields_postgres") {
        run(Backend::Postgres);
    }
}
