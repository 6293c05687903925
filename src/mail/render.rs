//! Rendering an outbox row: the case email as text and HTML from templates, with a stable Message-ID.

use askama::Template;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

use crate::store::{cases::CaseRecord, outbox::DueEmail};

/// One line item as the templates show it.
pub(super) struct ItemView {
    sku: String,
    description: String,
    quantity: i64,
    unit_price: String,
}

/// What the case emails show; both templates read it (through `Deref`).
pub(super) struct CaseMail<'a> {
    case_number: &'a str,
    subject: &'a str,
    description: &'a str,
    priority: &'a str,
    status: &'a str,
    contact_name: Option<&'a str>,
    items: &'a [ItemView],
}

#[derive(Template)]
#[template(
    path = "case_created.txt",
    config = "src/mail/askama.toml",
    escape = "none"
)]
pub(super) struct CaseCreatedText<'a>(&'a CaseMail<'a>);

#[derive(Template)]
#[template(path = "case_created.html", config = "src/mail/askama.toml")]
pub(super) struct CaseCreatedHtml<'a>(&'a CaseMail<'a>);

impl<'a> std::ops::Deref for CaseCreatedText<'a> {
    type Target = CaseMail<'a>;
    fn deref(&self) -> &CaseMail<'a> {
        self.0
    }
}

impl<'a> std::ops::Deref for CaseCreatedHtml<'a> {
    type Target = CaseMail<'a>;
    fn deref(&self) -> &CaseMail<'a> {
        self.0
    }
}

/// `amount_minor` in the currency's major unit, e.g. `19.99 EUR`, `500 JPY`.
pub fn format_money(amount_minor: i64, currency: &str) -> String {
    // ISO 4217's minor unit; a code it does not know (or one without minor units, such
    // as gold) shows two decimals, as most currencies have.
    let decimals = iso_currency::Currency::from_code(currency)
        .and_then(|c| c.exponent())
        .map_or(2, u32::from);
    if decimals == 0 {
        return format!("{amount_minor} {currency}");
    }
    let unit = 10_u64.pow(decimals);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    format!(
        "{sign}{}.{:0width$} {currency}",
        abs / unit,
        abs % unit,
        width = decimals as usize
    )
}

/// Builds the message of an outbox row.
pub(super) fn render(
    from: &Mailbox,
    email: &DueEmail,
    record: &CaseRecord,
) -> Result<Message, String> {
    let case = &record.case;
    let number = format!("{:08}", case.case_number);
    let items: Vec<ItemView> = record
        .line_items
        .iter()
        .map(|i| ItemView {
            sku: i.sku.clone(),
            description: i.description.clone(),
            quantity: i.quantity,
            unit_price: format_money(i.unit_price_minor, &i.currency),
        })
        .collect();
    let mail = CaseMail {
        case_number: &number,
        subject: &case.subject,
        description: &case.description,
        priority: &case.priority,
        status: &case.status,
        contact_name: case.contact_name.as_deref(),
        items: &items,
    };
    let text = CaseCreatedText(&mail)
        .render()
        .map_err(|e| format!("template: {e}"))?;
    let html = CaseCreatedHtml(&mail)
        .render()
        .map_err(|e| format!("template: {e}"))?;
    let to: Mailbox = email
        .recipient
        .parse()
        .map_err(|e| format!("recipient {}: {e}", email.recipient))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(format!("Case {number}: {}", case.subject))
        .message_id(Some(email.message_id.clone()))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| format!("message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::format_money;

    #[test]
    fn money_uses_the_currency_minor_unit() {
        assert_eq!(format_money(1999, "EUR"), "19.99 EUR");
        assert_eq!(format_money(5, "USD"), "0.05 USD");
        assert_eq!(format_money(500, "JPY"), "500 JPY");
        assert_eq!(format_money(1234, "KWD"), "1.234 KWD");
        assert_eq!(format_money(-150, "EUR"), "-1.50 EUR");
        assert_eq!(format_money(250, "CLF"), "0.0250 CLF");
        assert_eq!(format_money(1999, "ZZZ"), "19.99 ZZZ");
    }
}
